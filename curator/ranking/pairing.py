"""Active choice of what to show next — a pair, or a screen of several images to pick the best of — aimed at
deciding which images are in the top-k.

What a screen is worth: every image's membership of the top-k is uncertain (P(in top-k) = Phi((mu - t) / sigma)
with the shared threshold t of `rating.top_k_threshold`). A screen's score is the mutual information between its
answer (which image is picked) and the memberships of its images, with the ratings' own uncertainty and the
modelled lapses (`RatingConfig.lapse`) folded in (`screen_information`). So the best company for two undecided
images is weaker, settled ones (the pick then says which of the two is better), and an image whose place is
settled (P near 0 or 1) is no longer asked about, though it may still serve as a reference.

Where the candidates come from: a short pool — the images whose membership is most uncertain (weighted by their
rating's spread), those around the top-k boundary, and a few at random. The first two images are the best pair in
the pool; a larger screen grows from them one image at a time.

Repeats: with the ratings' joint covariance (classes up to 1000 images), a pair that met before is worth what is
left to learn about its order (`order_uncertainty`, at least the repeat penalty below), so two close images at the
boundary meet again until they are told apart, however often they met, and a pair whose order is decided is not
asked again. Without it, every earlier showing of two images together divides a screen's score by four, and the
pool is widened before a pair is shown again. Why: with the plain penalty, once the dozen images around place k
had met each other, most screens put one of them with three far weaker images; each then won about nine screens
in ten, and the order around place k was decided by who had suffered more slips against far weaker images
(bench/ranking_sim.py, seed 101: true places 10, 14 and 15 left out at 469 clicks after 33-34 screens each, 5-8
of them slips, few of them against each other).

Two departures from that score, because it is myopic and blind to how well two images are told apart when they
met directly (their ratings are correlated; the marginal sigmas do not show it):
- the duel: once top places settle, that share of screens starts from the pair that decides the most, the least
  settled image inside the top-k against the outsider most likely to beat it (from the joint covariance), repeats
  allowed — so the last boundary gets settled instead of circled;
- explore: one wrong answer can push a top image so far down that no single answer seems worth asking about it
  again, and at a few answers per image that is the most common way to lose one. So a share of screens is built
  around an image shown fewer than three times (a second opinion before it is written off).
Near duplicates meet head to head: an image on the screen whose near-duplicate group holds a member it has not
met yet is shown with that member.

Cost: O(n) numpy work plus O(pool^2) vectorised scoring (and O(n) with the covariance); never the n^2 pairs. Pure
logic, numpy only.
"""
from __future__ import annotations

import itertools
import math
from typing import Collection, Hashable, Iterable, Mapping

import numpy as np

from curator.ranking.rating import Rating, RatingConfig, _rating_arrays, normal_cdf, top_k_membership, top_k_threshold

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
    ``mu``, ``var`` (shape (screens, images per screen)), the mutual information between the pick (which image is
    named the best) and the images' memberships (each image above the threshold t or not).

    Model: memberships independent, P(above) = Phi((mu - t) / sigma); given them, each rating is the normal
    truncated at t on its side, and the pick is Plackett–Luce over those means (uncertainty folded in with the
    probit approximation), a lapse share `lapse` of picks uniform. Summed over the 2^m membership patterns of a
    screen of m. So two undecided images shown with two weaker, settled ones make a telling screen (the pick says
    which of the two is better), while four undecided ones mostly tell about the best of them.
    """
    mu = np.asarray(mu, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    screens, m = mu.shape
    sd = np.sqrt(var)
    alpha = (t - mu) / sd
    above = 1.0 - normal_cdf(alpha)
    density = np.exp(-0.5 * alpha * alpha) / _SQRT_2PI
    ratio_above = density / np.maximum(above, 1e-12)
    ratio_below = density / np.maximum(1.0 - above, 1e-12)
    # Each rating below and above t: (side, screen, image) arrays of its mean, variance and probability.
    mean = np.stack([mu - sd * ratio_below, mu + sd * ratio_above])
    spread = np.maximum(np.stack([var * (1.0 - alpha * ratio_below - ratio_below ** 2),
                                  var * (1.0 + alpha * ratio_above - ratio_above ** 2)]), 0.0)
    chance = np.stack([1.0 - above, above])
    # Every membership pattern at once: (pattern, screen, image).
    patterns = np.array(list(itertools.product((0, 1), repeat=m)), dtype=np.intp)[:, None, :]
    cells = (patterns, np.arange(screens)[None, :, None], np.arange(m)[None, None, :])
    weight = np.prod(chance[cells], axis=2)
    z = mean[cells] / np.sqrt(1.0 + _PI_OVER_8 * 2.0 * spread[cells].mean(axis=2, keepdims=True))
    e = np.exp(z - z.max(axis=2, keepdims=True))
    pick = (1.0 - lapse) * e / e.sum(axis=2, keepdims=True) + lapse / m
    mixture = np.sum(weight[:, :, None] * pick, axis=0)
    conditional_entropy = np.sum(weight * _entropy(pick), axis=0)
    return np.maximum(_entropy(mixture) - conditional_entropy, 0.0)


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis of an array of probabilities."""
    return -np.sum(p * np.log(np.maximum(p, 1e-300)), axis=-1)


