"""Bradley–Terry / Plackett–Luce ratings with an uncertainty per image, derived from stored answers.

Why this shape: ratings are *derived* data. The stored answers (in stored order) are the truth; a rating is a
pure, deterministic function of them, so recomputing from scratch and updating one answer at a time must agree
exactly. Both paths run the same two stages:

1. an online Gaussian update per answer (a one-step Laplace / assumed-density update of the likelihood, in the
   spirit of Glicko and Weng & Lin 2011 — not TrueSkill), replayed in stored order; it is cheap, and it gives the
   warm start for
2. an optional full-batch MAP refinement (Newton with preconditioned conjugate gradients over all answers,
   Gaussian prior), which removes the order dependence of stage 1. It is a function of the stage-1 state and the
   answer log only, so it is identical in both paths.

Answers: a pair answer ``(left, right, outcome)`` ("left", "right", "tie" or "neither"), or a ``Choice(shown,
order)``: the person saw 2 or more images and named the best (``order`` = (best,)) or ordered them, best first.
The model is Plackett–Luce: P(i is picked from S) = exp(mu_i) / sum_{j in S} exp(mu_j), which for two images is
exactly Bradley–Terry, P(a beats b) = 1 / (1 + exp(-(mu_a - mu_b))); an order is the chain of such picks (best of
all, then best of the rest ...). So a best-of-4 answer counts as the three pairwise wins it implies, weighed as one
choice among four, not as three independent answers. "tie" counts as half a win each. "neither" (neither image
belongs) is not a comparison: it is skipped here, the caller flags both images.

Lapses: with ``RatingConfig.lapse`` = λ, a share λ of answers is modelled as given at random (a slip of the finger,
a glance at the wrong image): P(i) = (1 - λ) PL(i) + λ / |S|. An answer the ratings find very unlikely then
moves them less, instead of dragging a clearly strong image far down on one slip.

Who is in the top-k: ``top_k_membership`` reads each image's margin over the images at the boundary with the
ratings' joint covariance (``RatingState.covariance``): two neighbours that met often are told apart even while
each is still unsure on the whole scale. ``membership_probabilities`` is the cheaper mean-field estimate from the
marginal sigmas alone (one shared threshold), used to aim the next screen and beyond ~1000 images.

Scale: ``mu`` is in natural log-odds. Pure logic: numpy only, no Flask, no database.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

OUTCOMES = ("left", "right", "tie", "neither")
_TARGET = {"left": (1.0, 0.0), "right": (0.0, 1.0), "tie": (0.5, 0.5)}  # what each image of a pair scores
_PI_OVER_8 = math.pi / 8.0


class Rating(NamedTuple):
    """One image's rating: mean and standard deviation in log-odds, and answers it took part in."""

    mu: float
    sigma: float
    n: int


class Comparison(NamedTuple):
    """One stored pair answer. ``outcome`` is "left", "right", "tie" or "neither"."""

    left: Hashable
    right: Hashable
    outcome: str


class Choice(NamedTuple):
    """One answer on a screen of several images: ``shown`` (2 or more distinct images) and ``order``, the images
    the person picked, best first: just the best, or every image (the last may be left out: it is implied)."""

    shown: tuple
    order: tuple


@dataclass(frozen=True)
class RatingConfig:
    """Model settings (plain data, passed in).

    prior_sigma: spread of a fresh image's rating in log-odds (2.0: a 1-sigma image beats an
        average one ~88% of the time).
    lapse: share of answers modelled as given at random (see the module docstring); 0 is plain
        Bradley–Terry / Plackett–Luce.
    refine: run the full-batch MAP refinement after the online replay (better estimates, costs
        O(comparisons) per refinement; both recompute and incremental paths apply it).
    """

    prior_sigma: float = 2.0
    lapse: float = 0.1
    refine: bool = True
    refine_max_newton: int = 25
    refine_tol: float = 1e-6

    def __post_init__(self):
        if not (self.prior_sigma > 0 and math.isfinite(self.prior_sigma)):
            raise ValueError(f"prior_sigma must be a positive number, got {self.prior_sigma!r}")
        if not 0.0 <= self.lapse < 1.0:
            raise ValueError(f"lapse must be within [0, 1), got {self.lapse!r}")
        if self.refine_max_newton < 1:
            raise ValueError("refine_max_newton must be at least 1")


