"""How many answers does it take to find a class's top-k? Pairs vs best-of-4, active vs random, two noise models.

A simulated ranker holds a hidden true order of N images and answers screens: a pair ("which is better?") or a
screen of four ("which is best?"; `order4`: put all four in order). Two noise models, each calibrated so that a
*pair* answer is wrong --error-rate of the time (default 10 %):

- flip: the true best is picked, except that with probability e the pick is one of the other images on the screen,
  uniformly (for a pair: exactly e of the answers are wrong, whatever the two images). An order is picked the same
  way one place at a time. This is the issue's model.
- gumbel (Thurstone-style): each image shown gets utility -beta * true_rank + Gumbel noise and the ranker picks the
  highest (orders by utility). beta is set so that over uniformly random pairs of the class a pair answer is wrong
  e of the time; close pairs are near coin flips, far ones never wrong. Best-of-4 meets the same per-image noise, so
  it gets no free accuracy; and this is exactly the Plackett–Luce model, so it flatters the model in another way.

Strategies: active (curator.ranking.pairing.choose_set, ratings recomputed after every answer, exactly the code
the web uses) and random (uniformly random distinct images). A click is one screen answered; images looked at =
clicks x images per screen. At 0.5x, 1x and 2x N*log2(N) clicks: top-K precision (share of the rated top-K that is
truly top-K), mean, min and max over seeds. Clicks to settle: the first click at which all K top places are
settled, P(in top-K) > 1 - 0.05 / K, so that the whole top-K is right with 95 % (the web's "class done"), and the
precision at that moment.

    python bench/ranking_sim.py                                  # n=133, k=16, seeds 0-7, everything
    python bench/ranking_sim.py --n 300 500 --seeds 100-103      # other sizes, other seeds
    python bench/ranking_sim.py --modes best4 --strategies active --noise flip --seeds 0-3   # a quick look
    python bench/ranking_sim.py --timing                         # only: time choosing a screen at 5,000 images
    python bench/ranking_sim.py --timing --timing-n 1000         # ... at 1,000 (the joint covariance in use)
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # noqa: E402  (before numpy loads its threads)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # no BLAS threads fighting over a shared 2-core machine

import argparse  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from multiprocessing import get_context  # noqa: E402

import numpy as np  # noqa: E402

from curator.ranking.pairing import choose_set  # noqa: E402
from curator.ranking.rating import Choice, RatingConfig, RatingState, settled_threshold, top_k_membership  # noqa: E402

CONFIDENCE = 0.95  # as the web's "class done": the whole top-k right with this probability
MODES = {"pairs": (2, False), "best4": (4, False), "order4": (4, True)}


def parse_seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


class Ranker:
    """A hidden true order (true_rank[i] == 0: the best image) and one of the noise models above."""

    def __init__(self, n: int, seed: int, noise: str, error_rate: float):
        self.rng = np.random.default_rng(seed)
        self.true_rank = self.rng.permutation(n)
        self.noise, self.error_rate = noise, error_rate
        if noise == "gumbel":
            gaps = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))[np.triu_indices(n, 1)]
            lo, hi = 1e-6, 50.0
            for _ in range(100):  # mean over random pairs of P(wrong) = sigmoid(-beta * gap) = error_rate
                beta = 0.5 * (lo + hi)
                lo, hi = (beta, hi) if np.mean(0.5 - 0.5 * np.tanh(0.5 * beta * gaps)) > error_rate else (lo, beta)
            self.beta = beta
        elif noise != "flip":
            raise ValueError(f"unknown noise model {noise!r}")

    def answer(self, shown: tuple, full_order: bool) -> tuple:
        """The picks, best first: one image, or (full_order) all but the last."""
        shown = list(shown)
        if self.noise == "gumbel":
            utility = -self.beta * self.true_rank[shown] + self.rng.gumbel(size=len(shown))
            ranked = [shown[i] for i in np.argsort(-utility)]
            return tuple(ranked[: len(shown) - 1] if full_order else ranked[:1])
        picks, rest = [], sorted(shown, key=lambda i: self.true_rank[i])
        while len(rest) > 1 and (full_order or not picks):
            pick = rest[0]
            if self.rng.random() < self.error_rate:
                pick = rest[1 + int(self.rng.integers(len(rest) - 1))]
            picks.append(pick)
            rest.remove(pick)
        return tuple(picks)


def precision(mu: np.ndarray, true_rank: np.ndarray, k: int) -> float:
    top = np.argsort(-mu, kind="stable")[:k]
    return float(np.mean(true_rank[top] < k))


def run_one(task):
    """One simulated ranker over the whole budget: precision at each budget, and when the top-k settled."""
    n, k, noise, mode, strategy, seed, budgets, args = task
    size, full_order = MODES[mode]
    settled = settled_threshold(k, CONFIDENCE)
    config = RatingConfig(lapse=args.lapse) if args.lapse is not None else RatingConfig()
    ranker = Ranker(n, seed, noise, args.error_rate)
    chooser = np.random.default_rng(10_000 + seed)
    state = RatingState(range(n), config)
    history: dict[frozenset, int] = {}
    out = {"precision": {}, "settled_at": None, "precision_at_settle": None, "seconds": 0.0}
    t0 = time.perf_counter()
    for click in range(1, max(budgets) + 1):
        if strategy == "active":
            shown = choose_set(state.ratings(), k, size, history=history, rng=chooser, lapse=config.lapse,
                               covariance=state.covariance(), settled=settled, **args.choose)
        else:
            shown = tuple(int(v) for v in chooser.choice(n, size=size, replace=False))
        state.apply(Choice(shown, ranker.answer(shown, full_order)))
        for pair in itertools.combinations(shown, 2):
            key = frozenset(pair)
            history[key] = history.get(key, 0) + 1
        if click in budgets or (out["settled_at"] is None and strategy == "active"):
            mu, sigma, _ = state.arrays()
            if click in budgets:
                out["precision"][click] = precision(mu, ranker.true_rank, k)
            if out["settled_at"] is None and np.sum(top_k_membership(mu, sigma, k, state.covariance()) > settled) >= k:
                out["settled_at"] = click
                out["precision_at_settle"] = precision(mu, ranker.true_rank, k)
    out["seconds"] = time.perf_counter() - t0
    return (n, noise, mode, strategy, seed), out


def simulate(args) -> None:
    tasks = []
    for n in args.n:
        unit = n * math.log2(n)
        budgets = sorted({int(round(m * unit)) for m in args.multiples})
        for noise, mode, strategy, seed in itertools.product(args.noise, args.modes, args.strategies, args.seeds):
            tasks.append((n, args.k, noise, mode, strategy, seed, budgets, args))
    tasks.sort(key=lambda t: -t[0] * (4 if t[4] == "active" else 1))  # longest first
    results = {}
    t0 = time.perf_counter()
    with get_context("fork").Pool(args.jobs) as pool:
        for key, out in pool.imap_unordered(run_one, tasks):
            results[key] = out
            print(f"#   done {key} in {out['seconds']:.0f} s", file=sys.stderr)
    print(f"# {len(tasks)} simulations in {time.perf_counter() - t0:.0f} s on {args.jobs} processes")
    print(f"# k={args.k}; a pair answer is wrong {args.error_rate:.0%} of the time (noise models in the docstring); "
          f"seeds {args.seeds[0]}..{args.seeds[-1]} ({len(args.seeds)}); clicks = screens answered")
    for n in args.n:
        unit = n * math.log2(n)
        for noise in args.noise:
            print(f"\n## n={n}, noise={noise}")
            print(f"{'mode':>7} {'strategy':>8} {'clicks':>15} {'images seen':>11}  top-{args.k} precision "
                  f"mean [min, max]   per seed")
            for mode, strategy in itertools.product(args.modes, args.strategies):
                size = MODES[mode][0]
                for multiple in args.multiples:
                    clicks = int(round(multiple * unit))
                    values = np.array([results[(n, noise, mode, strategy, s)]["precision"][clicks]
                                       for s in args.seeds])
                    print(f"{mode:>7} {strategy:>8} {f'{multiple:g}x = {clicks}':>15} {clicks * size:>11}  "
                          f"{values.mean():.3f} [{values.min():.3f}, {values.max():.3f}]   "
                          + " ".join(f"{v:.2f}" for v in values))
                if strategy == "active":
                    runs = [results[(n, noise, mode, strategy, s)] for s in args.seeds]
                    settled = [r["settled_at"] for r in runs if r["settled_at"] is not None]
                    at = [r["precision_at_settle"] for r in runs if r["settled_at"] is not None]
                    limit = int(round(max(args.multiples) * unit))
                    if settled:
                        print(f"{mode:>7} {strategy:>8} settled after {int(np.median(settled))} clicks (median; "
                              f"{min(settled)}-{max(settled)}, {len(settled)}/{len(runs)} seeds within {limit}), "
                              f"{int(np.median(settled)) * size} images seen; precision then {np.mean(at):.3f} "
                              f"[{min(at):.3f}, {max(at):.3f}]")
                    else:
                        print(f"{mode:>7} {strategy:>8} not settled within {limit} clicks on any seed")


def time_choose(n_images: int, k: int, calls: int, seed: int) -> None:
    """Choosing the next pair and the next screen of four at n_images, after 2 n log2 n answers."""
    rng = np.random.default_rng(seed)
    n_answers = int(2 * n_images * math.log2(n_images))
    state = RatingState(range(n_images))
    scores = rng.normal(0, 2, n_images)
    history: dict[frozenset, int] = {}
    a = rng.integers(0, n_images, n_answers)
    b = (a + rng.integers(1, n_images, n_answers)) % n_images
    win = rng.random(n_answers) < 1 / (1 + np.exp(-(scores[a] - scores[b])))
    t0 = time.perf_counter()
    for x, y, w in zip(a.tolist(), b.tolist(), win.tolist()):
        state.apply((x, y, "left" if w else "right"))
        key = frozenset((x, y))
        history[key] = history.get(key, 0) + 1
    replay_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ratings = state.ratings()
    refine_s = time.perf_counter() - t0
    covariance = state.covariance()  # as the web: only up to 1000 images
    groups = [set(rng.choice(n_images, size=3, replace=False).tolist()) for _ in range(50)]
    for size in (2, 4):
        took = []
        for _ in range(calls):
            t0 = time.perf_counter()
            choose_set(ratings, k, size, history=history, rng=rng, groups=groups, covariance=covariance,
                       settled=settled_threshold(k, CONFIDENCE), on_show=[tuple(range(size))])
            took.append(time.perf_counter() - t0)
        took = np.array(took) * 1e3
        print(f"# choose_set(size={size}) at {n_images} images ({n_answers} answers in history, 50 near-duplicate "
              f"groups, {'with' if covariance is not None else 'no'} covariance): median {np.median(took):.2f} ms, "
              f"p95 {np.percentile(took, 95):.2f} ms")
    print(f"# recompute at {n_images} images: replay of {n_answers} answers {replay_s * 1e3:.0f} ms, "
          f"MAP refinement {refine_s * 1e3:.0f} ms")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[133])
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("0-7"), help="e.g. 0-7 or 100-103,200")
    parser.add_argument("--noise", nargs="+", default=["flip", "gumbel"], choices=["flip", "gumbel"])
    parser.add_argument("--modes", nargs="+", default=["pairs", "best4"], choices=list(MODES))
    parser.add_argument("--strategies", nargs="+", default=["active", "random"], choices=["active", "random"])
    parser.add_argument("--multiples", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                        help="budgets in units of n log2 n clicks")
    parser.add_argument("--error-rate", type=float, default=0.10)
    parser.add_argument("--lapse", type=float, help="override RatingConfig.lapse (tuning)")
    parser.add_argument("--choose", type=lambda text: {k: float(v) for k, v in (i.split("=") for i in text.split(","))},
                        default={}, help="override choose_set's options (tuning), e.g. explore=0.1,repeat_penalty=0.5")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timing", action="store_true", help="only time choosing a screen")
    parser.add_argument("--timing-n", type=int, default=5000)
    parser.add_argument("--timing-calls", type=int, default=200)
    args = parser.parse_args(argv)
    if args.timing:
        time_choose(args.timing_n, 64, args.timing_calls, 0)
    else:
        simulate(args)


if __name__ == "__main__":
    main()