def choose_set(ratings: Mapping[Hashable, Rating], k: int, size: int = 4, *,
               history: Mapping[frozenset, int] | Collection[frozenset] | None = None,
               rng: np.random.Generator | int | None = None,
               groups: Iterable[Collection[Hashable]] | None = None,
               covariance: np.ndarray | None = None, settled: float = 0.95, on_show: Iterable[Collection] = (),
               explore: float = 0.2, fresh_below: int = 3, lapse: float = DEFAULT_LAPSE, pool: int = 24,
               n_random: int = 8, repeat_penalty: float = 0.25) -> tuple:
    """The next screen: `size` different image ids (fewer if the class has fewer), in random order.

    ratings: {image_id: Rating} of one class (from ``compute_ratings`` / ``RatingState.ratings``).
    k: size of the top-k to decide (clipped to 1..n-1).
    history: how often each unordered pair was shown together, {frozenset({a, b}): count}, or a set of
        frozenset pairs; used to avoid repeats.
    rng: numpy Generator or int seed (same inputs + same seed -> same screen).
    groups: near-duplicate groups; an image on the screen with a group member it has not met yet is shown with
        that member (near duplicates compete head to head).
    covariance: the ratings' joint covariance (``RatingState.covariance``, in `ratings` order), if known. Then
        a share of the screens equal to the share of top places already settled (P(in top-k) > `settled`, as
        ``rating.top_k_membership`` counts them) starts from the duel that decides the most: the least settled
        image inside the top-k against the outsider most likely to beat it, however often they met (but not
        while both are on a screen already on show, `on_show`: screens of ids).
    explore: share of screens built around a little-compared image, one shown fewer than `fresh_below` times
        (none once every image has been shown that often).
    lapse: the ratings' lapse share (``RatingConfig.lapse``), for the chance of each answer.
    pool: how many of the most uncertain images are candidates (plus the boundary and `n_random` random ones);
        widened four times when the best screen would repeat a pair.
    repeat_penalty: a screen's score is multiplied by this for each time one of its pairs was already shown; with
        a covariance, the first pair's by the larger of this and what is left to learn about its order.
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
    fresh = np.flatnonzero(n_cmp < fresh_below)
    if len(fresh) and rng.random() < explore:
        weight_fresh = 1.0 / (1.0 + n_cmp[fresh]) ** 2
        anchor = int(fresh[rng.choice(len(fresh), p=weight_fresh / weight_fresh.sum())])

    def candidates(width: int) -> np.ndarray:
        half = max(1, width // 4)
        parts = [by_weight[:width], order[max(0, k_eff - half): k_eff + half], rng.integers(0, n, size=n_random)]
        if anchor is not None:
            parts.append(np.array([anchor]))
        return np.unique(np.concatenate(parts))

    def repeats(screen: list[int], extra: int) -> int:
        return sum(count(ids[extra], ids[j]) for j in screen)

    def best_pair() -> list[int]:
        """The most telling pair of the pool (with the explored image, if any), widening the pool once before
        repeating a pair."""
        for width in (pool, 4 * pool):
            members = candidates(width)
            if anchor is None:
                pairs = np.array(list(itertools.combinations(members.tolist(), 2)), dtype=np.intp)
            else:
                pairs = np.array([(anchor, j) for j in members.tolist() if j != anchor], dtype=np.intp)
            asked = np.array([count(ids[a], ids[b]) for a, b in pairs.tolist()], dtype=np.int64)
            score = screen_information(mu[pairs], var[pairs], t, lapse)
            if covariance is None:
                score *= repeat_penalty ** asked
            else:  # a pair that met is worth what is left to learn about its order; never the pair of a screen on show
                score *= np.maximum(order_uncertainty(mu, covariance, pairs), repeat_penalty ** asked)
                score[on_screen(pairs)] = -1.0
            best = int(np.argmax(score * (1.0 + 1e-6 * rng.random(len(score)))))  # seeded tie-break
            if asked[best] == 0 or covariance is not None or len(members) == n:
                break
        return [int(i) for i in pairs[best]]

    on_show = [set(shown) for shown in on_show]
    showing = np.zeros((len(on_show) if covariance is not None else 0, n), dtype=bool)  # images of each on show
    for row, shown in zip(showing, on_show):
        row[[j for j, image_id in enumerate(ids) if image_id in shown]] = True

    def on_screen(pairs: np.ndarray) -> np.ndarray:
        """Whether a screen on show holds both images of each pair."""
        return np.any(showing[:, pairs[:, 0]] & showing[:, pairs[:, 1]], axis=0)

    screen = None
    if anchor is None and covariance is not None:
        screen = _duel(mu, covariance, order, k_eff, settled, rng)
        if screen and any(ids[screen[0]] in shown and ids[screen[1]] in shown for shown in on_show):
            screen = None
    screen = _with_group_mates(screen or best_pair(), ids, groups, count, size)

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


def order_uncertainty(mu: np.ndarray, covariance: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """How undecided each pair's order is, from 1 (a coin flip) to 0 (certain): the binary entropy in bits of
    P(theta_a > theta_b) = Phi((mu_a - mu_b) / sd(theta_a - theta_b)) under the ratings' joint covariance.

    Why not "how often they met": two close images that met once, with one answer that may have been a slip,
    are still undecided, and asking them again is the answer that decides them; two that met often and agreed
    each time are decided, as are two far apart that never met."""
    a, b = pairs[:, 0], pairs[:, 1]
    variance = np.diag(covariance)
    spread = np.maximum(variance[a] + variance[b] - 2.0 * covariance[a, b], 1e-12)
    return _binary_entropy(normal_cdf((mu[a] - mu[b]) / np.sqrt(spread))) / math.log(2.0)


def choose_pair(ratings: Mapping[Hashable, Rating], k: int, **options) -> tuple[Hashable, Hashable]:
    """The next pair (left_id, right_id), sides in random order: ``choose_set`` with two images."""
    left, right = choose_set(ratings, k, 2, **options)
    return left, right


def _duel(mu, covariance, order, k, settled, rng) -> list[int] | None:
    """The pair whose order decides the most once most of the top-k is settled: the least settled image inside the
    top-k and the outsider most likely to beat it; asked for a share of screens equal to the share of top places
    settled (none at the start, nearly all at the end), and never once every place is settled. None otherwise."""
    p = top_k_membership(mu, None, k, covariance)
    inside, outside = order[:k], order[k:]
    if not len(outside) or rng.random() >= float(np.mean(p[inside] > settled)):
        return None
    weakest = int(inside[np.argmin(p[inside])])
    if p[weakest] > settled:  # every place is settled: nothing left to duel over
        return None
    variance = np.diag(covariance)
    spread = np.maximum(variance[outside] + variance[weakest] - 2.0 * covariance[outside, weakest], 1e-12)
    rival = int(outside[np.argmax(normal_cdf((mu[outside] - mu[weakest]) / np.sqrt(spread)))])
    return [weakest, rival]


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


__all__ = ["screen_information", "order_uncertainty", "choose_set", "choose_pair"]
