"""Bradley–Terry ratings with an uncertainty per image, derived from stored pairwise comparisons.

Why this shape: ratings are *derived* data. The stored comparisons (in stored order) are the truth;
a rating is a pure, deterministic function of them, so recomputing from scratch and updating one
answer at a time must agree exactly. Both paths run the same two stages:

1. an online Gaussian update per comparison (a one-step Laplace / assumed-density update of the
   logistic Bradley–Terry likelihood, in the spirit of Glicko and Weng & Lin 2011 — not TrueSkill),
   replayed in stored order; it is cheap, and it gives the warm start for
2. an optional full-batch MAP refinement (Newton with preconditioned conjugate gradients over all
   comparisons, Gaussian prior), which removes the order dependence of stage 1. It is a function of
   the stage-1 state and the comparison log only, so it is identical in both paths.

Scale: ``mu`` is in natural log-odds, P(a beats b) = 1 / (1 + exp(-(mu_a - mu_b))). "tie" counts as
half a win each. "neither" (neither image belongs) is not a comparison: it is skipped here, the
caller flags both images. Pure logic: numpy only, no Flask, no database.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, NamedTuple

import numpy as np

OUTCOMES = ("left", "right", "tie", "neither")
_SCORE = {"left": 1.0, "right": 0.0, "tie": 0.5}  # what the left image scores
_PI_OVER_8 = math.pi / 8.0


class Rating(NamedTuple):
    """One image's rating: mean and standard deviation in log-odds, and comparisons counted."""

    mu: float
    sigma: float
    n: int


class Comparison(NamedTuple):
    """One stored answer. ``outcome`` is "left", "right", "tie" or "neither"."""

    left: Hashable
    right: Hashable
    outcome: str


@dataclass(frozen=True)
class RatingConfig:
    """Model settings (plain data, passed in).

    prior_sigma: spread of a fresh image's rating in log-odds (2.0: a 1-sigma image beats an
        average one ~88% of the time).
    refine: run the full-batch MAP refinement after the online replay (better estimates, costs
        O(comparisons) per refinement; both recompute and incremental paths apply it).
    """

    prior_sigma: float = 2.0
    refine: bool = True
    refine_max_newton: int = 25
    refine_tol: float = 1e-6

    def __post_init__(self):
        if not (self.prior_sigma > 0 and math.isfinite(self.prior_sigma)):
            raise ValueError(f"prior_sigma must be a positive number, got {self.prior_sigma!r}")
        if self.refine_max_newton < 1:
            raise ValueError("refine_max_newton must be at least 1")


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _parse(comparison) -> tuple[Hashable, Hashable, str]:
    try:
        left, right, outcome = comparison
    except (TypeError, ValueError):
        raise ValueError(f"a comparison is (left_id, right_id, outcome), got {comparison!r}") from None
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    if left == right:
        raise ValueError(f"an image cannot be compared with itself: {left!r}")
    return left, right, outcome