# An answer becomes one or more *stages*: (images, target, weight). A stage is one pick from `images` (2 or more),
# `target` says which image was picked (1.0 for it, 0.0 for the others; (0.5, 0.5) for a tie between a pair).

def stages_of(comparison) -> tuple[tuple, list[tuple[tuple, tuple]]]:
    """Validate one answer and return (the images it involves, its stages as (images, target)); no stages for
    "neither". ValueError says what is wrong."""
    if isinstance(comparison, Choice) or (isinstance(comparison, tuple) and len(comparison) == 2):
        return _choice_stages(*comparison)
    try:
        left, right, outcome = comparison
    except (TypeError, ValueError):
        raise ValueError(f"a comparison is (left_id, right_id, outcome) or Choice(shown, order), "
                         f"got {comparison!r}") from None
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    if left == right:
        raise ValueError(f"an image cannot be compared with itself: {left!r}")
    if outcome == "neither":
        return (left, right), []
    return (left, right), [((left, right), _TARGET[outcome])]


def _choice_stages(shown, order) -> tuple[tuple, list[tuple[tuple, tuple]]]:
    try:
        shown, order = tuple(shown), tuple(order)
    except TypeError:
        raise ValueError(f"a choice is (shown images, picked images best first), got {(shown, order)!r}") from None
    if len(shown) < 2:
        raise ValueError(f"a choice needs at least two images shown, got {shown!r}")
    if len(set(shown)) != len(shown):
        raise ValueError(f"an image was shown twice in one choice: {shown!r}")
    if not order:
        raise ValueError("a choice must name the best image")
    if len(set(order)) != len(order) or not set(order) <= set(shown):
        raise ValueError(f"the picks {order!r} must be distinct images among those shown {shown!r}")
    stages = []
    remaining = list(shown)
    for picked in order[: len(shown) - 1]:  # the last of a full order is implied by the others
        stages.append((tuple(remaining), tuple(1.0 if i == picked else 0.0 for i in remaining)))
        remaining.remove(picked)
    return shown, stages


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class RatingState:
    """Ratings of a fixed set of images plus the log of answers they were derived from.

    ``apply`` updates in place (the incremental path); ``compute_ratings`` builds a fresh state and
    applies every answer in order (the recompute path) — the same code, so the same numbers.
    """

    def __init__(self, image_ids: Iterable[Hashable], config: RatingConfig | None = None):
        self.config = config or RatingConfig()
        self.ids: list[Hashable] = []
        self.index: dict[Hashable, int] = {}
        self._mu: list[float] = []
        self._var: list[float] = []
        self._n: list[int] = []
        self._stages: list[tuple[tuple[int, ...], tuple[float, ...]]] = []  # (image indices, target)
        self._counted = 0
        self._cache: tuple[np.ndarray, np.ndarray] | None = None
        self._covariance: np.ndarray | None = None
        self._padded: _Stages | None = None  # the stages as arrays, for the refinement and the covariance
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
        self._cache = self._covariance = None

    def copy(self) -> "RatingState":
        other = RatingState.__new__(RatingState)
        other.config = self.config
        other.ids = list(self.ids)
        other.index = dict(self.index)
        for name in ("_mu", "_var", "_n", "_stages"):
            setattr(other, name, list(getattr(self, name)))
        other._counted = self._counted
        other._cache, other._covariance, other._padded = self._cache, self._covariance, self._padded
        return other

    @property
    def comparisons_counted(self) -> int:
        """Answers that entered the rating ("neither" answers are not counted)."""
        return self._counted

    def apply(self, comparison) -> None:
        """Fold one answer into the state, in place. "neither" is validated and ignored."""
        involved, stages = stages_of(comparison)
        try:
            indices = {image_id: self.index[image_id] for image_id in involved}
        except KeyError as e:
            raise KeyError(f"comparison names an image that is not rated here: {e.args[0]!r}") from None
        if not stages:
            return
        for images, target in stages:
            idx = tuple(indices[i] for i in images)
            self._update(idx, target)
            self._stages.append((idx, target))
        for i in indices.values():
            self._n[i] += 1
        self._counted += 1
        self._cache = self._covariance = self._padded = None

    def _update(self, idx: tuple[int, ...], target: tuple[float, ...]) -> None:
        """One Newton step of the posterior of the stage's images from their current Gaussians: the precision
        diag(1/var) + H with H = r (diag(p) - p p^T) is inverted in closed form (Sherman–Morrison), r being the
        share of the answer not explained by a lapse. For a pair without lapses this is the classic update
        mu_a += var_a (y - p) / (1 + p (1 - p) (var_a + var_b))."""
        mu, var = self._mu, self._var
        m = len(idx)
        v = [var[i] for i in idx]
        # Picks with every rating's uncertainty integrated out (probit approximation; for a pair the scale is
        # sqrt(1 + pi/8 (var_a + var_b))).
        scale = math.sqrt(1.0 + _PI_OVER_8 * 2.0 * sum(v) / m)
        if m == 2:
            p0 = _sigmoid((mu[idx[0]] - mu[idx[1]]) / scale)
            p = (p0, 1.0 - p0)
        else:
            z = [mu[i] / scale for i in idx]
            top = max(z)
            e = [math.exp(x - top) for x in z]
            total = sum(e)
            p = tuple(x / total for x in e)
        r = _explained(p, target, self.config.lapse)
        g = [r * (y - pj) for y, pj in zip(target, p)]
        # Lambda = diag(a) - r p p^T with a = 1/v + r p;  Lambda^-1 = diag(1/a) + c (p/a)(p/a)^T.
        a = [1.0 / vj + r * pj for vj, pj in zip(v, p)]
        pa = [pj / aj for pj, aj in zip(p, a)]
        c = r / (1.0 - r * sum(pj * paj for pj, paj in zip(p, pa)))
        pa_g = sum(x * y for x, y in zip(pa, g))
        for j, i in enumerate(idx):
            mu[i] += g[j] / a[j] + c * pa[j] * pa_g
            var[i] = 1.0 / a[j] + c * pa[j] * pa[j]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mu, sigma, n) as arrays in ``self.ids`` order, refined if the config says so."""
        if self._cache is None:
            mu = np.array(self._mu, dtype=np.float64)
            var = np.array(self._var, dtype=np.float64)
            if self.config.refine and self._stages:
                mu, var = _refine(mu, self._stage_arrays(), self.config)
            self._cache = (mu, np.sqrt(var))
        mu, sigma = self._cache
        return mu.copy(), sigma.copy(), np.array(self._n, dtype=np.int64)

    def _stage_arrays(self) -> "_Stages":
        if self._padded is None:
            self._padded = _Stages(self._stages)
        return self._padded

    def covariance(self, max_images: int = 1000) -> np.ndarray | None:
        """The refined ratings' joint covariance (the inverse of the posterior's curvature at the mode, as a dense
        n x n array in ``self.ids`` order), or None without refinement or above `max_images` images (O(n^3)).

        Where two images met, their ratings move together: the marginal sigmas say how well each is placed on
        the whole scale, this says how well they are placed against each other (see ``top_k_membership``)."""
        n = len(self.ids)
        if not self.config.refine or n > max_images:
            return None
        if self._covariance is None:
            mu, _, _ = self.arrays()
            precision = np.eye(n) / self.config.prior_sigma ** 2
            if self._stages:
                precision += _curvature_matrix(mu, self._stage_arrays(), self.config)
            self._covariance = _spd_inverse(precision)
        return self._covariance

    def ratings(self) -> dict[Hashable, Rating]:
        mu, sigma, n = self.arrays()
        return {image_id: Rating(float(m), float(s), int(c))
                for image_id, m, s, c in zip(self.ids, mu.tolist(), sigma.tolist(), n.tolist())}


def _explained(p: Sequence[float], target: Sequence[float], lapse: float) -> float:
    """The share of the answer the model explains rather than a lapse: sum_j y_j (1 - λ) p_j / P_j with
    P_j = (1 - λ) p_j + λ / m (1 without lapses)."""
    if not lapse:
        return 1.0
    m = len(p)
    return sum(y * (1.0 - lapse) * pj / ((1.0 - lapse) * pj + lapse / m) for y, pj in zip(target, p) if y)


class _Stages:
    """Every stage as padded arrays, one row per position on the screen (so each position is a contiguous vector):
    images (M, S) indices, mask (M, S), target (M, S), size (S,)."""

    def __init__(self, stages):
        width = max(len(idx) for idx, _ in stages)
        s = len(stages)
        self.images = np.zeros((width, s), dtype=np.intp)
        self.target = np.zeros((width, s))
        self.mask = np.zeros((width, s), dtype=bool)
        for column in range(width):
            self.images[column] = [idx[column] if column < len(idx) else 0 for idx, _ in stages]
            self.target[column] = [t[column] if column < len(t) else 0.0 for _, t in stages]
            self.mask[column] = [column < len(idx) for idx, _ in stages]
        self.size = self.mask.sum(axis=0)
        self.full = bool(self.mask.all())
        self.flat = self.images.ravel()
        self.picked = self.target.max(axis=0) == 1.0  # one image picked (not a tie)


def _rowsum(x: np.ndarray) -> np.ndarray:
    """Sum over the screen positions (axis 0) of an (M, S) array: M vector adds, faster than a reduction over a
    short axis."""
    total = x[0].copy()
    for row in x[1:]:
        total += row
    return total


def _spd_inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix. Up to 256 rows by Gauss–Jordan elimination in numpy's
    own element-wise loops (3 ms at 133 rows): LAPACK's threads, on a small shared machine, now and then stall for
    hundreds of milliseconds on matrices this small. Larger ones go to LAPACK. No pivoting is needed: the matrix is
    positive definite."""
    n = a.shape[0]
    if n > 256:
        return np.linalg.inv(a)
    m = a.copy()
    for k in range(n):
        pivot = m[k, k]
        row = m[k] / pivot
        column = m[:, k].copy()
        m -= column[:, None] * row[None, :]
        m[k] = row
        m[:, k] = -column / pivot
        m[k, k] = 1.0 / pivot
    return m


