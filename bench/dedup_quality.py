"""Duplicate-detection quality on the benchmark set (bench/dedup_set.py): pairs and groups, per kind and per source.

Every file is fingerprinted as the import does it (curator.imports.hashing.fingerprint_many) and grouped as the review
page does it (curator.dedup.matching.find_duplicate_groups at the defaults). A pair is *predicted same* when both files
end in one group; *true* when they are copies of one picture (or renditions of one design).

- pairs: precision and recall over all pairs of the part;
- groups: a predicted group is right when all its members are one picture (group precision = right groups / groups);
  a picture is found when all its files are in one group and nothing else is (group recall = found / pictures with
  two or more files); "mixed" groups hold two different pictures;
- per kind: the share of copies grouped with their original, by what was done to them (border, rendition, resize...);
  "original" is the picture's first file, which for a design drawn at several sizes is its smallest rendition, so a
  copy of the largest counts as missed when the renditions are not grouped; hence also
- per edit against its source: each copy against the very file it was made from (renditions against the previous
  rendition), overall and per kind of source, so an edit's own misses are not mixed up with the renditions';
- per source: pair precision and recall of the pairs that touch that source;
- look-alikes: same subject (emoji of another artist, the filled icon, a neighbouring tile, the same emoji in another
  skin tone, a sibling icon of one family), never true pairs.

    python bench/dedup_quality.py [--part tune|untouched|untouched-2|...|untouched-5|all] [--show 10]
        [--hash BITS] [--confirm SCORE]

"untouched-2" is the second untouched part (bench/dedup_set.py EXTRA_PARTS: subjects neither first part uses, and
brand logos), built after the defaults had been chosen; "untouched-3" the third, built after the confirm stage's edge
retry was chosen on the tuning part; "untouched-4" the fourth, built after session 7's changes and given skin-tone and
icon-family look-alikes, then scored once after the flat-colour test had been chosen on the tuning part; "all" is
the first two parts (which gained the same families); "untouched-5" was built after that, for the next change.
"""
from __future__ import annotations

import argparse
import os
import re
import time
from collections import Counter, defaultdict

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from dedup_set import PARTS, load_part  # noqa: E402  (bench/dedup_set.py, beside this script)

from curator.dedup import matching  # noqa: E402
from curator.imports.hashing import fingerprint_many  # noqa: E402


def prf(tp: int, fp: int, n_pos: int) -> tuple[float, float]:
    return (tp / (tp + fp) if tp + fp else 1.0), (tp / n_pos if n_pos else 1.0)


def step_kinds(how: str) -> list[str]:
    """'border12px#ffffff+jpeg85' -> ['border', 'jpeg']; 'rendition 16px' -> ['rendition']."""
    if how.startswith("rendition"):
        return ["rendition"]
    return sorted({re.match(r"[a-z]+", s)[0] for s in how.split("+")})


