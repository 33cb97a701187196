"""curator.dedup.nearsearch: banded Hamming search is exact (vs brute force), incremental, and groups pairs."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from curator.dedup.nearsearch import (
    BandLayout,
    HammingIndex,
    UnionFind,
    all_pairs_within,
    brute_force_pairs,
    group_pairs,
    hamming,
    nearest_pairs,
    popcount64,
)


def planted(seed, n, max_flip):
    """Random hashes plus copies with up to ``max_flip`` bits flipped, plus a few exact repeats."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    k = max(1, n // 3)
    copies = base[rng.integers(0, n, k)].copy()
    for i in range(k):
        for b in rng.choice(64, rng.integers(0, max_flip + 1), replace=False):
            copies[i] ^= np.uint64(1) << np.uint64(b)
    return np.concatenate([base, copies, base[:3]])


def as_set(i, j, d):
    return set(zip(i.tolist(), j.tolist(), d.tolist()))


def test_distances_and_popcount():
    # tried: known XORs, including all 64 bits set and signed int64 input
    a = np.array([0, 0, 0xFFFFFFFFFFFFFFFF, 0b1011], dtype=np.uint64)
    b = np.array([0, 1, 0, 0b0001], dtype=np.uint64)
    assert hamming(a, b).tolist() == [0, 1, 64, 2]
    assert popcount64(np.array([2**63], dtype=np.uint64)).tolist() == [1]
    assert hamming(np.array([-1], dtype=np.int64), np.array([0], dtype=np.int64)).tolist() == [64]


def test_brute_force_with_a_second_hash_takes_the_closer_of_the_two():
    # tried: two random hash arrays with planted near copies; every pair within 12 bits by either, at the smaller
    first, second = planted(1, 150, 10), planted(2, 150, 10)
    expected = {(i, j, min(a, b)) for i in range(first.size) for j in range(i + 1, first.size)
                if min(a := int(hamming(first[i:i + 1], first[j:j + 1])[0]),
                       b := int(hamming(second[i:i + 1], second[j:j + 1])[0])) <= 12}
    assert as_set(*brute_force_pairs(first, 12, also=second)) == expected and expected


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 200), d=st.integers(0, 16), m=st.integers(4, 8),
       flip=st.integers(0, 14))
def test_banding_finds_every_pair_within_threshold(seed, n, d, m, flip):
    # tried: random hashes with planted near copies, any band count, any distance: same set as brute force
    h = planted(seed, n, flip)
    got = all_pairs_within(h, d, BandLayout.split(m))
    assert as_set(*got) == as_set(*brute_force_pairs(h, d))


def test_big_buckets_of_identical_hashes():
    # tried: 100 identical hashes (a blank-image cluster) plus neighbours: the large-bucket path is exact too
    rng = np.random.default_rng(1)
    h = np.concatenate([np.full(100, 12345, dtype=np.uint64), np.full(40, 12345 ^ 0b111, dtype=np.uint64),
                        rng.integers(0, 2**64 - 1, 200, dtype=np.uint64, endpoint=True)])
    for m in (3, 4):
        got = all_pairs_within(h, 4, BandLayout.split(m))
        assert as_set(*got) == as_set(*brute_force_pairs(h, 4))
    assert len(got[0]) >= 140 * 139 // 2


def test_too_wide_bands_and_negative_distance_are_refused():
    # tried: 2 bands of 32 bits (dense tables of 4G entries) and a negative distance: clear errors
    import pytest
    h = planted(0, 10, 3)
    with pytest.raises(ValueError, match="bands"):
        all_pairs_within(h, 3, BandLayout.split(2))
    with pytest.raises(ValueError, match="max_distance"):
        all_pairs_within(h, -1)


def test_three_band_layout_is_exact():
    # tried: the 3-band (22/21/21-bit) layout the planner picks for a million hashes, on a small set
    h = planted(5, 400, 12)
    assert as_set(*all_pairs_within(h, 10, BandLayout.split(3))) == as_set(*brute_force_pairs(h, 10))


