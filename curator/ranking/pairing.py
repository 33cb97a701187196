"""Active choice of what to show next — a pair, or a screen of several images to pick the best of — aimed at
deciding which images are in the top-k.

What a screen is worth: every image's membership of the top-k is uncertain (P(in top-k) = Phi((mu - t) / sigma)
with the shared threshold t of `rating.top_k_threshold`). For each image on a screen, the answer says whether it
was picked; the screen's score is the sum over its images of the mutual information between "it is picked" and
"it is above t", with the ratings' own uncertainty and the modelled lapses (`RatingConfig.lapse`) integrated out.
So the best opponent for an undecided image is a well-known image near the threshold (the answer then says on
which side it falls), and an image whose place is settled (P near 0 or 1) adds nothing: it is no longer asked
about, though it may still serve as a reference.

Where the candidates come from: a short pool — the images whose membership is most uncertain (weighted by their
rating's spread), those around the top-k boundary, and a few at random. Pairs are scored over every pair in the
pool; a larger screen grows from its best pair one image at a time. Every earlier showing of two images together
divides a screen's score by four, and the pool is widened before a pair is shown again.

Why `explore`: the score is myopic. One wrong answer (a tenth of them, say) can push a top image so far down that
no single answer seems worth asking about it again, and at a few answers per image that is the most common way to
lose a top image. So a share of the screens is built around a little-compared image instead (a second opinion
before it is written off). Near duplicates meet head to head: an image on the screen whose near-duplicate group
holds a member it has not met yet is shown with that member.

Cost: O(n) numpy work plus O(pool^2) vectorised scoring; never the n^2 pairs. Pure logic, numpy only.
"""
from __future__ import annotations

import itertools
import math
from typing import Collection, Hashable, Iterable, Mapping

import numpy as np

from curator.ranking.rating import Rating, RatingConfig, _rating_arrays, normal_cdf, top_k_threshold

_PI_OVER_8 = math.pi / 8.0
_SQRT_2PI = math.sqrt(2.0 * math.pi)
DEFAULT_LAPSE = RatingConfig().lapse


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


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1.0 - 1e-12)
    return -(p * np.log(p) + (1.0 - p) * np.log1p(-p))


