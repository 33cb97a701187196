"""Speed of the banded Hamming search (curator.dedup.nearsearch) against brute force, in the same run.

Random 64-bit hashes with planted near duplicates (copies of 1 % of the hashes with 1..10 bits
flipped). For each size: all pairs within ``--distance`` bits, checked against brute-force NumPy
XOR + popcount. Brute force over all 5e9 pairs of 100k (5e11 of 1M) would take minutes to hours,
so it is timed on a random sample of rows and extrapolated linearly (rows x n), and its result is
compared exactly on those rows. Then 1,000 new hashes are checked against the largest index.

    python bench/near_search.py [--sizes 10000 100000 1000000] [--distance 10] [--sample-rows 2000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from curator.dedup.nearsearch import HammingIndex, all_pairs_within, plan_bands, popcount64


def planted(n: int, rng: np.random.Generator, max_flip: int = 10) -> np.ndarray:
    base = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    k = max(1, n // 100)
    src = rng.choice(n - k, k, replace=False)
    copies = base[src].copy()
    for i in range(k):
        bits = rng.choice(64, rng.integers(1, max_flip + 1), replace=False)
        for b in bits:
            copies[i] ^= np.uint64(1) << np.uint64(b)
    base[n - k:] = copies
    return base


def brute_rows(h: np.ndarray, rows: np.ndarray, d: int) -> tuple[float, set]:
    t0 = time.perf_counter()
    found = set()
    for lo in range(0, rows.size, 64):
        r = rows[lo:lo + 64]
        dist = popcount64(h[r, None] ^ h[None, :])
        ii, jj = np.nonzero(dist <= d)
        keep = jj != r[ii]
        found.update(zip(r[ii[keep]].tolist(), jj[keep].tolist()))
    return time.perf_counter() - t0, found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--distance", type=int, default=10)
    ap.add_argument("--sample-rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    d = args.distance
    print(f"all pairs within {d} bits; brute force timed on {args.sample_rows} sampled rows, extrapolated x n/rows")
    print(f"{'n':>9}{'bands':>6}{'pairs':>9}{'banded s':>10}{'brute s (extrap.)':>19}{'speed-up':>10}{'rows agree':>11}")
    h = None
    for n in args.sizes:
        h = planted(n, rng)
        layout = plan_bands(n, n, d, self_join=True)
        t0 = time.perf_counter()
        i, j, dist = all_pairs_within(h, d, layout)
        t_band = time.perf_counter() - t0
        rows = np.sort(rng.choice(n, min(args.sample_rows, n), replace=False))
        t_rows, found = brute_rows(h, rows, d)
        # the brute loop compares each row with all n hashes; an all-pairs brute force does n*(n-1)/2 pairs
        t_brute = t_rows / rows.size * n / 2
        banded = {(a, b) for a, b in zip(i.tolist(), j.tolist())}
        rowset = set(rows.tolist())
        banded_rows = {(a, b) for a, b in banded if a in rowset} | {(b, a) for a, b in banded if b in rowset}
        agree = banded_rows == found
        print(f"{n:>9}{layout.m:>6}{i.size:>9}{t_band:>10.2f}{t_brute:>19.1f}{t_brute / t_band:>9.1f}x{str(agree):>11}",
              flush=True)
    n = h.size
    idx = HammingIndex()
    t0 = time.perf_counter()
    idx.add(np.arange(n), h)
    t_build = time.perf_counter() - t0
    new = h[rng.choice(n, 1000, replace=False)] ^ (np.uint64(1) << rng.integers(0, 64, 1000).astype(np.uint64))
    t0 = time.perf_counter()
    hits = idx.query(new, d)
    t_q = time.perf_counter() - t0
    t0 = time.perf_counter()
    popcount64(new[:100, None] ^ h[None, :])  # timed only
    t_bq = (time.perf_counter() - t0) * 10
    print(f"query 1,000 new vs {n:,} indexed: {t_q:.3f} s ({len(hits)} hits; index build {t_build:.2f} s); "
          f"brute force (100 rows x10) {t_bq:.2f} s -> {t_bq / t_q:.0f}x")


if __name__ == "__main__":
    main()