def _softmax(theta: np.ndarray, stages: _Stages):
    """Each stage's PL probabilities p (M, S), with the log-space pieces the objective needs: z (the ratings less
    the stage's best) and each stage's sum of exp(z)."""
    z = theta[stages.images]
    if not stages.full:
        z = np.where(stages.mask, z, -np.inf)
    z = z - z.max(axis=0)
    e = np.exp(z)
    total = _rowsum(e)
    return e / total, z, total


def _stage_terms(theta: np.ndarray, stages: _Stages, lapse: float, capped: bool):
    """What the gradient and curvature of every stage need at `theta`: (p, r, c, g, explained), with r, c, g None
    without lapses. explained_j = y_j (1 - λ) p_j / P_j, r = sum_j explained_j (the share of the answer the
    model explains), g = y - p, c = r (1 - r), the curvature an unlikely answer loses; `capped` limits c so that
    every stage's curvature r (diag(p) - p p^T) - c g g^T stays positive semi-definite."""
    p, _, _ = _softmax(theta, stages)
    if not lapse:
        return p, None, None, None, stages.target
    mask, target = stages.mask, stages.target
    explained = target * (1.0 - lapse) * p / np.where(mask, (1.0 - lapse) * p + lapse / stages.size, 1.0)
    r = _rowsum(explained)
    g = target - p
    c = np.where(stages.picked, r * (1.0 - r), 0.0)
    if capped:  # along g the curvature is r p_picked / (1 - p_picked): keep a tenth of it
        p_picked = _rowsum(target * p)
        c = np.minimum(c, 0.9 * r * p_picked / np.maximum(1.0 - p_picked, 1e-12))
    return p, r, c, g, explained