class RatingState:
    """Ratings of a fixed set of images plus the log of comparisons they were derived from.

    ``apply`` updates in place (the incremental path); ``compute_ratings`` builds a fresh state and
    applies every comparison in order (the recompute path) — the same code, so the same numbers.
    """

    def __init__(self, image_ids: Iterable[Hashable], config: RatingConfig | None = None):
        self.config = config or RatingConfig()
        self.ids: list[Hashable] = []
        self.index: dict[Hashable, int] = {}
        self._mu: list[float] = []
        self._var: list[float] = []
        self._n: list[int] = []
        self._left: list[int] = []
        self._right: list[int] = []
        self._score: list[float] = []
        self._cache: tuple[np.ndarray, np.ndarray] | None = None
        for image_id in image_ids:
            self.add_image(image_id)

    def add_image(self, image_id: Hashable) -> None:
        """Add an image with the prior rating (new images can join a class at any time)."""
        if image_id in self.index:
            raise ValueError(f"image {image_id!r} is already rated")
        self.index[image_id] = len(self.ids)
        self.ids.append(image_id)
        self._mu.append(0.0)
        self._var.append(self.config.prior_sigma ** 2)
        self._n.append(0)
        self._cache = None

    def copy(self) -> "RatingState":
        other = RatingState.__new__(RatingState)
        other.config = self.config
        other.ids = list(self.ids)
        other.index = dict(self.index)
        for name in ("_mu", "_var", "_n", "_left", "_right", "_score"):
            setattr(other, name, list(getattr(self, name)))
        other._cache = self._cache
        return other

    @property
    def comparisons_counted(self) -> int:
        """Comparisons that entered the rating ("neither" answers are not counted)."""
        return len(self._score)

    def apply(self, comparison) -> None:
        """Fold one comparison into the state, in place. "neither" is validated and ignored."""
        left, right, outcome = _parse(comparison)
        try:
            i, j = self.index[left], self.index[right]
        except KeyError as e:
            raise KeyError(f"comparison names an image that is not rated here: {e.args[0]!r}") from None
        if outcome == "neither":
            return
        y = _SCORE[outcome]
        mu, var = self._mu, self._var
        ma, mb, va, vb = mu[i], mu[j], var[i], var[j]
        s2 = va + vb
        # Probability of the left win with both ratings' uncertainty integrated out (probit approx.).
        p = _sigmoid((ma - mb) / math.sqrt(1.0 + _PI_OVER_8 * s2))
        g = y - p
        h = p * (1.0 - p)
        denom = 1.0 + h * s2
        # One Newton step of the 2-d posterior from the prior (Sherman–Morrison on the rank-1 term).
        mu[i] = ma + va * g / denom
        mu[j] = mb - vb * g / denom
        var[i] = va * (1.0 - va * h / denom)
        var[j] = vb * (1.0 - vb * h / denom)
        self._n[i] += 1
        self._n[j] += 1
        self._left.append(i)
        self._right.append(j)
        self._score.append(y)
        self._cache = None

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mu, sigma, n) as arrays in ``self.ids`` order, refined if the config says so."""
        if self._cache is None:
            mu = np.array(self._mu, dtype=np.float64)
            var = np.array(self._var, dtype=np.float64)
            if self.config.refine and self._score:
                mu, var = _refine(mu, np.array(self._left, dtype=np.intp),
                                  np.array(self._right, dtype=np.intp),
                                  np.array(self._score, dtype=np.float64), self.config)
            self._cache = (mu, np.sqrt(var))
        mu, sigma = self._cache
        return mu.copy(), sigma.copy(), np.array(self._n, dtype=np.int64)

    def ratings(self) -> dict[Hashable, Rating]:
        mu, sigma, n = self.arrays()
        return {image_id: Rating(float(m), float(s), int(c))
                for image_id, m, s, c in zip(self.ids, mu.tolist(), sigma.tolist(), n.tolist())}


def _refine(mu0, left, right, y, config: RatingConfig):
    """Full-batch MAP of the logistic Bradley–Terry posterior, warm-started from the online means.

    Returns (mu, var); var is a diagonal Laplace approximation in which each comparison's
    information is discounted by the opponent's own uncertainty (as the online update does), so
    an image that only met poorly-known opponents stays uncertain.
    """
    n = mu0.shape[0]
    prec0 = 1.0 / config.prior_sigma ** 2

    def objective(theta):
        d = theta[left] - theta[right]
        # -[y log s(d) + (1-y) log s(-d)] = logaddexp(0, -d) + (1 - y) d
        return float(np.sum(np.logaddexp(0.0, -d) + (1.0 - y) * d) + 0.5 * prec0 * theta @ theta)

    def grad_hess(theta):
        d = theta[left] - theta[right]
        p = 1.0 / (1.0 + np.exp(-d))
        r = p - y
        g = prec0 * theta + np.bincount(left, r, n) - np.bincount(right, r, n)
        h = p * (1.0 - p)
        return g, h

    theta = mu0.copy()
    f = objective(theta)
    for _ in range(config.refine_max_newton):
        g, h = grad_hess(theta)
        if np.max(np.abs(g)) < config.refine_tol:
            break
        diag = prec0 + np.bincount(left, h, n) + np.bincount(right, h, n)

        def hess_vec(v):
            t = h * (v[left] - v[right])
            return prec0 * v + np.bincount(left, t, n) - np.bincount(right, t, n)

        # Inexact Newton: solve loosely while far from the mode, tightly near it.
        forcing = min(0.1, float(np.sqrt(g @ g)))
        step = _pcg(hess_vec, -g, diag, tol=forcing, max_iter=200)
        # Backtracking keeps the iteration monotone even from a poor warm start.
        slope = float(g @ step)
        t = 1.0
        while True:
            candidate = theta + t * step
            f_new = objective(candidate)
            if f_new <= f + 1e-4 * t * slope or t < 1e-6:
                break
            t *= 0.5
        if f_new > f:  # no descent left at float precision: converged
            break
        theta, f = candidate, f_new

    d = theta[left] - theta[right]
    p = 1.0 / (1.0 + np.exp(-d))
    h = p * (1.0 - p)
    var = 1.0 / (prec0 + np.bincount(left, h, n) + np.bincount(right, h, n))
    for _ in range(2):  # discount each comparison by the opponent's uncertainty
        info_left = h / (1.0 + h * var[right])
        info_right = h / (1.0 + h * var[left])
        var = 1.0 / (prec0 + np.bincount(left, info_left, n) + np.bincount(right, info_right, n))
    return theta, var


def _pcg(matvec, b, diag, *, tol, max_iter):
    """Jacobi-preconditioned conjugate gradients for the (SPD) Hessian system."""
    x = np.zeros_like(b)
    r = b.copy()
    z = r / diag
    p = z.copy()
    rz = float(r @ z)
    b_norm = float(np.sqrt(b @ b)) or 1.0
    for _ in range(max_iter):
        ap = matvec(p)
        alpha = rz / float(p @ ap)
        x += alpha * p
        r -= alpha * ap
        if float(np.sqrt(r @ r)) <= tol * b_norm:
            break
        z = r / diag
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x


def update(state: RatingState, comparison) -> RatingState:
    """Pure incremental step: a new state with ``comparison`` folded in (``state`` is untouched).

    For many answers in a row, ``state.apply`` avoids the copy.
    """
    new = state.copy()
    new.apply(comparison)
    return new


def replay(image_ids: Iterable[Hashable], comparisons: Iterable,
           config: RatingConfig | None = None) -> RatingState:
    """A fresh state with every comparison applied in stored order."""
    state = RatingState(image_ids, config)
    for comparison in comparisons:
        state.apply(comparison)
    return state


def compute_ratings(image_ids: Iterable[Hashable], comparisons: Iterable,
                    config: RatingConfig | None = None) -> dict[Hashable, Rating]:
    """Recompute every rating from scratch: {image_id: Rating(mu, sigma, n)}. Deterministic."""
    return replay(image_ids, comparisons, config).ratings()


# --- membership of the top-k -------------------------------------------------------------------

def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, vectorised with numpy only (Abramowitz & Stegun 7.1.26, |err| < 1.5e-7)."""
    x = np.asarray(x, dtype=np.float64)
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                            + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _check_k(k, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {k!r}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return int(min(k, n))


def membership_probabilities(mu: np.ndarray, sigma: np.ndarray, k: int) -> np.ndarray:
    """Fast analytic P(in top-k): p_i = Phi((mu_i - t) / sigma_i) with t chosen so sum(p) = k.

    A mean-field approximation (the k-th best score treated as one shared threshold); O(n) per
    bisection step, so it is cheap enough to run on every pair choice.
    """
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-9)
    n = mu.shape[0]
    k = _check_k(k, n)
    if k == 0:
        return np.zeros(n)
    if k == n:
        return np.ones(n)
    # Safeguarded Newton on t for f(t) = sum_i Phi((mu_i - t) / sigma_i) - k, which falls with t.
    lo = float(np.min(mu - 9.0 * sigma))  # f(lo) ~ n - k > 0
    hi = float(np.max(mu + 9.0 * sigma))  # f(hi) ~ -k < 0
    t = float(np.partition(mu, n - k)[n - k])  # the k-th best mean: usually close already
    for _ in range(60):
        z = (mu - t) / sigma
        f = float(np.sum(normal_cdf(z))) - k
        if abs(f) < 1e-6:
            break
        if f > 0:
            lo = t
        else:
            hi = t
        slope = float(np.sum(np.exp(-0.5 * z * z) / sigma)) / math.sqrt(2.0 * math.pi)
        t_next = t + f / slope if slope > 0 else 0.5 * (lo + hi)
        t = t_next if lo < t_next < hi else 0.5 * (lo + hi)
    return normal_cdf((mu - t) / sigma)


