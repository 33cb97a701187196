"""Does active pair selection find the top-k faster than random pairs? And is choosing fast enough?

A simulated user holds a hidden true order of N images (default 512). Asked about a pair, the user
says "can't tell" (a tie) with probability --tie-rate when the two true ranks are within
--tie-band places, and otherwise answers correctly except for --error-rate of answers (default 10%),
which name the worse image (a flipped answer, not a coin flip). Both strategies — active
(curator.ranking.pairing.choose_pair) and uniformly random distinct pairs — meet the same users (same
seeds) in the same run. After 1x, 2x and 4x N*log2(N) comparisons we report Kendall's tau between
the rating order and the true order, and top-K precision (share of the rated top-K that is truly
top-K), mean +- sd over seeds. Then choose_pair is timed on a class of 5,000 images, with an
np.argsort of the same 5,000 ratings timed alongside as a same-run baseline (the machine is shared).

    python bench/ranking_sim.py                 # full run (a few minutes)
    python bench/ranking_sim.py --seeds 1 --n 256   # quick look
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from curator.ranking.pairing import choose_pair
from curator.ranking.rating import RatingConfig, RatingState, prob_in_top_k, settled_progress


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b of two score vectors (O(n^2) in numpy; fine for a few thousand items)."""
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(len(x), 1)
    dx, dy = dx[iu], dy[iu]
    denom = math.sqrt(float(np.sum(dx != 0)) * float(np.sum(dy != 0)))
    return float(np.sum(dx * dy)) / denom if denom else 0.0


class SimulatedUser:
    """Hidden true order; ties between near neighbours; a share of answers flipped."""

    def __init__(self, n, rng, error_rate, tie_band, tie_rate):
        self.true_rank = rng.permutation(n)  # true_rank[i] == 0: the best image
        self.rng, self.error_rate, self.tie_band, self.tie_rate = rng, error_rate, tie_band, tie_rate

    def answer(self, a: int, b: int) -> str:
        ra, rb = self.true_rank[a], self.true_rank[b]
        if abs(ra - rb) <= self.tie_band and self.rng.random() < self.tie_rate:
            return "tie"
        correct = "left" if ra < rb else "right"
        if self.rng.random() < self.error_rate:
            return "right" if correct == "left" else "left"
        return correct


def run_one(strategy, n, k, budgets, seed, args):
    user = SimulatedUser(n, np.random.default_rng(seed), args.error_rate, args.tie_band, args.tie_rate)
    chooser_rng = np.random.default_rng(10_000 + seed)
    state = RatingState(range(n), RatingConfig(refine=True))
    history: dict[frozenset, int] = {}
    truth = -user.true_rank.astype(np.float64)
    true_top = set(np.flatnonzero(user.true_rank < k).tolist())
    out = {}
    ratings = state.ratings()
    for t in range(1, max(budgets) + 1):
        if strategy == "active":
            if (t - 1) % args.refresh == 0:
                ratings = state.ratings()
            a, b = choose_pair(ratings, k, history=history, rng=chooser_rng)
        else:
            a, b = (int(v) for v in chooser_rng.choice(n, size=2, replace=False))
        state.apply((a, b, user.answer(a, b)))
        key = frozenset((a, b))
        history[key] = history.get(key, 0) + 1
        if t in budgets:
            final = state.ratings()
            mu = np.array([final[i].mu for i in range(n)])
            top = set(np.argsort(-mu, kind="stable")[:k].tolist())
            probs = prob_in_top_k(final, k, samples=1000, seed=0)
            settled = [i for i, p in probs.items() if p > 0.95]
            out[t] = dict(tau=kendall_tau(mu, truth), precision=len(top & true_top) / k,
                          settled=settled_progress(final, k, probabilities=probs).settled_in,
                          settled_correct=(sum(i in true_top for i in settled) / len(settled)
                                           if settled else float("nan")),
                          repeats=sum(c - 1 for c in history.values()))
    return out


def time_choose_pair(n_images, k, calls, seed):
    rng = np.random.default_rng(seed)
    n_answers = int(2 * n_images * math.log2(n_images))
    # A realistic mid-ranking state: true scores, answers concentrated near neighbours.
    state = RatingState(range(n_images), RatingConfig(refine=True))
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
    mu = np.array([r.mu for r in ratings.values()])
    groups = [set(rng.choice(n_images, size=3, replace=False).tolist()) for _ in range(50)]
    choose, base = [], []
    for i in range(calls):
        t0 = time.perf_counter()
        choose_pair(ratings, k, history=history, rng=rng, groups=groups)
        choose.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        np.argsort(mu + i)
        base.append(time.perf_counter() - t0)
    return np.array(choose) * 1e3, np.array(base) * 1e3, n_answers, replay_s, refine_s


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--error-rate", type=float, default=0.10)
    parser.add_argument("--tie-band", type=int, default=2)
    parser.add_argument("--tie-rate", type=float, default=0.3)
    parser.add_argument("--refresh", type=int, default=1,
                        help="active: recompute ratings every R answers (1 = after every answer)")
    parser.add_argument("--timing-n", type=int, default=5000)
    parser.add_argument("--timing-calls", type=int, default=300)
    parser.add_argument("--skip-sim", action="store_true")
    args = parser.parse_args(argv)

    n, k = args.n, args.k
    unit = n * math.log2(n)
    multiples = (1, 2, 4)
    budgets = [int(round(m * unit)) for m in multiples]
    if not args.skip_sim:
        print(f"# N={n} images, top-{k}; user: {args.error_rate:.0%} flipped answers, tie with p="
              f"{args.tie_rate} when true ranks are within {args.tie_band}; {args.seeds} seeds; "
              f"active ratings refreshed every {args.refresh} answer(s)")
        rows = {}
        for strategy in ("active", "random"):
            t0 = time.perf_counter()
            runs = [run_one(strategy, n, k, budgets, seed, args) for seed in range(args.seeds)]
            rows[strategy] = runs
            print(f"#   {strategy}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        print(f"{'budget':>14} {'strategy':>8} {'kendall tau':>15} {'top-%d prec.' % k:>15} "
              f"{'settled (P>.95)':>16} {'of them right':>14} {'repeats':>8}")
        for m, budget in zip(multiples, budgets):
            for strategy in ("active", "random"):
                vals = {key: np.array([r[budget][key] for r in rows[strategy]], dtype=float)
                        for key in ("tau", "precision", "settled", "settled_correct", "repeats")}
                print(f"{m}x nlog2n={budget:>5} {strategy:>8} "
                      f"{vals['tau'].mean():>8.3f} ± {vals['tau'].std():.3f} "
                      f"{vals['precision'].mean():>8.3f} ± {vals['precision'].std():.3f} "
                      f"{vals['settled'].mean():>9.1f}/{k:<4} "
                      f"{np.nanmean(vals['settled_correct']):>14.3f} {vals['repeats'].mean():>8.0f}")

    choose, base, n_answers, replay_s, refine_s = time_choose_pair(args.timing_n, args.k, args.timing_calls, 0)
    print(f"# choose_pair at {args.timing_n} images ({n_answers} answers in history, 50 near-duplicate "
          f"groups): median {np.median(choose):.2f} ms, p95 {np.percentile(choose, 95):.2f} ms "
          f"(target <= 20 ms); baseline np.argsort({args.timing_n}) median {np.median(base):.3f} ms "
          f"-> ratio {np.median(choose) / np.median(base):.0f}x")
    print(f"# recompute at {args.timing_n} images: replay of {n_answers} answers {replay_s * 1e3:.0f} ms, "
          f"MAP refinement {refine_s * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