def _curvature_matrix(theta: np.ndarray, stages: _Stages, config: RatingConfig) -> np.ndarray:
    """The answers' curvature at `theta` as a dense n x n matrix (capped, so positive semi-definite)."""
    n = theta.shape[0]
    p, r, c, g, _ = _stage_terms(theta, stages, config.lapse, capped=True)
    images, mask = stages.images, stages.mask
    cells, values = [], []
    for a in range(images.shape[0]):
        for b in range(images.shape[0]):
            value = (p[a] if a == b else 0.0) - p[a] * p[b]
            if r is not None:
                value = r * value - c * g[a] * g[b]
            keep = mask[a] & mask[b]
            cells.append(images[a][keep] * n + images[b][keep])
            values.append(value[keep])
    return np.bincount(np.concatenate(cells), np.concatenate(values), n * n).reshape(n, n)


def _refine(mu0, stages: _Stages, config: RatingConfig):
    """Full-batch MAP of the Plackett–Luce posterior (with lapses if configured), warm-started from the online
    means.

    Newton's method solved by preconditioned CG, with backtracking. A stage's Hessian is r (diag(p) - p p^T)
    - c g g^T with g = e_picked - p: exact without lapses (r = 1, c = 0); with them, c = r (1 - r) is the
    curvature an unlikely answer loses. The objective is then not convex everywhere: CG stops at negative
    curvature, and backtracking keeps every step a descent.
    Returns (mu, var); var is a diagonal Laplace approximation from the same curvature (c capped so that no stage
    adds negative information), in which each stage's information is also discounted by the other images' own
    uncertainty (as the online update does), so an image that only met poorly-known opponents, or met them with
    surprising results, stays uncertain.
    """
    n = mu0.shape[0]
    prec0 = 1.0 / config.prior_sigma ** 2
    lapse = config.lapse
    images, mask, target, flat = stages.images, stages.mask, stages.target, stages.flat

    def objective(theta):
        p, z, total = _softmax(theta, stages)
        if lapse:
            log_p = np.log(np.where(mask, (1.0 - lapse) * p + lapse / stages.size, 1.0))
        else:  # log-softmax, exact in the tails
            log_p = np.where(mask, z - np.log(total), 0.0)
        return float(-np.sum(target * log_p) + 0.5 * prec0 * theta @ theta)

    def gradient(theta, p, r, explained):
        # d(-log lik)/d theta_j = r p_j - explained_j for each image j of a stage (r = 1 without lapses)
        rp = p if r is None else r * p
        return prec0 * theta + np.bincount(flat, (rp - explained).ravel(), n)

    def curvature(p, r, c, g):
        """Each image's own curvature from each stage (the Hessian's diagonal, per stage)."""
        h = p * (1.0 - p)
        return h if r is None else r * h - c * g * g

    def hess_vec_of(p, r, c, g):
        rp = p if r is None else r * p

        def hess_vec(v):
            vs = v[images]
            t = rp * (vs - _rowsum(p * vs))
            if r is not None:
                t -= c * _rowsum(g * vs) * g
            return prec0 * v + np.bincount(flat, t.ravel(), n)
        return hess_vec

    theta = mu0.copy()
    f = objective(theta)
    for _ in range(config.refine_max_newton):
        p, r, c, g, explained = _stage_terms(theta, stages, lapse, capped=False)
        grad = gradient(theta, p, r, explained)
        if np.max(np.abs(grad)) < config.refine_tol:
            break
        # The exact Hessian (CG stops where it meets negative curvature), a positive preconditioner.
        diag = prec0 + np.maximum(np.bincount(flat, curvature(p, r, c, g).ravel(), n), 0.0)
        # Inexact Newton: solve loosely while far from the mode, tightly near it.
        forcing = min(0.1, float(np.sqrt(grad @ grad)))
        step = _pcg(hess_vec_of(p, r, c, g), -grad, diag, tol=forcing, max_iter=200)
        # Backtracking keeps the iteration monotone even from a poor warm start.
        slope = float(grad @ step)
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

    p, r, c, g, _ = _stage_terms(theta, stages, lapse, capped=True)
    h = curvature(p, r, c, g)  # each image's information from each stage
    var = 1.0 / (prec0 + np.bincount(flat, h.ravel(), n))
    for _ in range(2):  # discount each stage by the other images' uncertainty
        # The others act as one opponent: their average weighted by p_j / (1 - p_i) (for a pair, the other image).
        w2 = p * p * var[images]
        if not stages.full:
            w2 = np.where(mask, w2, 0.0)
        others = (_rowsum(w2) - w2) / np.maximum(1.0 - p, 1e-12) ** 2
        info = h / (1.0 + h * others)
        var = 1.0 / (prec0 + np.bincount(flat, info.ravel(), n))
    return theta, var


