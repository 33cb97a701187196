"""Calibrate the duplicate search on the user's own data from "same"/"different" labels.

The user is shown pairs at increasing hash distances (``pick_per_bucket``) and marks each. What is calibrated
is the search as it runs: a pair is grouped when its hash distance is within the threshold *and* the confirm stage
accepts it (``Label.confirmed``), so a threshold is judged by the labelled pairs it would really group. ``calibrate``
gives, per distance, precision and recall of that rule with 95 % Wilson intervals (30 labels cannot show 99 %), and
recommends a threshold only when the labels can support one:

- at least ``MIN_EACH`` pairs marked "same" and as many marked "different" (before that it says how many more);
- the hash stage only proposes pairs (the confirm stage decides), so the threshold recommended is the smallest that
  finds every labelled duplicate the confirm stage accepts, and never below the default (a tighter threshold saves
  little time and loses duplicates that were not labelled);
- if labelled *different* pictures would be grouped within it, no threshold helps: it says so and recommends none.

Pure: no Flask, no database.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

__all__ = ["Label", "DistanceStats", "Calibration", "calibrate", "pick_per_bucket", "wilson", "MIN_EACH"]

TARGET_PRECISION = 0.99
MIN_EACH = 15  # labels of each verdict needed before anything is recommended
_Z = 1.96  # 95 %


@dataclass(frozen=True)
class Label:
    distance: int  # the stage-1 distance: the smaller of the pHash and dHash distances
    same: bool  # the user's verdict
    confirmed: bool = True  # whether the confirm stage accepts the pair (exact and same-pixels pairs always)


@dataclass(frozen=True)
class DistanceStats:
    distance: int
    same: int  # pairs labelled at exactly this distance marked "same"
    different: int
    found: int  # labelled duplicates the search finds with this threshold (within it and confirmed)
    wrong: int  # labelled different pairs it would group
    precision: float  # found / (found + wrong), 1.0 when it groups nothing
    precision_low: float  # 95 % Wilson interval
    recall: float  # found / all pairs marked "same"
    recall_low: float
    recall_high: float


@dataclass(frozen=True)
class Calibration:
    rows: list[DistanceStats]
    recommended: int | None
    reason: str  # why this recommendation, or why none
    labelled: int
    same: int
    different: int
    default: int
    target_precision: float


def wilson(k: int, n: int, z: float = _Z) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n ((0, 1) when n is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def calibrate(labels: Iterable, default: int, max_distance: int | None = None,
              target_precision: float = TARGET_PRECISION, min_each: int = MIN_EACH) -> Calibration:
    """Precision/recall per distance from labels (``Label`` or ``(distance, same[, confirmed])``) and a threshold.

    Raises ValueError on a negative distance."""
    pairs = [lab if isinstance(lab, Label) else Label(*lab) for lab in labels]
    for lab in pairs:
        if lab.distance < 0:
            raise ValueError(f"distance must be >= 0, got {lab.distance}")
    n_same = sum(1 for lab in pairs if lab.same)
    n_diff = len(pairs) - n_same
    top = max([default] + [lab.distance for lab in pairs]) if max_distance is None else max_distance
    rows = []
    for d in range(top + 1):
        grouped = [lab for lab in pairs if lab.distance <= d and lab.confirmed]
        found = sum(1 for lab in grouped if lab.same)
        wrong = len(grouped) - found
        precision = found / (found + wrong) if found + wrong else 1.0
        p_low = wilson(found, found + wrong)[0] if found + wrong else 0.0
        r_low, r_high = wilson(found, n_same)
        rows.append(DistanceStats(d, sum(1 for lab in pairs if lab.distance == d and lab.same),
                                  sum(1 for lab in pairs if lab.distance == d and not lab.same), found, wrong,
                                  precision, p_low, found / n_same if n_same else 0.0, r_low, r_high))
    result = dict(rows=rows, labelled=len(pairs), same=n_same, different=n_diff, default=default,
                  target_precision=target_precision)
    if n_same < min_each or n_diff < min_each:
        more = [f"{min_each - n} more marked {'same' if v else 'different'}"
                for n, v in ((n_same, True), (n_diff, False)) if n < min_each]
        return Calibration(recommended=None, reason=f"Too few labels to recommend anything: label {' and '.join(more)} "
                                                    f"(at least {min_each} of each).", **result)
    best = rows[-1].found
    needed = next(r.distance for r in rows if r.found == best)
    chosen = max(needed, default)
    row = rows[min(chosen, top)]
    if row.wrong:
        first = next(r.distance for r in rows if r.wrong)
        return Calibration(recommended=None, reason=(
            f"No threshold fits your labels: {row.wrong} pair(s) you marked different would be grouped within "
            f"{chosen} bits (the first at {first}), because the confirm stage accepts them. Resolve such groups by "
            "choosing the keeper yourself, and check that those pairs really are different pictures."), **result)
    if needed <= default:
        why = (f"The default finds every duplicate you labelled that the search can find ({best} of {n_same}) and "
               f"groups none of your {n_diff} different pairs.")
    else:
        why = (f"The smallest threshold that finds every duplicate you labelled that the search can find "
               f"({best} of {n_same}; the default {default} finds {rows[min(default, top)].found}), grouping none "
               f"of your {n_diff} different pairs.")
    if best < n_same:
        why += f" {n_same - best} labelled duplicate(s) fail the confirm stage at any threshold."
    return Calibration(recommended=chosen, reason=why, **result)


def pick_per_bucket(distances, per_bucket: int = 5, max_distance: int = 24, bucket_width: int = 2, seed: int = 0,
                    preferred=None, keys=None) -> np.ndarray:
    """Positions in ``distances`` of up to ``per_bucket`` pairs from each distance bucket [0, w), [w, 2w), ... up to
    ``max_distance``, by increasing distance, so the user sees the boundary between "same" and "different" sampled at
    every distance, not only the obvious near-zero pairs.

    Inside a bucket the ``preferred`` ones (a boolean mask: the pairs already labelled) come first, then the others
    in a random order fixed by ``seed`` and each pair's ``keys`` (an integer naming the pair; default its position),
    not by the other pairs: labelling a pair leaves the rest of the offer as it was, and pairs of new images only
    take a place where they draw ahead of the old ones."""
    if per_bucket < 1 or bucket_width < 1:
        raise ValueError("per_bucket and bucket_width must be >= 1")
    d = np.asarray(distances, dtype=np.int64)
    keys = np.arange(d.size) if keys is None else np.asarray(keys, dtype=np.int64)
    draw = _mix(keys.astype(np.uint64) ^ np.uint64(seed))  # the pair's place in its bucket's draw
    not_preferred = ~np.asarray(preferred, dtype=bool) if preferred is not None else np.zeros(d.size, dtype=bool)
    inside = np.flatnonzero((d >= 0) & (d <= max_distance))
    # by bucket, then preferred and drawn order; keep each bucket's first per_bucket
    order = inside[np.lexsort((keys[inside], draw[inside], not_preferred[inside], d[inside] // bucket_width))]
    buckets = d[order] // bucket_width
    first = np.searchsorted(buckets, buckets, side="left")
    kept = order[np.arange(order.size) - first < per_bucket]
    return kept[np.lexsort((kept, d[kept]))]


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a fixed, well-spread pseudo-random uint64 for each uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))