def screen_information(mu: np.ndarray, var: np.ndarray, t: float, lapse: float = DEFAULT_LAPSE) -> np.ndarray:
    """What each screen's answer tells about top-k membership, in nats: for screens given as rows of ratings
    ``mu``, ``var`` (shape (screens, images per screen)), the sum over their images of the mutual information
    between "the image is picked as the best" and "the image is above the threshold t".

    Model: an image is picked with the Plackett–Luce probability against the others taken as one opponent of
    strength log(sum exp(mu_j)) and the spread of their weighted mean, with the probit approximation for the
    uncertainty; then a lapse share `lapse` of picks is uniform. Its rating is split at t into the two truncated
    normals (above, below), each giving the chance of a pick.
    """
    mu = np.asarray(mu, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    m = mu.shape[1]
    # For image i, the others j != i as one opponent: log-sum-exp of their ratings, and the spread of their mean
    # weighted by exp(mu_j - opponent) (computed per (i, j) so that no sum is taken apart again).
    others = np.where(np.eye(m, dtype=bool), -np.inf, mu[:, None, :])  # (screens, i, j)
    top = others.max(axis=2, keepdims=True)
    weights = np.exp(others - top)
    total = weights.sum(axis=2, keepdims=True)
    opponent = (np.log(total) + top)[:, :, 0]
    opponent_var = np.sum((weights / total) ** 2 * var[:, None, :], axis=2)
    sd = np.sqrt(var)
    alpha = (t - mu) / sd
    above = 1.0 - normal_cdf(alpha)
    density = np.exp(-0.5 * alpha * alpha) / _SQRT_2PI
    ratio_above = density / np.maximum(above, 1e-12)
    ratio_below = density / np.maximum(1.0 - above, 1e-12)
    pick = []
    for mean, spread in ((mu + sd * ratio_above, var * (1.0 + alpha * ratio_above - ratio_above ** 2)),
                         (mu - sd * ratio_below, var * (1.0 - alpha * ratio_below - ratio_below ** 2))):
        z = (mean - opponent) / np.sqrt(1.0 + _PI_OVER_8 * (np.maximum(spread, 0.0) + opponent_var))
        pick.append((1.0 - lapse) / (1.0 + np.exp(-z)) + lapse / m)
    pick_above, pick_below = pick
    picked = above * pick_above + (1.0 - above) * pick_below
    info = (_binary_entropy(picked) - above * _binary_entropy(pick_above)
            - (1.0 - above) * _binary_entropy(pick_below))
    return info.sum(axis=1)


def choose_set(ratings: Mapping[Hashable, Rating], k: int, size: int = 4, *,
               history: Mapping[frozenset, int] | Collection[frozenset] | None = None,
               rng: np.random.Generator | int | None = None,
               groups: Iterable[Collection[Hashable]] | None = None,
               explore: float = 0.2, lapse: float = DEFAULT_LAPSE, pool: int = 24, n_random: int = 8,
               repeat_penalty: float = 0.25) -> tuple:
    """The next screen: `size` different image ids (fewer if the class has fewer), in random order.

    ratings: {image_id: Rating} of one class (from ``compute_ratings`` / ``RatingState.ratings``).
    k: size of the top-k to decide (clipped to 1..n-1).
    history: how often each unordered pair was shown together, {frozenset({a, b}): count}, or a set of
        frozenset pairs; used to avoid repeats.
    rng: numpy Generator or int seed (same inputs + same seed -> same screen).
    groups: near-duplicate groups; an image on the screen with a group member it has not met yet is shown with
        that member (near duplicates compete head to head).
    explore: share of screens built around a little-compared image.
    lapse: the ratings' lapse share (``RatingConfig.lapse``), for the chance of each answer.
    pool: how many of the most uncertain images are candidates (plus the boundary and `n_random` random ones);
        widened four times when the best screen would repeat a pair.
    repeat_penalty: a screen's score is multiplied by this for each time one of its pairs was already shown.
    """
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"explore must be within [0, 1], got {explore}")
    if not 0.0 < repeat_penalty <= 1.0:
        raise ValueError(f"repeat_penalty must be within (0, 1], got {repeat_penalty}")
    if pool < 2 or n_random < 0:
        raise ValueError(f"need pool >= 2 and n_random >= 0, got {pool} and {n_random}")
    if not 0.0 <= lapse < 1.0:
        raise ValueError(f"lapse must be within [0, 1), got {lapse}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"a screen shows at least two images, got size={size!r}")
    ids, mu, sigma, n_cmp = _rating_arrays(ratings)
    n = len(ids)
    if n < 2:
        raise ValueError(f"need at least two images to compare, got {n}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {k!r}")
    rng = _as_generator(rng)
    count = _count_lookup(history)
    size = min(int(size), n)
    k_eff = int(min(max(k, 1), n - 1))
    sigma = np.maximum(sigma, 1e-9)
    var = sigma * sigma
    t = top_k_threshold(mu, sigma, k_eff)
    weight = _binary_entropy(normal_cdf((mu - t) / sigma)) * sigma
    order = np.argsort(-mu, kind="stable")
    by_weight = np.argsort(-weight, kind="stable")

    anchor = None
    if rng.random() < explore:
        fresh = 1.0 / (1.0 + n_cmp) ** 2
        anchor = int(rng.choice(n, p=fresh / fresh.sum()))

    def candidates(width: int) -> np.ndarray:
        half = max(1, width // 4)
        parts = [by_weight[:width], order[max(0, k_eff - half): k_eff + half], rng.integers(0, n, size=n_random)]
        if anchor is not None:
            parts.append(np.array([anchor]))
        return np.unique(np.concatenate(parts))

    def repeats(screen: list[int], extra: int) -> int:
        return sum(count(ids[extra], ids[j]) for j in screen)

    for width in (pool, 4 * pool):
        members = candidates(width)
        if anchor is None:
            pairs = np.array(list(itertools.combinations(members.tolist(), 2)), dtype=np.intp)
        else:
            pairs = np.array([(anchor, j) for j in members.tolist() if j != anchor], dtype=np.intp)
        asked = np.array([count(ids[a], ids[b]) for a, b in pairs.tolist()], dtype=np.int64)
        score = screen_information(mu[pairs], var[pairs], t, lapse) * repeat_penalty ** asked
        score = score * (1.0 + 1e-6 * rng.random(len(score)))  # seeded tie-break
        best = int(np.argmax(score))
        if asked[best] == 0 or len(members) == n:
            break
    screen = [int(i) for i in pairs[best]]
    screen = _with_group_mates(screen, ids, groups, count, size)

    while len(screen) < size:  # grow the screen one image at a time, widening the pool before repeating a pair
        for width in (pool, 4 * pool, n):
            rest = np.array([j for j in candidates(width).tolist() if j not in screen], dtype=np.intp)
            if not len(rest):
                continue
            rows = np.column_stack([np.tile(screen, (len(rest), 1)), rest])
            asked = np.array([repeats(screen, j) for j in rest.tolist()], dtype=np.int64)
            score = screen_information(mu[rows], var[rows], t, lapse) * repeat_penalty ** asked
            score = score * (1.0 + 1e-6 * rng.random(len(score)))
            best = int(np.argmax(score))
            if asked[best] == 0:
                break
        screen.append(int(rest[best]))
    return tuple(ids[i] for i in rng.permutation(screen).tolist())


def choose_pair(ratings: Mapping[Hashable, Rating], k: int, **options) -> tuple[Hashable, Hashable]:
    """The next pair (left_id, right_id), sides in random order: ``choose_set`` with two images."""
    left, right = choose_set(ratings, k, 2, **options)
    return left, right


def _with_group_mates(screen: list[int], ids, groups, count, size: int) -> list[int]:
    """If an image on the screen has near-duplicate group members it has not met, show it with them instead."""
    if not groups:
        return screen
    index = None
    for image in screen:
        image_id = ids[image]
        for group in groups:
            if image_id not in group:
                continue
            if index is None:
                index = {image_id: i for i, image_id in enumerate(ids)}
            mates = [index[m] for m in group if m != image_id and m in index and count(image_id, m) == 0]
            if mates:
                return [image] + sorted(mates)[: size - 1]
            break
    return screen


__all__ = ["screen_information", "choose_set", "choose_pair"]