def _pcg(matvec, b, diag, *, tol, max_iter):
    """Jacobi-preconditioned conjugate gradients for the Hessian system. Where the Hessian is not positive
    definite along a search direction, it stops there (the step so far, or the preconditioned gradient if none:
    both descend)."""
    x = np.zeros_like(b)
    r = b.copy()
    z = r / diag
    p = z.copy()
    rz = float(r @ z)
    b_norm = float(np.sqrt(b @ b)) or 1.0
    for _ in range(max_iter):
        ap = matvec(p)
        curvature = float(p @ ap)
        if curvature <= 0.0:
            return x if x.any() else z
        alpha = rz / curvature
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
    return normal_cdf((mu - top_k_threshold(mu, sigma, k)) / sigma)


def top_k_membership(mu: np.ndarray, sigma: np.ndarray, k: int, covariance: np.ndarray | None = None,
                      rivals: int = 5) -> np.ndarray:
    """P(in top-k) per image, as the pages count settled places (and "class done").

    With the ratings' joint ``covariance`` (``RatingState.covariance``), from each image's margin over the images
    at the boundary of the current top-k (the k best means): an image inside must beat each of the `rivals`
    outsiders most likely to overtake the weakest insider, so its P is the least of its chances against them,
    P(theta_i > theta_j) = Phi((mu_i - mu_j) / sd(theta_i - theta_j)); an image outside gets its best chance of
    beating one of the `rivals` insiders most at risk. Images that met have correlated ratings, and
    sd(theta_i - theta_j) knows it: after a few direct answers two neighbours are told apart, though each is
    still unsure on the whole scale. Without a covariance: ``membership_probabilities`` (mean-field).
    """
    mu = np.asarray(mu, dtype=np.float64)
    n = mu.shape[0]
    k = _check_k(k, n)
    if covariance is None:
        return membership_probabilities(mu, sigma, k)
    if k == 0:
        return np.zeros(n)
    if k == n:
        return np.ones(n)
    variance = np.diag(covariance)
    order = np.argsort(-mu, kind="stable")
    inside, outside = order[:k], order[k:]

    def beats(i, j):
        """P(theta_i > theta_j), elementwise over broadcast index arrays."""
        spread = np.maximum(variance[i] + variance[j] - 2.0 * covariance[i, j], 1e-12)
        return normal_cdf((mu[i] - mu[j]) / np.sqrt(spread))

    threats = outside[np.argsort(-beats(outside, inside[-1]), kind="stable")[:rivals]]
    at_risk = inside[np.argsort(beats(inside, outside[0]), kind="stable")[:rivals]]
    p = np.empty(n)
    p[inside] = beats(inside[:, None], threats[None, :]).min(axis=1)
    p[outside] = beats(outside[:, None], at_risk[None, :]).max(axis=1)
    return p


