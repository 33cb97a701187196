"""Sub-quadratic Hamming-distance search over 64-bit perceptual hashes.

Why banding is exact: split the 64 bits into ``m`` bands. If two hashes differ in at most ``d`` bits,
the differing bits are spread over the ``m`` bands, so at least one band differs in at most
``r = d // m`` bits (generalised pigeonhole: ``m * (r + 1) > d``). Candidates are therefore the pairs
whose values in some band differ by at most ``r`` bits; they are found by bucketing every band value
and probing the ``sum_{k<=r} C(width, k)`` neighbouring buckets, then verified with XOR + popcount
on the full 64 bits. No pair within ``d`` is missed (the tests check this against brute force).

The number of bands trades probes (many when ``r`` is large) against candidates (many when bands
are narrow); ``plan_bands`` picks it from a cost model, so 100k hashes use 4 bands of 16 bits and
1M hashes 3 bands of ~21 bits for ``d = 10``.

``nearest_pairs`` is the other way of proposing pairs: each vector's few most similar others by dot product,
however far apart their hashes are (exact, in blocks of rows).

Pure NumPy; nothing here knows about images or databases.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

__all__ = [
    "popcount64",
    "hamming",
    "BandLayout",
    "plan_bands",
    "HammingIndex",
    "all_pairs_within",
    "brute_force_pairs",
    "nearest_pairs",
    "UnionFind",
    "group_pairs",
]

_MAX_BAND_WIDTH = 24  # dense bucket-count arrays of 2**24 int32 = 64 MiB at most
_CHUNK_CANDIDATES = 1 << 23  # candidates verified per NumPy pass (bounds memory, ~100 MB)

if hasattr(np, "bitwise_count"):  # NumPy >= 2.0

    def popcount64(x: np.ndarray) -> np.ndarray:
        """Number of set bits of each uint64 (as uint8)."""
        return np.bitwise_count(x)

else:  # pragma: no cover - exercised only on NumPy 1.x
    _POP16 = np.array([bin(i).count("1") for i in range(1 << 16)], dtype=np.uint8)

    def popcount64(x: np.ndarray) -> np.ndarray:
        """Number of set bits of each uint64 (as uint8), via a 16-bit lookup table."""
        x = np.ascontiguousarray(x, dtype=np.uint64)
        parts = x.view(np.uint16).reshape(x.shape + (4,))
        return _POP16[parts].sum(axis=-1, dtype=np.uint8)


def as_uint64(hashes) -> np.ndarray:
    """Hashes as a 1-D uint64 array; signed int64 (as stored in SQLite) is reinterpreted, not converted."""
    arr = np.asarray(hashes)
    if arr.size == 0:  # an empty list reads as float64; no hashes is still a valid (empty) set of them
        return np.zeros(0, dtype=np.uint64)
    if arr.dtype == np.uint64:
        return np.ascontiguousarray(arr.reshape(-1))
    if arr.dtype == np.int64:
        return np.ascontiguousarray(arr.reshape(-1)).view(np.uint64)
    if arr.dtype == object or arr.dtype.kind in "iu":
        # Python ints: accept both signed (-2**63..2**63-1) and unsigned (0..2**64-1) spellings.
        return np.array([int(h) & 0xFFFFFFFFFFFFFFFF for h in arr.reshape(-1)], dtype=np.uint64)
    raise TypeError(f"hashes must be integers, got dtype {arr.dtype}")


def hamming(a, b) -> np.ndarray:
    """Element-wise Hamming distance between two arrays of 64-bit hashes."""
    return popcount64(as_uint64(a) ^ as_uint64(b)).astype(np.int64)


# --------------------------------------------------------------------------- band layout


@dataclass(frozen=True)
class BandLayout:
    """How the 64 bits are cut into bands: ``(shift, width)`` per band, covering all 64 bits once."""

    bands: tuple[tuple[int, int], ...]

    @classmethod
    def split(cls, m: int) -> "BandLayout":
        if not 1 <= m <= 64:
            raise ValueError(f"number of bands must be in 1..64, got {m}")
        widths = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
        shifts = np.concatenate([[0], np.cumsum(widths)[:-1]]).tolist()
        return cls(tuple((int(s), int(w)) for s, w in zip(shifts, widths)))

    @property
    def m(self) -> int:
        return len(self.bands)

    def radii(self, max_distance: int) -> list[int]:
        """Per-band radii with ``sum(r + 1) == max_distance + 1``: every pair within ``max_distance`` has
        some band within its radius (if every band j differed by > r_j bits, the total would exceed d).
        Wider bands (listed first) get the larger radii. A radius of -1 means the band is not probed."""
        q, rem = divmod(max_distance + 1, self.m)
        return [q if j < rem else q - 1 for j in range(self.m)]

    def values(self, hashes: np.ndarray, band: int) -> np.ndarray:
        shift, width = self.bands[band]
        return ((hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)


def _ball_volume(width: int, r: int) -> int:
    return sum(comb(width, k) for k in range(min(r, width) + 1)) if r >= 0 else 0


def _masks(width: int, r: int) -> np.ndarray:
    """All XOR masks of ``width`` bits with at most ``r`` bits set (0 first)."""
    if r < 0:
        return np.empty(0, dtype=np.int64)
    out = [0]
    for k in range(1, min(r, width) + 1):
        for bits in combinations(range(width), k):
            v = 0
            for b in bits:
                v |= 1 << b
            out.append(v)
    return np.array(out, dtype=np.int64)


def plan_bands(n_probe: int, n_indexed: int, max_distance: int, self_join: bool) -> BandLayout:
    """Choose the number of bands minimising (bucket probes + weighted candidate verifications).

    Candidates cost about four times a probe (gather, XOR, popcount, compare on 64-bit words).
    """
    if max_distance < 0:
        raise ValueError("max_distance must be >= 0")
    best, best_cost = None, None
    for m in range(2, 17):
        layout = BandLayout.split(m)
        if max(w for _, w in layout.bands) > _MAX_BAND_WIDTH:
            continue
        cost = 0.0
        for (_, w), r in zip(layout.bands, layout.radii(max_distance)):
            vol = _ball_volume(w, r)
            buckets = 2.0**w
            occupied = buckets * (1.0 - np.exp(-n_probe / buckets))
            pairs = n_probe * n_indexed / (2.0 if self_join else 1.0)
            cost += occupied * vol / (2.0 if self_join else 1.0) + 4.0 * pairs * vol / buckets
        if best_cost is None or cost < best_cost:
            best, best_cost = layout, cost
    return best


# --------------------------------------------------------------------------- bucket tables


class _BandTable:
    """One band of one set of hashes: items sorted by band value, with dense bucket counts/offsets."""

    __slots__ = ("width", "order", "sorted_hashes", "counts", "starts", "occupied", "keys", "key_starts",
                 "key_counts")

    def __init__(self, hashes: np.ndarray, values: np.ndarray, width: int):
        self.width = width
        order = np.argsort(values, kind="stable")
        self.order = order
        self.sorted_hashes = hashes[order]
        counts = np.bincount(values, minlength=1 << width)
        idx_t = np.int32 if hashes.size < 2**31 - 1 else np.int64
        self.counts = counts.astype(idx_t)
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(idx_t)
        self.occupied = counts > 0  # 1 byte per bucket: the probe table that stays in cache
        keys = np.flatnonzero(counts)
        self.keys = keys.astype(np.int64)  # occupied bucket values, ascending
        self.key_starts = self.starts[keys].astype(np.int64)
        self.key_counts = counts[keys].astype(np.int64)


_SLOT_LIMIT = 24  # buckets up to this size are verified slot by slot; bigger ones by run expansion


def _expand(probe_hashes, cb, sb, indexed_sorted, max_distance):
    """Verify probe hash k against the run ``indexed_sorted[sb[k] : sb[k] + cb[k]]``, for all k.

    Returns lists of (probe_row, indexed_sorted_pos, distance) arrays for pairs within ``max_distance``.
    Linear in the number of candidates; chunked to bound memory. Used for big buckets.
    """
    rows_out, pos_out, dist_out = [], [], []
    n = cb.size
    if n == 0:
        return rows_out, pos_out, dist_out
    csum = np.cumsum(cb)
    lo = 0
    while lo < n:
        base = csum[lo - 1] if lo else 0
        hi = max(int(np.searchsorted(csum, base + _CHUNK_CANDIDATES, side="right")), lo + 1)
        c, s = cb[lo:hi], sb[lo:hi]
        total = int(csum[hi - 1] - base)
        if total:
            nz = c > 0
            rows = np.flatnonzero(nz) + lo
            c, s = c[nz], s[nz]
            offs = np.concatenate([[0], np.cumsum(c)[:-1]])
            # positions s_k .. s_k + c_k - 1 for every probe row, built with one cumsum
            step = np.ones(total, dtype=np.int64)
            step[0] = s[0]
            if offs.size > 1:
                step[offs[1:]] = s[1:] - (s[:-1] + c[:-1] - 1)
            pos = np.cumsum(step)
            dist = popcount64(np.repeat(probe_hashes[rows], c) ^ indexed_sorted[pos])
            hit = np.flatnonzero(dist <= max_distance)
            if hit.size:
                which = np.searchsorted(offs, hit, side="right") - 1
                rows_out.append(rows[which]), pos_out.append(pos[hit]), dist_out.append(dist[hit].astype(np.int64))
        lo = hi
    return rows_out, pos_out, dist_out


def _verify_bucket_pairs(p_sorted, p_start, p_count, i_sorted, i_start, i_count, max_distance, same_bucket):
    """Verify every item of probe bucket g against every item of indexed bucket g, for all g at once.

    Small buckets (the common case for well-spread hashes) go slot by slot: for slot a of the probe
    bucket and slot b of the indexed bucket, one vectorised XOR + popcount over all bucket pairs that
    have both slots, so no per-candidate index arrays are built. Big buckets fall back to run expansion.
    ``same_bucket`` means probe and indexed bucket are the same one (self-join): only slots a < b.
    Returns (probe_sorted_pos, indexed_sorted_pos, dist) arrays.
    """
    ps_out, is_out, d_out = [], [], []
    big = (p_count > _SLOT_LIMIT) | (i_count > _SLOT_LIMIT)
    if big.any():
        g = np.flatnonzero(big)
        rows = np.repeat(p_start[g] - np.concatenate([[0], np.cumsum(p_count[g])[:-1]]), p_count[g])
        rows += np.arange(rows.size)  # probe positions, bucket by bucket
        cb = np.repeat(i_count[g], p_count[g])
        sb = np.repeat(i_start[g], p_count[g])
        if same_bucket:  # only later items of the same bucket
            cb = sb + cb - rows - 1
            sb = rows + 1
        rws, pss, dss = _expand(p_sorted[rows], cb, sb, i_sorted, max_distance)
        for rw, pz, dz in zip(rws, pss, dss):
            ps_out.append(rows[rw]), is_out.append(pz), d_out.append(dz)
        keep = ~big
        p_start, p_count, i_start, i_count = p_start[keep], p_count[keep], i_start[keep], i_count[keep]
    # slot a of the probe bucket against slot b of the indexed bucket; index arrays shrink as slots run out
    pa_all, ic_all, is_all, pc_all = p_start, i_count, i_start, p_count
    a = 0
    while pa_all.size:
        ha = p_sorted[pa_all + a] if a else p_sorted[pa_all]
        b = a + 1 if same_bucket else 0
        # all indexed buckets are non-empty, so the first slot needs no selection
        if b == 0:
            pa, ib, hh, ic = pa_all + a, is_all, ha, ic_all
        else:
            act = np.flatnonzero(ic_all > b)
            pa, ib, hh, ic = pa_all[act] + a, is_all[act] + b, ha[act], ic_all[act]
        while pa.size:
            dist = popcount64(hh ^ i_sorted[ib])
            hit = np.flatnonzero(dist <= max_distance)
            if hit.size:
                ps_out.append(pa[hit]), is_out.append(ib[hit]), d_out.append(dist[hit].astype(np.int64))
            b += 1
            act = np.flatnonzero(ic > b)
            pa, ib, hh, ic = pa[act], ib[act] + 1, hh[act], ic[act]
        a += 1
        act = np.flatnonzero(pc_all > a)
        pa_all, ic_all, is_all, pc_all = pa_all[act], ic_all[act], is_all[act], pc_all[act]
    if not ps_out:
        e = np.empty(0, dtype=np.int64)
        return e, e.copy(), e.copy()
    return np.concatenate(ps_out), np.concatenate(is_out), np.concatenate(d_out)


def _mask_groups(masks: np.ndarray):
    """Non-zero masks grouped by their highest set bit (for the self-join's key < key^mask rule)."""
    nz = masks[masks != 0]
    if nz.size == 0:
        return []
    high = np.floor(np.log2(nz.astype(np.float64))).astype(np.int64)
    return [(int(h), nz[high == h]) for h in np.unique(high)]


def _probe_buckets(keys, masks, occupied, budget=1 << 22):
    """Yield (key_index, target_bucket) for keys x masks whose target bucket is occupied, in chunks."""
    per = max(1, budget // max(1, masks.size))
    for lo in range(0, keys.size, per):
        tgt = (keys[lo : lo + per, None] ^ masks[None, :]).ravel()
        hit = np.flatnonzero(occupied[tgt])
        if hit.size:
            yield hit // masks.size + lo, tgt[hit]


def _band_join(probe_sorted, p_keys, p_kstart, p_kcount, table: _BandTable, r, max_distance, self_join):
    """Pairs sharing a band within ``r`` bits, verified on all 64 bits.

    Returns (probe_sorted_pos, indexed_sorted_pos, dist).
    """
    out = []
    masks = _masks(table.width, r)
    if masks.size == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e.copy(), e.copy()
    if self_join:
        out.append(_verify_bucket_pairs(probe_sorted, p_kstart, p_kcount, table.sorted_hashes, p_kstart, p_kcount,
                                        max_distance, same_bucket=True))
        for high, group in _mask_groups(masks):
            # each unordered bucket pair {u, u^mask} once: from the bucket whose `high` bit is 0
            sel = np.flatnonzero((p_keys >> high) & 1 == 0)
            for ki, tgt in _probe_buckets(p_keys[sel], group, table.occupied):
                ki = sel[ki]
                out.append(_verify_bucket_pairs(probe_sorted, p_kstart[ki], p_kcount[ki], table.sorted_hashes,
                                                table.starts[tgt].astype(np.int64), table.counts[tgt].astype(np.int64),
                                                max_distance, same_bucket=False))
    else:
        for ki, tgt in _probe_buckets(p_keys, masks, table.occupied):
            out.append(_verify_bucket_pairs(probe_sorted, p_kstart[ki], p_kcount[ki], table.sorted_hashes,
                                            table.starts[tgt].astype(np.int64), table.counts[tgt].astype(np.int64),
                                            max_distance, same_bucket=False))
    out = [o for o in out if o[0].size]
    if not out:
        e = np.empty(0, dtype=np.int64)
        return e, e.copy(), e.copy()
    return tuple(np.concatenate([o[i] for o in out]) for i in range(3))


def _first_band_filter(layout, radii, a_hashes, b_hashes, band):
    """True where ``band`` is the first band within its radius (so each pair is reported once)."""
    keep = np.ones(a_hashes.size, dtype=bool)
    x = a_hashes ^ b_hashes
    for earlier in range(band):
        shift, width = layout.bands[earlier]
        part = (x >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        keep &= popcount64(part) > radii[earlier]
    return keep


def _join(probe: np.ndarray, indexed: np.ndarray, max_distance: int, layout: BandLayout,
          tables: list[_BandTable] | None = None, self_join: bool = False):
    """All (probe_row, indexed_row, dist) within ``max_distance``; for a self-join rows satisfy i < j."""
    if max(w for _, w in layout.bands) > _MAX_BAND_WIDTH:
        raise ValueError(f"bands wider than {_MAX_BAND_WIDTH} bits need too much memory; use >= 3 bands")
    if max_distance < 0:
        raise ValueError("max_distance must be >= 0")
    radii = layout.radii(max_distance)
    rows_l, cols_l, dist_l = [], [], []
    for band, ((_, width), r) in enumerate(zip(layout.bands, radii)):
        if r < 0:
            continue
        table = tables[band] if tables is not None else _BandTable(indexed, layout.values(indexed, band), width)
        if self_join:
            p_order, p_sorted = table.order, table.sorted_hashes
            p_keys, p_kstart, p_kcount = table.keys, table.key_starts, table.key_counts
        else:
            pv = layout.values(probe, band)
            p_order = np.argsort(pv, kind="stable")
            p_sorted = probe[p_order]
            p_keys, p_kstart, p_kcount = np.unique(pv[p_order], return_index=True, return_counts=True)
        ps, pi, dist = _band_join(p_sorted, p_keys, p_kstart.astype(np.int64), p_kcount.astype(np.int64), table, r,
                                  max_distance, self_join)
        if ps.size:
            rows, cols = p_order[ps], table.order[pi]
            keep = _first_band_filter(layout, radii, probe[rows], indexed[cols], band)
            rows_l.append(rows[keep]), cols_l.append(cols[keep]), dist_l.append(dist[keep])
    if not rows_l:
        e = np.empty(0, dtype=np.int64)
        return e, e.copy(), e.copy()
    rows, cols, dist = np.concatenate(rows_l), np.concatenate(cols_l), np.concatenate(dist_l)
    if self_join:
        rows, cols = np.minimum(rows, cols), np.maximum(rows, cols)
    order = np.lexsort((cols, rows))
    return rows[order], cols[order], dist[order]


def all_pairs_within(hashes, max_distance: int, layout: BandLayout | None = None):
    """Every pair ``(i, j, d)`` with ``i < j`` (array positions) and Hamming distance ``d <= max_distance``."""
    h = as_uint64(hashes)
    if layout is None:
        layout = plan_bands(h.size, h.size, max_distance, self_join=True)
    return _join(h, h, max_distance, layout, self_join=True)


def brute_force_pairs(hashes, max_distance: int, rows: np.ndarray | None = None, also=None):
    """Reference O(n^2) search: XOR + popcount of each row against all later rows.

    ``rows`` restricts the outer loop to a sample of rows (for timing extrapolation in benchmarks). ``also``, a second
    hash of each item, makes a pair's distance the smaller of its two (the search proposes a pair when its pHash *or*
    its dHash is close).
    """
    h = as_uint64(hashes)
    h2 = None if also is None else as_uint64(also)
    out_i, out_j, out_d = [], [], []
    block = 256
    rows = np.arange(h.size) if rows is None else np.asarray(rows)
    for start in range(0, rows.size, block):
        rs = rows[start : start + block]
        d = popcount64(h[rs, None] ^ h[None, :])
        if h2 is not None:
            d = np.minimum(d, popcount64(h2[rs, None] ^ h2[None, :]))
        ii, jj = np.nonzero(d <= max_distance)
        keep = jj > rs[ii]
        out_i.append(rs[ii[keep]]), out_j.append(jj[keep]), out_d.append(d[ii[keep], jj[keep]].astype(np.int64))
    if not out_i:
        e = np.empty(0, dtype=np.int64)
        return e, e.copy(), e.copy()
    i, j, d = np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_d)
    order = np.lexsort((j, i))
    return i[order], j[order], d[order]


# --------------------------------------------------------------------------- nearest by dot product


def nearest_pairs(vectors: np.ndarray, k: int, others: np.ndarray | None = None,
                  block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``vectors`` with its ``k`` most similar rows by dot product: of ``others`` (then (row, other
    row) positions) or of ``vectors`` themselves (then each pair once, as (i, j) with i < j, whichever of the two
    chose the other). Rows of zeros (nothing to compare) neither choose nor are chosen. Exact: every row against
    every other, ``block`` rows at a time (memory: block x len(others) floats)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    self_join = others is None
    others = vectors if self_join else np.ascontiguousarray(others, dtype=np.float32)
    empty = np.zeros(0, dtype=np.int64)
    live = np.flatnonzero(vectors.any(axis=1))
    blank = ~others.any(axis=1)
    k = min(k, int((~blank).sum()) - (1 if self_join else 0))  # a row is never its own neighbour
    if k <= 0 or live.size == 0:
        return empty, empty
    rows, cols = [], []
    for lo in range(0, live.size, block):
        chosen = live[lo:lo + block]
        sim = vectors[chosen] @ others.T
        sim[:, blank] = -np.inf
        if self_join:
            sim[np.arange(chosen.size), chosen] = -np.inf
        r, c = _top_k(sim, k)
        rows.append(chosen[r])
        cols.append(c)
    i, j = np.concatenate(rows), np.concatenate(cols)
    if not self_join:
        return i, j
    pairs = np.unique(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


_TOP_GROUP = 64  # columns whose maximum stands for them in the first pass of ``_top_k``


def _top_k(sim: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of each row's ``k`` largest values. A full partition of every row costs ten times a comparison:
    the k-th largest of the maxima of groups of 64 columns is a lower bound of the row's k-th largest value (k groups
    each hold a value that large), so only the values from it up are sorted."""
    b, n = sim.shape
    pad = -n % _TOP_GROUP
    grouped = np.pad(sim, ((0, 0), (0, pad)), constant_values=-np.inf).reshape(b, -1, _TOP_GROUP).max(axis=2)
    if grouped.shape[1] > k:
        bound = -np.partition(-grouped, k - 1, axis=1)[:, k - 1]
        r, c = np.nonzero(sim >= bound[:, None])
    else:  # as few groups as wanted values: every value
        r, c = np.nonzero(sim > -np.inf)
    order = np.lexsort((-sim[r, c], r))
    r, c = r[order], c[order]
    first = np.r_[0, np.flatnonzero(np.diff(r)) + 1]
    rank = np.arange(r.size) - np.repeat(first, np.diff(np.r_[first, r.size]))
    keep = rank < k
    return r[keep], c[keep]


# --------------------------------------------------------------------------- incremental index


class _Segment:
    """An immutable batch of indexed hashes with its band tables (log-structured merging keeps few)."""

    def __init__(self, ids: np.ndarray, hashes: np.ndarray, layout: BandLayout):
        self.ids = ids
        self.hashes = hashes
        self.tables = [_BandTable(hashes, layout.values(hashes, b), w) for b, (_, w) in enumerate(layout.bands)]

    @property
    def size(self) -> int:
        return self.ids.size


class HammingIndex:
    """Incremental near-duplicate index over 64-bit hashes.

    ``add`` stores a batch as a new segment (cost proportional to the batch, merged geometrically so
    there are O(log n) segments); ``query`` answers "which indexed hashes are within d of these?"
    without re-scanning the index. ``all_pairs`` finds every indexed pair within d.
    Ids are int64 (e.g. database primary keys).
    """

    def __init__(self, bands: int = 4):
        self.layout = BandLayout.split(bands)
        if max(w for _, w in self.layout.bands) > _MAX_BAND_WIDTH:
            raise ValueError(f"{bands} bands are too wide for dense bucket tables; use >= 3")
        self._segments: list[_Segment] = []

    def __len__(self) -> int:
        return sum(s.size for s in self._segments)

    def add(self, ids, hashes) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        h = as_uint64(hashes)
        if ids.size != h.size:
            raise ValueError(f"{ids.size} ids but {h.size} hashes")
        if h.size == 0:
            return
        self._segments.append(_Segment(ids.copy(), h.copy(), self.layout))
        while len(self._segments) >= 2 and self._segments[-1].size * 2 >= self._segments[-2].size:
            b, a = self._segments.pop(), self._segments.pop()
            self._segments.append(_Segment(np.concatenate([a.ids, b.ids]), np.concatenate([a.hashes, b.hashes]),
                                           self.layout))

    def ids(self) -> np.ndarray:
        return np.concatenate([s.ids for s in self._segments]) if self._segments else np.empty(0, np.int64)

    def hashes(self) -> np.ndarray:
        return np.concatenate([s.hashes for s in self._segments]) if self._segments else np.empty(0, np.uint64)

    def query(self, hashes, max_distance: int) -> list[tuple[int, int, int]]:
        """``(query_row, indexed_id, distance)`` for every indexed hash within ``max_distance``."""
        rows, ids, dist = self.query_arrays(hashes, max_distance)
        return list(zip(rows.tolist(), ids.tolist(), dist.tolist()))

    def query_arrays(self, hashes, max_distance: int):
        q = as_uint64(hashes)
        rows_l, ids_l, dist_l = [], [], []
        for seg in self._segments:
            rows, cols, dist = _join(q, seg.hashes, max_distance, self.layout, tables=seg.tables)
            rows_l.append(rows), ids_l.append(seg.ids[cols]), dist_l.append(dist)
        if not rows_l:
            e = np.empty(0, dtype=np.int64)
            return e, e.copy(), e.copy()
        rows, ids, dist = np.concatenate(rows_l), np.concatenate(ids_l), np.concatenate(dist_l)
        order = np.lexsort((ids, dist, rows))
        return rows[order], ids[order], dist[order]

    def all_pairs(self, max_distance: int):
        """Arrays ``(id_a, id_b, distance)`` of every indexed pair within ``max_distance`` (each pair once)."""
        ids, h = self.ids(), self.hashes()
        i, j, d = all_pairs_within(h, max_distance)
        return ids[i], ids[j], d


# --------------------------------------------------------------------------- grouping


class UnionFind:
    """Disjoint sets over arbitrary hashable items (path halving + union by size)."""

    def __init__(self, items=()):
        self._parent: dict = {}
        self._size: dict = {}
        for x in items:
            self.add(x)

    def add(self, x) -> None:
        if x not in self._parent:
            self._parent[x] = x
            self._size[x] = 1

    def find(self, x):
        self.add(x)
        parent = self._parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]
        return ra

    def groups(self, min_size: int = 2) -> list[list]:
        out: dict = {}
        for x in self._parent:
            out.setdefault(self.find(x), []).append(x)
        return [sorted(g) for g in out.values() if len(g) >= min_size]


def group_pairs(pairs, min_size: int = 2) -> list[list]:
    """Connected components of the graph whose edges are ``pairs`` ((a, b) or (a, b, ...)); sorted."""
    uf = UnionFind()
    for p in pairs:
        uf.union(p[0], p[1])
    return sorted(uf.groups(min_size), key=lambda g: (-len(g), g[0]))
