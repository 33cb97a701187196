"""Near-duplicate quality on real images: pHash alone, dHash alone, and the two-stage pipeline.

Benchmark (bench/near_dup_pairs.py): the 298 demo emoji plus transformed copies (resized, JPEG,
WebP, GIF, lossless WebP, cropped 2-5 %, brightness +-10 %, combinations). Positives: pairs made
from one original. Negatives: every other pair; hard negatives are the same emoji in another style
and another emoji of the same class in the same style. Precision/recall/F1 are over pairs.

The confirm stage is also compared, on the same candidate pairs in the same run, with the previous
one (kept below as ``previous_confirm_scores``): separation (5th-percentile true pair minus the
highest-scoring negative) and pairs/s.

    python bench/dedup_quality.py [--variants 6] [--seed 0] [--workers 2] [--no-previous]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from curator.dedup.matching import (DEFAULT_CONFIRM_THRESHOLD, DEFAULT_HASH_THRESHOLD, confirm_scores,
                                    find_duplicate_groups)
from curator.dedup.nearsearch import UnionFind, popcount64
from curator.imports.hashing import THUMB_SIDE, fingerprint_bytes

from near_dup_pairs import build_items  # bench/near_dup_pairs.py, beside this script

PREVIOUS_THRESHOLD = 0.88  # the previous confirm stage's default


def _previous_warps(n: int = THUMB_SIDE, max_crop: float = 0.06, steps: int = 13) -> np.ndarray:
    fracs = np.linspace(-max_crop, max_crop, steps)
    mats = []
    for left in fracs:
        for right in fracs:
            pos = np.clip((left + (np.arange(n) + 0.5) / n * (1.0 - left - right)) * n - 0.5, 0, n - 1)
            lo = np.floor(pos).astype(int)
            m = np.zeros((n, n))
            m[np.arange(n), lo] += 1 - (pos - lo)
            m[np.arange(n), np.minimum(lo + 1, n - 1)] += pos - lo
            mats.append(m)
    return np.stack(mats).astype(np.float32)


def _previous_ncc(x, y, axes):
    x = x - x.mean(axis=axes, keepdims=True)
    y = y - y.mean(axis=axes, keepdims=True)
    den = np.sqrt((x * x).sum(axis=axes) * (y * y).sum(axis=axes))
    return np.where(den > 1e-6, (x * y).sum(axis=axes) / np.maximum(den, 1e-6), 0.0)


def previous_confirm_scores(thumbs_a, thumbs_b, chunk: int = 1024) -> np.ndarray:
    """The confirm stage before the brightness model and structure term (commit b01229c), for comparison.

    Same crop search; then normalised correlation >= 0.90 and ``1 - RMS / 64`` of the 16x16 cell-mean
    residual after a per-channel gain/offset fit.
    """
    mats = _previous_warps()
    k, s, _ = mats.shape

    def best(src_prof, dst_prof):
        warped = (src_prof @ mats.reshape(k * s, s).T).reshape(-1, k, s)
        return np.argmax(_previous_ncc(warped, dst_prof[:, None, :], axes=-1), axis=1)

    def aligned(src, dst):
        gs, gd = src.mean(axis=-1), dst.mean(axis=-1)
        kx, ky = best(gs.mean(axis=1), gd.mean(axis=1)), best(gs.mean(axis=2), gd.mean(axis=2))
        warped = mats[ky][:, None] @ src.transpose(0, 3, 1, 2) @ mats[kx].transpose(0, 2, 1)[:, None]
        target = dst.transpose(0, 3, 1, 2)
        corr = _previous_ncc(warped, target, axes=(1, 2, 3))
        n, c = warped.shape[:2]
        xp = warped.reshape(n, c, 16, s // 16, 16, s // 16).mean(axis=(3, 5)).reshape(n, c, -1)
        yp = target.reshape(n, c, 16, s // 16, 16, s // 16).mean(axis=(3, 5)).reshape(n, c, -1)
        xm, ym = xp.mean(-1, keepdims=True), yp.mean(-1, keepdims=True)
        gain = ((xp - xm) * (yp - ym)).sum(-1, keepdims=True) / np.maximum(((xp - xm) ** 2).sum(-1, keepdims=True), 1e-6)
        resid = np.sqrt(((yp - (ym + gain * (xp - xm))) ** 2).mean(axis=(1, 2)))
        return np.where(corr >= 0.90, 1.0 - resid / 64.0, -1.0)

    def as_arr(blobs):
        return np.frombuffer(b"".join(blobs), dtype=np.uint8).astype(np.float32).reshape(-1, s, s, 3)

    out = np.empty(len(thumbs_a))
    for lo in range(0, len(thumbs_a), chunk):
        x, y = as_arr(thumbs_a[lo : lo + chunk]), as_arr(thumbs_b[lo : lo + chunk])
        score = np.maximum(aligned(x, y), aligned(y, x))
        flat = (x.std(axis=(1, 2, 3)) < 2.0) | (y.std(axis=(1, 2, 3)) < 2.0)
        if flat.any():
            diff = np.abs(x[flat].mean(axis=(1, 2)) - y[flat].mean(axis=(1, 2))).max(axis=-1)
            score[flat] = 1.0 - diff / 255.0 * 4.0
        out[lo : lo + chunk] = score
    return out


def separation(scores: np.ndarray, pos: np.ndarray, hard: np.ndarray, n_pos: int) -> str:
    """How far apart true pairs and negatives score: the lowest true pairs, the highest negatives, the margin."""
    sp = np.sort(scores[pos])
    q1, q5 = sp[int(0.01 * sp.size)], sp[int(0.05 * sp.size)]
    top_neg, top_hard = scores[~pos].max(), scores[hard].max()
    r0 = int((scores[pos] > top_neg).sum()) / n_pos
    return (f"true pairs: lowest {sp[0]:.3f}, 1st pct {q1:.3f}, 5th pct {q5:.3f} | highest negative {top_neg:.3f} "
            f"(hard {top_hard:.3f}) | margin 5th pct - highest negative {q5 - top_neg:+.3f} | "
            f"recall with no false pair {r0:.3f}")


def prf(tp: int, fp: int, n_pos: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / n_pos if n_pos else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _fingerprints(items, workers: int):
    if workers <= 1:
        return [fingerprint_bytes(it.data, it.name) for it in items]
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fingerprint_bytes, [it.data for it in items], [it.name for it in items], chunksize=32))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--loose", type=int, nargs="*", default=[12, 16])
    ap.add_argument("--confirm", type=float, nargs="*", default=[0.82, 0.84, 0.85, 0.86, 0.87, 0.88, 0.90])
    ap.add_argument("--no-previous", action="store_true", help="skip the comparison with the previous confirm stage")
    args = ap.parse_args()

    t0 = time.perf_counter()
    items = build_items(variants=args.variants, seed=args.seed)
    fps = _fingerprints(items, args.workers)
    n = len(items)
    print(f"{n} images ({len({it.group for it in items})} originals x {args.variants} copies + originals); "
          f"built and fingerprinted in {time.perf_counter() - t0:.1f} s")

    group = np.array([it.group for it in items])
    emoji = np.unique([it.emoji for it in items], return_inverse=True)[1]
    style = np.unique([it.style for it in items], return_inverse=True)[1]
    cls = np.unique([it.cls for it in items], return_inverse=True)[1]
    ph = np.array([fp.phash_u64 for fp in fps], dtype=np.uint64)
    dh = np.array([fp.dhash_u64 for fp in fps], dtype=np.uint64)
    iu, ju = np.triu_indices(n, 1)
    pos = group[iu] == group[ju]
    same_subject = ~pos & (emoji[iu] == emoji[ju])
    same_style_cls = ~pos & ~same_subject & (style[iu] == style[ju]) & (cls[iu] == cls[ju])
    pd = popcount64(ph[iu] ^ ph[ju]).astype(np.int16)
    dd = popcount64(dh[iu] ^ dh[ju]).astype(np.int16)
    n_pos = int(pos.sum())
    print(f"pairs: {iu.size} total, {n_pos} positive, {int(same_subject.sum())} hard 'same emoji, other style', "
          f"{int(same_style_cls.sum())} hard 'same style, same class'")

    print("\n== one hash alone: precision / recall / F1 over pairs, per Hamming distance ==")
    print(f"{'dist':>4} | {'pHash P':>8}{'R':>7}{'F1':>7}{'hardFP':>8} | {'dHash P':>8}{'R':>7}{'F1':>7}{'hardFP':>8}")
    best = {}
    for d in range(0, 33, 2):
        row = f"{d:>4} |"
        for name, dist in (("pHash", pd), ("dHash", dd)):
            pred = dist <= d
            tp, fp = int((pred & pos).sum()), int((pred & ~pos).sum())
            hard = int((pred & (same_subject | same_style_cls)).sum())
            p, r, f = prf(tp, fp, n_pos)
            best[name] = max(best.get(name, (0, 0)), (f, d))
            row += f" {p:>8.3f}{r:>7.3f}{f:>7.3f}{hard:>8} |"
        print(row)
    for name, (f, d) in best.items():
        print(f"best {name} alone: F1 {f:.3f} at distance {d}")

    print("\n== two stages: (pHash OR dHash <= loose) proposes, aligned thumbnails confirm ==")
    loosest = max(args.loose)
    cand = np.flatnonzero((pd <= loosest) | (dd <= loosest))
    thumbs_a, thumbs_b = [fps[i].thumb for i in iu[cand]], [fps[j].thumb for j in ju[cand]]
    t1 = time.perf_counter()
    scores = confirm_scores(thumbs_a, thumbs_b)
    t_conf = time.perf_counter() - t1
    print(f"confirm stage: {cand.size} candidate pairs scored in {t_conf:.1f} s "
          f"({cand.size / max(t_conf, 1e-9):.0f} pairs/s)")
    c_pos, c_hard = pos[cand], (same_subject | same_style_cls)[cand]
    print("  now:      " + separation(scores, c_pos, c_hard, n_pos))
    if not args.no_previous:
        t1 = time.perf_counter()
        prev = previous_confirm_scores(thumbs_a, thumbs_b)
        t_prev = time.perf_counter() - t1
        print("  previous: " + separation(prev, c_pos, c_hard, n_pos))
        ok = prev >= PREVIOUS_THRESHOLD
        tp, fp = int((ok & c_pos).sum()), int((ok & ~c_pos).sum())
        p, r, _ = prf(tp, fp, n_pos)
        print(f"  previous at its default {PREVIOUS_THRESHOLD}: P {p:.3f}, R {r:.3f}, hard {int((ok & c_hard).sum())}; "
              f"{cand.size / max(t_prev, 1e-9):.0f} pairs/s: now {t_prev / max(t_conf, 1e-9):.2f}x as fast")
    c_pd, c_dd = pd[cand], dd[cand]
    print(f"{'loose':>5}{'cands':>8}{'stage1 R':>9}{'stage1 P':>9} | confirm >=  P       R       F1   hardFP")
    chosen = None
    for h in args.loose:
        in1 = (c_pd <= h) | (c_dd <= h)
        tp1, fp1 = int((in1 & c_pos).sum()), int((in1 & ~c_pos).sum())
        p1, r1, _ = prf(tp1, fp1, n_pos)
        for k, c in enumerate(args.confirm):
            ok = in1 & (scores >= c)
            tp, fp = int((ok & c_pos).sum()), int((ok & ~c_pos).sum())
            p, r, f = prf(tp, fp, n_pos)
            hard = int((ok & c_hard).sum())
            lead = f"{h:>5}{int(in1.sum()):>8}{r1:>9.3f}{p1:>9.3f}" if k == 0 else " " * 31
            mark = " <- default" if (h, c) == (DEFAULT_HASH_THRESHOLD, DEFAULT_CONFIRM_THRESHOLD) else ""
            print(f"{lead} | {c:>9.3f} {p:>7.3f} {r:>7.3f} {f:>7.3f} {hard:>6}{mark}")
            if p >= 0.99 and r >= 0.95 and hard == 0 and (chosen is None or f > chosen[0]):
                chosen = (f, h, c, p, r)
    if chosen:
        print(f"best F1 meeting P>=0.99, R>=0.95, no hard negative: loose {chosen[1]}, confirm {chosen[2]:.3f} "
              f"(P {chosen[3]:.3f}, R {chosen[4]:.3f}, F1 {chosen[0]:.3f})")
    else:
        print("no setting met P>=0.99 and R>=0.95 with no hard negative")
    sp = np.sort(scores[c_pos])
    print(f"default confirm {DEFAULT_CONFIRM_THRESHOLD}: {DEFAULT_CONFIRM_THRESHOLD - scores[~c_pos].max():+.3f} above the "
          f"highest negative, {sp[int(0.05 * sp.size)] - DEFAULT_CONFIRM_THRESHOLD:+.3f} below the 5th-percentile true pair")

    print("\n== after grouping (union-find over confirmed pairs; a pair is 'predicted same' if in one group) ==")
    print(f"{'loose':>5}{'confirm':>9}{'P':>8}{'R':>8}{'F1':>8}{'hard pairs':>11}{'mixed groups':>13}")
    for h in args.loose:
        in1 = (c_pd <= h) | (c_dd <= h)
        for c in args.confirm:
            ok = in1 & (scores >= c)
            uf = UnionFind(range(n))
            for a, b in zip(iu[cand[ok]].tolist(), ju[cand[ok]].tolist()):
                uf.union(a, b)
            root = np.array([uf.find(x) for x in range(n)])
            same = root[iu] == root[ju]
            tp, fp = int((same & pos).sum()), int((same & ~pos).sum())
            p, r, f = prf(tp, fp, n_pos)
            hard = int((same & (same_subject | same_style_cls)).sum())
            mixed = sum(1 for g in np.unique(root) if len(np.unique(group[root == g])) > 1)
            mark = " <- default" if (h, c) == (DEFAULT_HASH_THRESHOLD, DEFAULT_CONFIRM_THRESHOLD) else ""
            print(f"{h:>5}{c:>9.3f}{p:>8.3f}{r:>8.3f}{f:>8.3f}{hard:>11}{mixed:>13}{mark}")

    print(f"\n== grouping with the defaults (loose {DEFAULT_HASH_THRESHOLD}, confirm {DEFAULT_CONFIRM_THRESHOLD}) ==")
    t2 = time.perf_counter()
    groups = find_duplicate_groups(fps)
    t_grp = time.perf_counter() - t2
    mixed = [g for g in groups if len({int(group[m]) for m in g.members}) > 1]
    pair_tp = sum(1 for g in groups for m in g.matches if group[m.a] == group[m.b])
    members = {m for g in groups for m in g.members}
    complete = sum(1 for g in np.unique(group) if set(np.flatnonzero(group == g)) <= members
                   and any(set(np.flatnonzero(group == g)) <= set(gr.members) for gr in groups))
    print(f"{len(groups)} groups in {t_grp:.1f} s; {len(mixed)} mix different originals; "
          f"{complete}/{len(np.unique(group))} originals have all their copies in one group; "
          f"{pair_tp}/{sum(len(g.matches) for g in groups)} matched pairs are true")
    for g in mixed[:10]:
        print("  mixed:", [items[m].name + f" ({items[m].transform})" for m in g.members][:6])
    kinds = {}
    for g in groups:
        kinds[g.kind] = kinds.get(g.kind, 0) + 1
    print("group kinds:", kinds)
    missed = np.flatnonzero(c_pos & ~(((c_pd <= DEFAULT_HASH_THRESHOLD) | (c_dd <= DEFAULT_HASH_THRESHOLD))
                                      & (scores >= DEFAULT_CONFIRM_THRESHOLD)))
    print(f"positives missed at the defaults among the loosest candidates: {missed.size} "
          f"(+{n_pos - int(c_pos.sum())} never proposed at {loosest} bits)")
    for k in missed[:8]:
        i, j = iu[cand[k]], ju[cand[k]]
        print(f"  {items[i].name} [{items[i].transform}] vs {items[j].name} [{items[j].transform}]: "
              f"pHash {c_pd[k]}, dHash {c_dd[k]}, score {scores[k]:.3f}")
    fp_idx = np.flatnonzero(~c_pos & (scores >= DEFAULT_CONFIRM_THRESHOLD)
                            & ((c_pd <= DEFAULT_HASH_THRESHOLD) | (c_dd <= DEFAULT_HASH_THRESHOLD)))
    for k in fp_idx[:8]:
        i, j = iu[cand[k]], ju[cand[k]]
        print(f"  false match: {items[i].name} vs {items[j].name}: pHash {c_pd[k]}, dHash {c_dd[k]}, "
              f"score {scores[k]:.3f}")


if __name__ == "__main__":
    main()