def evaluate(items, fps, groups, show: int = 0, label: str = "") -> dict:
    n = len(items)
    truth = np.array([it.group for it in items])
    pred = np.arange(n) + n  # singletons
    for k, g in enumerate(groups):
        pred[list(g.members)] = k
    iu, ju = np.triu_indices(n, 1)
    pos = truth[iu] == truth[ju]
    same = pred[iu] == pred[ju]
    tp, fp, n_pos = int((pos & same).sum()), int((~pos & same).sum()), int(pos.sum())
    p_pair, r_pair = prf(tp, fp, n_pos)
    pictures = Counter(truth.tolist())
    multi = {t for t, c in pictures.items() if c >= 2}
    right = sum(1 for g in groups if len({truth[m] for m in g.members}) == 1)
    mixed = [g for g in groups if len({truth[m] for m in g.members}) > 1]
    found = 0
    for t in multi:
        members = np.flatnonzero(truth == t)
        ks = set(pred[members].tolist())
        if len(ks) == 1 and (pred == next(iter(ks))).sum() == members.size:
            found += 1
    p_grp = right / len(groups) if groups else 1.0
    r_grp = found / len(multi) if multi else 1.0
    subj = np.array([f"{it.subject}" for it in items])
    look = (subj[iu] == subj[ju]) & ~pos
    print(f"{label}{n} images, {len(pictures)} pictures ({len(multi)} with copies), {n_pos} true pairs, "
          f"{int(look.sum())} look-alike pairs")
    print(f"  pairs:  precision {p_pair:.3f}  recall {r_pair:.3f}  ({tp} right, {fp} wrong, {n_pos - tp} missed)")
    print(f"  groups: precision {p_grp:.3f}  recall {r_grp:.3f}  ({len(groups)} groups, {len(mixed)} mixed, "
          f"{found}/{len(multi)} pictures found whole); look-alike pairs grouped: {int((look & same).sum())}")
    # per kind: each copy against its picture's first file (the original or the first rendition)
    first = {}
    for k, it in enumerate(items):
        first.setdefault(it.group, k)
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for k, it in enumerate(items):
        if first[it.group] == k:
            continue
        hit = pred[k] == pred[first[it.group]]
        for kind in step_kinds(it.transform):
            kinds[kind][0] += int(hit)
            kinds[kind][1] += 1
    print("  per kind (copies grouped with their original): " +
          ", ".join(f"{k} {a}/{b} ({a / b:.2f})" for k, (a, b) in sorted(kinds.items())))
    source_of, against = {}, defaultdict(lambda: [0, 0])
    for k, it in enumerate(items):
        if it.transform == "original" or it.transform.startswith("rendition"):
            if it.transform.startswith("rendition") and it.group in source_of:
                hit = int(pred[k] == pred[source_of[it.group]])
                for key in (("rendition", ""), ("rendition", it.kind)):
                    against[key][0] += hit
                    against[key][1] += 1
            source_of[it.group] = k  # copies are made of the file written just before them
            continue
        hit = int(pred[k] == pred[source_of[it.group]])
        for kind in step_kinds(it.transform):
            for key in ((kind, ""), (kind, it.kind)):
                against[key][0] += hit
                against[key][1] += 1
    print("  per edit against its source: " + ", ".join(
        f"{k} {a}/{b} ({a / b:.2f})" for (k, sub), (a, b) in sorted(against.items()) if not sub))
    print("    by kind of source (resize, jpeg, border, rendition): " + "; ".join(
        f"{k} {sub} {a}/{b}" for (k, sub), (a, b) in sorted(against.items())
        if sub and k in ("resize", "jpeg", "border", "rendition")))
    src = np.array([it.source for it in items])
    rows = []
    for s in sorted(set(src.tolist())):
        touch = (src[iu] == s) | (src[ju] == s)
        tp_s, fp_s, np_s = int((touch & pos & same).sum()), int((touch & ~pos & same).sum()), int((touch & pos).sum())
        p_s, r_s = prf(tp_s, fp_s, np_s)
        rows.append(f"{s} P {p_s:.3f} R {r_s:.3f}")
    print("  per source: " + "; ".join(rows))
    if show:
        for g in mixed[:show]:
            print("  mixed:", ", ".join(f"{items[m].source}/{items[m].subject} [{items[m].transform}]"
                                        for m in g.members[:8]) + (" ..." if len(g.members) > 8 else ""))
        missed = np.flatnonzero(pos & ~same)
        for k in missed[:show]:
            a, b = items[iu[k]], items[ju[k]]
            print(f"  missed: {a.source}/{a.subject} [{a.transform}] vs [{b.transform}]")
    return {"pairs": (p_pair, r_pair), "groups": (p_grp, r_grp), "mixed": len(mixed), "kinds": dict(kinds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=[*PARTS, "all"], default="tune")
    ap.add_argument("--show", type=int, default=8, help="mixed groups and missed pairs to print")
    ap.add_argument("--hash", type=int, default=matching.DEFAULT_HASH_THRESHOLD)
    ap.add_argument("--confirm", type=float, default=matching.DEFAULT_CONFIRM_THRESHOLD)
    args = ap.parse_args()
    root, items = load_part(args.part)
    t0 = time.perf_counter()
    fps = fingerprint_many([root / it.file for it in items])
    t1 = time.perf_counter()
    groups = matching.find_duplicate_groups(fps, hash_threshold=args.hash, confirm_threshold=args.confirm)
    t2 = time.perf_counter()
    print(f"part {args.part}: fingerprints {t1 - t0:.1f} s, search and grouping {t2 - t1:.1f} s "
          f"(hash {args.hash} bits, confirm {args.confirm})")
    evaluate(items, fps, groups, args.show)
    for kind in sorted({it.kind for it in items}):
        sel = [k for k, it in enumerate(items) if it.kind == kind]
        remap = {k: n for n, k in enumerate(sel)}
        sub = [matching.Group([remap[m] for m in g.members if m in remap], g.kind) for g in groups]
        sub = [g for g in sub if len(g.members) >= 2]
        evaluate([items[k] for k in sel], None, sub, 0, label=f"[{kind}] ")


if __name__ == "__main__":
    main()