def top_k_threshold(mu: np.ndarray, sigma: np.ndarray, k: int) -> float:
    """The shared threshold t of ``membership_probabilities``: sum_i Phi((mu_i - t) / sigma_i) = k (0 < k < n)."""
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-9)
    n = mu.shape[0]
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
    return t


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


def settled_threshold(k: int, confidence: float = 0.95) -> float:
    """The P(in top-k) above which one of k top places counts as settled, so that when all k are, the top-k as a
    whole is right with at least `confidence` (by the union bound: k places each wrong with probability below
    (1 - confidence) / k). 0.95 for k = 1, 0.9969 for k = 16."""
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0.5, 1), got {confidence}")
    return 1.0 - (1.0 - confidence) / max(int(k), 1)


class Progress(NamedTuple):
    """How settled the top-k is: ``settled_in`` of ``k`` places are confirmed (P > threshold);
    ``settled`` of ``n`` images have a decided membership either way (P > t or P < 1 - t)."""

    settled_in: int
    k: int
    settled: int
    n: int

    @property
    def done(self) -> bool:
        """Every one of the k top places is settled: nothing left to ask to decide the top-k (never when all n
        images fit in the top-k: then there is no membership to decide, only an order)."""
        return 0 < self.k < self.n and self.settled_in >= self.k


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
    """How often each unordered pair was shown together (every answer counts, "neither" included; a screen of
    four shows six pairs)."""
    counts: dict[frozenset, int] = {}
    for comparison in comparisons:
        shown, _ = stages_of(comparison)
        for pair in itertools.combinations(shown, 2):
            key = frozenset(pair)
            counts[key] = counts.get(key, 0) + 1
    return counts


__all__ = ["OUTCOMES", "Rating", "Comparison", "Choice", "stages_of", "RatingConfig", "RatingState", "update", "replay",
           "compute_ratings", "normal_cdf", "membership_probabilities", "top_k_membership", "top_k_threshold",
           "settled_threshold", "prob_in_top_k", "Progress",
           "settled_progress", "pair_counts"]
