"""Active choice of the next pair to compare, aimed at deciding which images are in the top-k.

Why: people rank a few hundred images per class; every answer should move the top-k decision.
So the first image is drawn in proportion to how *undecided* its membership is (and how uncertain
its rating), the second from a short candidate list — its neighbours in the current order, the
images around the top-k boundary, a few random ones, and its near-duplicates — scored by how
uncertain the outcome is and how much it would teach. Every earlier asking of a pair divides its
score by four, and the candidate list is widened before a pair is repeated, so a pair comes back
only when the fresh alternatives would be foregone conclusions. A share ``explore`` of the
choices starts from a little-compared image instead, so nothing is written off on too little
evidence.

Cost: O(n) numpy work plus O(candidates) Python; never the n^2 pairs. Pure logic, numpy only.
"""
from __future__ import annotations

import math
from typing import Collection, Hashable, Iterable, Mapping

import numpy as np

from curator.ranking.rating import Rating, _rating_arrays, membership_probabilities

_PI_OVER_8 = math.pi / 8.0


def _count_lookup(history):
    """Return count(a, b) over a history given as {frozenset({a, b}): count} or a set of pairs."""
    if history is None:
        return lambda a, b: 0
    if history:
        first = next(iter(history))
        if not isinstance(first, frozenset):
            raise TypeError("history keys must be frozenset({a, b}) pairs (see rating.pair_counts), "
                            f"got {type(first).__name__}")
    if isinstance(history, Mapping):
        get = history.get
        return lambda a, b: int(get(frozenset((a, b)), 0))
    return lambda a, b: int(frozenset((a, b)) in history)


def _as_generator(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}")


def choose_pair(ratings: Mapping[Hashable, Rating], k: int, *,
                history: Mapping[frozenset, int] | Collection[frozenset] | None = None,
                rng: np.random.Generator | int | None = None,
                groups: Iterable[Collection[Hashable]] | None = None,
                explore: float = 0.1, window: int = 12, n_random: int = 8,
                repeat_penalty: float = 0.25) -> tuple[Hashable, Hashable]:
    """The next pair (left_id, right_id) to show, sides in random order.

    ratings: {image_id: Rating} of one class (from ``compute_ratings`` / ``RatingState.ratings``).
    k: size of the top-k to decide (clipped to 1..n-1).
    history: how often each unordered pair was asked, {frozenset({a, b}): count}, or a set of
        frozenset pairs; used to avoid repeats.
    rng: numpy Generator or int seed (same inputs + same seed -> same pair).
    groups: near-duplicate groups; when the first image has a group member it has not met yet,
        that member is its opponent (near-duplicates compete head to head).
    explore: share of choices that start from a little-compared image instead of the most
        undecided one.
    window: places on each side of the first image's rank taken as candidates (widened 4x when
        the best of them is a repeat); n_random: random candidates added each time.
    repeat_penalty: a pair's score is multiplied by this for each time it was already asked.
    """
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"explore must be within [0, 1], got {explore}")
    if not 0.0 < repeat_penalty <= 1.0:
        raise ValueError(f"repeat_penalty must be within (0, 1], got {repeat_penalty}")
    if window < 1 or n_random < 0:
        raise ValueError(f"need window >= 1 and n_random >= 0, got {window} and {n_random}")
    ids, mu, sigma, n_cmp = _rating_arrays(ratings)
    n = len(ids)
    if n < 2:
        raise ValueError(f"need at least two images to compare, got {n}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {k!r}")
    rng = _as_generator(rng)
    count = _count_lookup(history)
    k_eff = int(min(max(k, 1), n - 1))

    p_in = membership_probabilities(mu, sigma, k_eff)
    undecided = p_in * (1.0 - p_in)
    order = np.argsort(-mu, kind="stable")
    rank = np.empty(n, dtype=np.intp)
    rank[order] = np.arange(n)

    exploring = rng.random() < explore
    if exploring:
        weight = 1.0 / (1.0 + n_cmp) ** 2
    else:
        weight = (undecided * sigma) ** 2
    total = float(weight.sum())
    a = int(rng.choice(n, p=weight / total)) if total > 0 and math.isfinite(total) else int(rng.integers(n))
    # Exploring: place the image in the whole order (relevance to the boundary is ignored).
    relevance = np.ones(n) if exploring else undecided + 1e-3

    group_mates = _unmet_group_mates(ids, a, groups, count)
    if group_mates is not None:
        b, _ = _best_opponent(a, group_mates, mu, sigma, relevance, ids, count, rng, 1.0)
    else:
        # Every asking of a pair divides its value by 1/repeat_penalty, so an unasked pair wins
        # unless it is far less informative (a fresh but foregone pairing loses to repeating a
        # close one). If the best is still a repeat, look further along the order first.
        for width in (window, 4 * window):
            candidates = _candidates(a, rank[a], order, k_eff, width, n_random, rng)
            b, repeats = _best_opponent(a, candidates, mu, sigma, relevance, ids, count, rng,
                                        repeat_penalty)
            if repeats == 0:
                break
    left, right = (a, b) if rng.random() < 0.5 else (b, a)
    return ids[left], ids[right]


def _candidates(a, rank_a, order, k, width, n_random, rng) -> np.ndarray:
    n = order.shape[0]
    near = order[max(0, rank_a - width): rank_a + width + 1]
    boundary = order[max(0, k - width // 2): k + width // 2 + 1]
    random = rng.integers(0, n, size=n_random)
    candidates = np.unique(np.concatenate([near, boundary, random]))
    return candidates[candidates != a]


def _unmet_group_mates(ids, a, groups, count):
    if not groups:
        return None
    a_id = ids[a]
    for group in groups:
        if a_id in group:
            index = {image_id: i for i, image_id in enumerate(ids)} if len(group) > 1 else {}
            mates = [index[m] for m in group if m != a_id and m in index and count(a_id, m) == 0]
            return np.array(mates, dtype=np.intp) if mates else None
    return None


def _best_opponent(a, candidates, mu, sigma, relevance, ids, count, rng, repeat_penalty):
    """Most informative opponent: outcome uncertainty x what the answer teaches (summed variance)
    x relevance to the top-k x repeat_penalty ** (times asked). Returns (index, times asked)."""
    var_sum = sigma[a] ** 2 + sigma[candidates] ** 2
    q = 1.0 / (1.0 + np.exp(-(mu[a] - mu[candidates]) / np.sqrt(1.0 + _PI_OVER_8 * var_sum)))
    score = q * (1.0 - q) * var_sum * (relevance[a] + relevance[candidates])
    score = score * (1.0 + 1e-6 * rng.random(candidates.shape[0]))  # seeded tie-break
    a_id = ids[a]
    asked = np.array([count(a_id, ids[j]) for j in candidates.tolist()], dtype=np.int64)
    score = score * repeat_penalty ** asked
    best = int(np.argmax(score))
    return int(candidates[best]), int(asked[best])


__all__ = ["choose_pair"]
