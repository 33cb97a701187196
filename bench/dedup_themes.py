"""Duplicate search on real icon themes from Debian: is one icon's set of shipped sizes found as one group, and are
the other icons of its family kept apart? With and without the learned check, in the same run.

Each theme contributes a seeded sample of the icons it ships at two sizes or more, every size as its own file (no
symlinks, no copies made here): the renditions of one icon are one picture (hand-tuned at 16, 22, 24 px and drawn
again at 48 or 256, as themes ship them), and everything else in the theme, its family siblings included, is
another. Files with the same bytes or pixels are one picture whatever their names.

- Tango and GNOME were the learned check's checks while it was built (bench/dedup_verifier.py): seen, not trained on;
- Faenza, Moka, Numix and MATE (the "untouched" set) were first run once, after the check had been trained and its
  settings chosen.

    python bench/dedup_themes.py [--themes Tango,gnome] [--icons 150] [--untouched]

Report: bench/out/dedup-themes.txt (appended per run).
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import time
from collections import Counter

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from dedup_verifier import OUT, THEMES_DIR, ensure_sources, render_file, same_picture, theme_icons  # noqa: E402

from curator.dedup import matching  # noqa: E402
from curator.imports.hashing import fingerprint_bytes  # noqa: E402

SEEN = ["Tango", "gnome"]
UNTOUCHED = ["Faenza", "Moka", "Numix", "mate"]


def sample(theme: str, icons: int, seed: int = 0) -> list[tuple]:
    """(icon key, size, path) of every size of ``icons`` icons of the theme."""
    found = theme_icons(theme)
    keys = sorted(found)
    random.Random(seed).shuffle(keys)
    return [(key, size, path) for key in sorted(keys[:icons]) for size, path in found[key]]


def score(files: list[tuple], picture: np.ndarray, groups: list) -> dict:
    found = np.full(len(files), -1)
    for n, g in enumerate(groups):
        found[g.members] = n
    tp = fp = fn = 0
    by_sizes: Counter = Counter()
    of_sizes: Counter = Counter()
    for i, j in itertools.combinations(range(len(files)), 2):
        same, joined = picture[i] == picture[j], found[i] >= 0 and found[i] == found[j]
        tp += same and joined
        fp += joined and not same
        fn += same and not joined
        if same:
            sizes = tuple(sorted((files[i][1], files[j][1])))
            of_sizes[sizes] += 1
            by_sizes[sizes] += joined
    mixed = sum(len({picture[m] for m in g.members}) > 1 for g in groups)
    members: dict = {}
    for i, p in enumerate(picture.tolist()):
        members.setdefault(p, set()).add(i)
    multi = [m for m in members.values() if len(m) > 1]
    whole = sum(1 for m in multi if found[min(m)] >= 0 and set(groups[found[min(m)]].members) == m)
    return dict(tp=tp, fp=fp, fn=fn, groups=len(groups), mixed=mixed, whole=whole, pictures=len(multi),
                sizes={k: (by_sizes[k], of_sizes[k]) for k in sorted(of_sizes)})


def line(name: str, r: dict) -> str:
    p = r["tp"] / max(r["tp"] + r["fp"], 1)
    rec = r["tp"] / max(r["tp"] + r["fn"], 1)
    gp = (r["groups"] - r["mixed"]) / max(r["groups"], 1)
    return (f"  {name:22s} pairs P {p:.3f} R {rec:.3f} ({r['tp']} right, {r['fp']} wrong, {r['fn']} missed) | "
            f"groups {r['groups']}, {r['mixed']} mixed (P {gp:.3f}), {r['whole']}/{r['pictures']} icons found whole")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--themes", default=",".join(SEEN))
    ap.add_argument("--untouched", action="store_true", help=f"the themes never looked at: {', '.join(UNTOUCHED)}")
    ap.add_argument("--icons", type=int, default=150, help="icons sampled per theme")
    args = ap.parse_args()
    ensure_sources()
    themes = UNTOUCHED if args.untouched else args.themes.split(",")
    out = [f"# {time.strftime('%Y-%m-%d %H:%M')} {args.icons} icons per theme"]
    for theme in themes:
        files, fps = [], []
        for key, size, path in sample(theme, args.icons):  # SVG themes (Numix) drawn at the size they ship for
            data = render_file(path, size)
            if data is not None:
                files.append((key, size, path))
                fps.append(fingerprint_bytes(data))
        picture = same_picture(list(range(len(files))),  # an icon's sizes, and any file sharing bytes or pixels
                               [(key, fp.sha256, fp.pixel_hash) for (key, _, _), fp in zip(files, fps)])
        out.append(f"{theme}: {len(files)} files, {len({k for k, _, _ in files})} icons "
                   f"({str(THEMES_DIR / 'usr/share/icons' / theme)})")
        for learned in (False, True):
            matching.LEARNED_CHECK = learned
            t0 = time.perf_counter()
            groups = matching.find_duplicate_groups(fps)
            r = score(files, picture, groups)
            out.append(line(("with" if learned else "without") + f" learned check ({time.perf_counter() - t0:.1f} s)",
                            r))
            if learned:
                out.append("    found/true pairs by sizes: " + ", ".join(
                    f"{a}-{b} {f}/{n}" for (a, b), (f, n) in r["sizes"].items() if n >= 10))
        print("\n".join(out[-4:]), flush=True)
    matching.LEARNED_CHECK = True
    with open(OUT / "dedup-themes.txt", "a") as fh:
        fh.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