def test_incremental_query_equals_batch():
    # tried: adding in 5 uneven batches, querying each batch before adding it: union == all pairs at once
    h = planted(7, 600, 10)
    ids = np.arange(h.size) * 10 + 5  # ids are not positions
    idx, found = HammingIndex(), set()
    cuts = [0, 1, 50, 51, 400, h.size]
    for lo, hi in zip(cuts, cuts[1:]):
        for row, other, dist in idx.query(h[lo:hi], 9):
            found.add((min(ids[lo + row], other), max(ids[lo + row], other), dist))
        inner = all_pairs_within(h[lo:hi], 9)
        found |= {(ids[lo + a], ids[lo + b], dd) for a, b, dd in zip(*[x.tolist() for x in inner])}
        idx.add(ids[lo:hi], h[lo:hi])
    bi, bj, bd = brute_force_pairs(h, 9)
    assert found == {(ids[a], ids[b], dd) for a, b, dd in zip(bi.tolist(), bj.tolist(), bd.tolist())}
    assert len(idx) == h.size
    ai, aj, ad = idx.all_pairs(9)
    assert {(min(a, b), max(a, b), dd) for a, b, dd in zip(ai.tolist(), aj.tolist(), ad.tolist())} == found


def test_query_reports_distance_and_nothing_far():
    # tried: one indexed hash; queries at distance 0, 3 and 20 with threshold 10
    idx = HammingIndex()
    idx.add([42], np.array([0xFF00], dtype=np.uint64))
    q = np.array([0xFF00, 0xFF07, 0xFF00 ^ 0xFFFFF00000], dtype=np.uint64)
    assert idx.query(q, 10) == [(0, 42, 0), (1, 42, 3)]


def test_union_find_and_group_pairs():
    # tried: chains merge transitively; singletons are not groups; mixed id types
    uf = UnionFind()
    uf.union(1, 2), uf.union(3, 4), uf.union(2, 3), uf.add(9)
    assert uf.find(1) == uf.find(4) and uf.find(9) == 9
    assert uf.groups() == [[1, 2, 3, 4]]
    assert group_pairs([(5, 6, 1), (7, 8), (6, 9)]) == [[5, 6, 9], [7, 8]]
    assert group_pairs([]) == []


def brute_nearest(vectors, k, others=None):
    """Each row's k most similar rows by sorting every similarity (rows of zeros excluded)."""
    own = others is None
    others = vectors if own else others
    sim = vectors @ others.T
    sim[:, ~others.any(axis=1)] = -np.inf
    if own:
        np.fill_diagonal(sim, -np.inf)
    out = set()
    for r in np.flatnonzero(vectors.any(axis=1)):
        for c in np.argsort(-sim[r], kind="stable")[:k]:
            if np.isfinite(sim[r, c]):
                out.add((min(r, c), max(r, c)) if own else (r, c))
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 400), st.integers(1, 5))
def test_nearest_pairs_are_every_rows_k_most_similar(seed, n, k):
    # tried: random unit vectors (more rows than one block of 256 and than a group of 64 columns, and fewer than k),
    # a row of zeros (a flat picture: never chosen, chooses nothing), a repeated row (ties), a self-join and a
    # join against other rows
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 6)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v[0] = 0
    if n > 3:
        v[3] = v[2]
    i, j = nearest_pairs(v, k)
    assert np.all(i < j) and len(set(zip(i.tolist(), j.tolist()))) == i.size
    got = set(zip(i.tolist(), j.tolist()))
    want = brute_nearest(v, k)
    if n <= 3:
        assert got == want
    else:  # the repeated row's twin may win a tie either way: compare everything else
        assert {p for p in got if 2 not in p and 3 not in p} == {p for p in want if 2 not in p and 3 not in p}
        assert (2, 3) in got
    probe = rng.normal(size=(7, 6)).astype(np.float32)
    a, b = nearest_pairs(probe, k, others=v)
    sim = probe @ v.T  # each probe row's chosen similarities are the k best (whichever twin a tie gave)
    for r in range(7):
        best = sorted(sim[r, 1:], reverse=True)[:k]
        assert np.allclose(sorted(sim[r, b[a == r]], reverse=True), best)
    assert 0 not in b.tolist() and a.size == 7 * min(k, n - 1)


def test_nearest_pairs_of_nothing_comparable_is_empty():
    # tried: all rows zero, a single row, an empty set
    assert all(x.size == 0 for x in nearest_pairs(np.zeros((5, 4), dtype=np.float32), 3))
    assert all(x.size == 0 for x in nearest_pairs(np.ones((1, 4), dtype=np.float32), 3))
    assert all(x.size == 0 for x in nearest_pairs(np.zeros((0, 4), dtype=np.float32), 3))