def _rating_arrays(ratings: Mapping[Hashable, Rating]):
    ids = list(ratings)
    flat = itertools.chain.from_iterable(ratings.values())  # Rating is a 3-tuple: no per-row copy
    try:
        table = np.fromiter(flat, dtype=np.float64, count=3 * len(ids)).reshape(-1, 3)
    except (TypeError, ValueError):
        raise ValueError("ratings must map image ids to Rating(mu, sigma, n)") from None
    return ids, table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()


def prob_in_top_k(ratings: Mapping[Hashable, Rating], k: int, *, samples: int = 2000,
                  seed: int = 0, method: str = "mc") -> dict[Hashable, float]:
    """P(image is among the k best) for each image.

    method="mc": Monte Carlo over independent normal draws of every rating (deterministic for a
    seed; the estimates sum to exactly k). method="analytic": ``membership_probabilities``.
    """
    ids, mu, sigma, _ = _rating_arrays(ratings)
    n = len(ids)
    k = _check_k(k, n)
    if method == "analytic":
        p = membership_probabilities(mu, sigma, k)
    elif method == "mc":
        if samples < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if k in (0, n):
            p = np.full(n, float(k == n) if n else 0.0)
        else:
            rng = np.random.default_rng(seed)
            counts = np.zeros(n, dtype=np.int64)
            chunk = max(1, 2_000_000 // max(n, 1))  # bound memory at large n
            done = 0
            while done < samples:
                m = min(chunk, samples - done)
                draws = mu + sigma * rng.standard_normal((m, n))
                top = np.argpartition(-draws, k - 1, axis=1)[:, :k]
                counts += np.bincount(top.ravel(), minlength=n)
                done += m
            p = counts / samples
    else:
        raise ValueError(f"method must be 'mc' or 'analytic', got {method!r}")
    return dict(zip(ids, p.tolist()))


class Progress(NamedTuple):
    """How settled the top-k is: ``settled_in`` of ``k`` places are confirmed (P > threshold);
    ``settled`` of ``n`` images have a decided membership either way (P > t or P < 1 - t)."""

    settled_in: int
    k: int
    settled: int
    n: int


def settled_progress(ratings: Mapping[Hashable, Rating], k: int, *, threshold: float = 0.95,
                     probabilities: Mapping[Hashable, float] | None = None,
                     samples: int = 2000, seed: int = 0) -> Progress:
    """Progress counter for the compare page ("41 of 64 top places settled").

    Pass ``probabilities`` (from ``prob_in_top_k``) to avoid computing them twice.
    """
    if not 0.5 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0.5, 1), got {threshold}")
    n = len(ratings)
    k = _check_k(k, n)
    p = probabilities if probabilities is not None else prob_in_top_k(ratings, k, samples=samples,
                                                                       seed=seed)
    values = np.array([p[i] for i in ratings], dtype=np.float64)
    settled_in = int(np.sum(values > threshold))
    settled = settled_in + int(np.sum(values < 1.0 - threshold))
    return Progress(min(settled_in, k), k, settled, n)


def pair_counts(comparisons: Iterable) -> dict[frozenset, int]:
    """How often each unordered pair was asked (every answer counts, "neither" included)."""
    counts: dict[frozenset, int] = {}
    for comparison in comparisons:
        left, right, _ = _parse(comparison)
        key = frozenset((left, right))
        counts[key] = counts.get(key, 0) + 1
    return counts


__all__ = ["OUTCOMES", "Rating", "Comparison", "RatingConfig", "RatingState", "update", "replay",
           "compute_ratings", "normal_cdf", "membership_probabilities", "prob_in_top_k", "Progress",
           "settled_progress", "pair_counts"]
