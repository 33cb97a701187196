"""Calibrate the near-duplicate threshold on the user's own data from "same"/"different" labels.

The user is shown pairs at increasing hash distances (``pairs_for_calibration``) and marks each;
``calibrate`` turns the labels into precision/recall per distance and a recommended threshold.
Precision at distance d is over labelled pairs with distance <= d; recall is the share of all pairs
labelled "same" that lie within d. Pure: no Flask, no database.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

__all__ = ["DistanceStats", "Calibration", "calibrate", "pairs_for_calibration"]

TARGET_PRECISION = 0.99


@dataclass(frozen=True)
class DistanceStats:
    distance: int
    same: int  # labelled pairs at exactly this distance marked "same"
    different: int
    precision: float  # of the rule "duplicate if distance <= this"
    recall: float
    f1: float


@dataclass(frozen=True)
class Calibration:
    rows: list[DistanceStats]
    best_f1_threshold: int | None
    precise_threshold: int | None  # largest distance whose precision >= target_precision
    recommended: int | None  # precise_threshold if any, else best_f1_threshold
    target_precision: float
    labelled: int


def calibrate(labels: Iterable[tuple[int, bool]], target_precision: float = TARGET_PRECISION,
              max_distance: int | None = None) -> Calibration:
    """Precision/recall per distance from ``[(distance, same), ...]`` and a recommended threshold.

    Raises ValueError on a negative distance; an empty list gives no recommendation (None).
    """
    pairs = [(int(d), bool(s)) for d, s in labels]
    for d, _ in pairs:
        if d < 0:
            raise ValueError(f"distance must be >= 0, got {d}")
    if not pairs:
        return Calibration([], None, None, None, target_precision, 0)
    top = max(d for d, _ in pairs) if max_distance is None else max_distance
    same_at = [0] * (top + 1)
    diff_at = [0] * (top + 1)
    for d, s in pairs:
        if d <= top:
            (same_at if s else diff_at)[d] += 1
    total_same = sum(1 for _, s in pairs if s)
    rows, tp, fp = [], 0, 0
    best_f1, best_d, precise = -1.0, None, None
    for d in range(top + 1):
        tp += same_at[d]
        fp += diff_at[d]
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / total_same if total_same else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append(DistanceStats(d, same_at[d], diff_at[d], precision, recall, f1))
        if tp + fp and f1 > best_f1:
            best_f1, best_d = f1, d
        if tp and precision >= target_precision:
            precise = d
    if total_same == 0:
        best_d = None
    recommended = precise if precise is not None else best_d
    return Calibration(rows, best_d, precise, recommended, target_precision, len(pairs))


def pairs_for_calibration(pairs: Sequence, per_bucket: int = 5, max_distance: int = 24, bucket_width: int = 2,
                          seed: int = 0) -> list:
    """Pick up to ``per_bucket`` pairs from each distance bucket [0, w), [w, 2w), ... up to ``max_distance``.

    ``pairs`` are tuples whose last element (or ``.distance``) is the hash distance, e.g.
    ``(id_a, id_b, distance)``. Picks are spread evenly inside each bucket (deterministic for a seed)
    and returned by increasing distance, so the user sees the boundary between "same" and
    "different" sampled at every distance, not only the obvious near-zero pairs.
    """
    import random

    if per_bucket < 1 or bucket_width < 1:
        raise ValueError("per_bucket and bucket_width must be >= 1")
    rng = random.Random(seed)

    def dist(p) -> int:
        return int(p.distance if hasattr(p, "distance") else p[-1])

    buckets: dict[int, list] = {}
    for p in pairs:
        d = dist(p)
        if 0 <= d <= max_distance:
            buckets.setdefault(d // bucket_width, []).append(p)
    chosen = []
    for b in sorted(buckets):
        items = sorted(buckets[b], key=dist)
        if len(items) > per_bucket:
            rng.shuffle(items)
            items = sorted(items[:per_bucket], key=dist)
        chosen.extend(items)
    return chosen
