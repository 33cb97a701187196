"""Duplicate search speed at 2k / 20k / 100k images, against imagededup's PHash on the same files, in the same run.

The 2k set is the quality benchmark's first 2,000 files (bench/dedup_set.py, both parts; the cached folder holds the
1,884 it had before the skin-tone and icon-family look-alikes were added). Larger sets add every icon and emoji of the
same npm packages (about 40,000 originals, each rendered once at its shipped size) and transformed copies of them
(curator.dedup.variants) until they reach the size; they are written once to bench/out/speed-N/ as flat folders.

For each size, on the same files:
- **ours**: fingerprints as the import computes them (curator.imports.hashing.fingerprint_many, 2 forked processes)
  and the cold search as `manage.py dedup` runs it (curator.dedup.matching.find_duplicate_groups: banded Hamming
  index, then the confirm stage on the candidates worth it, then the grouping);
- **imagededup**: `PHash().encode_images(image_dir, num_enc_workers=2)` and `find_duplicates(encoding_map,
  max_distance_threshold=10, num_dist_workers=2)` (its defaults otherwise), which compares every pair of hashes.
  Above `--baseline-search-max` files (20,000) its search would take an hour, so it runs on a random sample of that
  many of the same hashes and is scaled by (n / sample)^2, marked "extrapolated"; its hashing is always measured.

`--cli` also times the real thing on the 2k set: `manage.py import` into a fresh instance, then a cold
`manage.py dedup --json` (a new process, nothing cached).

    python bench/dedup_speed.py [--sizes 2000 20000 100000] [--cli] [--no-baseline]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dedup_set import EMOJI_SETS, OUT, ROOT, _iconify, _iconify_svg, _render, build, ensure_npm  # noqa: E402
from PIL import Image  # noqa: E402

from curator.dedup.matching import find_duplicate_groups  # noqa: E402
from curator.dedup.variants import transform  # noqa: E402
from curator.imports.hashing import fingerprint_many  # noqa: E402

ICONIFY = {**EMOJI_SETS, "flat-color-icons": 48, "vscode-icons": 32, "pixelarticons": 24}
RECIPES = ["resize", "jpeg", "crop", "bright", "webp", "border", "border+jpeg", "resize+jpeg", "crop+jpeg"]


def _render_one(job) -> bytes | None:
    kind, a, b, size = job
    try:
        svg = Path(a).read_text() if kind == "file" else a
        buf = io.BytesIO()
        _render(svg, size).save(buf, "PNG")
        return buf.getvalue()
    except Exception:  # an SVG resvg cannot draw: left out
        return None


def _copy_one(job) -> tuple[bytes, str]:
    data, seed = job
    rng = random.Random(seed)
    blob, _ = transform(Image.open(io.BytesIO(data)).convert("RGBA"), rng.choice(RECIPES), rng)
    return blob, Image.open(io.BytesIO(blob)).format.lower().replace("jpeg", "jpg")


def _originals(limit: int) -> list:
    modules = ensure_npm()
    jobs = []
    for name, size in ICONIFY.items():
        data = _iconify(modules, name)
        jobs += [("svg", _iconify_svg(data, icon), None, size) for icon in sorted(data["icons"])]
    fluent = sorted((modules / "@fluentui" / "svg-icons" / "icons").glob("*.svg"))
    for p in fluent:
        m = re.search(r"_(\d+)_(regular|filled)$", p.stem)
        jobs.append(("file", str(p), None, int(m[1]) if m else 24))
    for p in sorted((modules / "@primer" / "octicons" / "build" / "svg").glob("*.svg")):
        jobs.append(("file", str(p), None, 24 if p.stem.endswith("-24") else 16))
    random.Random(0).shuffle(jobs)
    return jobs[:limit]


def speed_set(n: int) -> Path:
    """A flat folder of n files: the quality set for n <= its size, else rendered originals and their copies."""
    root, items = build()
    folder = OUT / f"speed-{n}"
    done = folder / ".complete"
    if done.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if n <= 2000:  # "about 2,000 images": the quality set itself
        for k, it in enumerate(items[:n]):
            shutil.copy(root / it.file, folder / f"{k:06d}{Path(it.file).suffix}")
    else:
        originals = int(n * 0.45)
        with ProcessPoolExecutor(2) as pool:
            rendered = [d for d in pool.map(_render_one, _originals(originals), chunksize=64) if d]
            for k, data in enumerate(rendered):
                (folder / f"o{k:06d}.png").write_bytes(data)
            rng = random.Random(n)
            jobs = [(rendered[rng.randrange(len(rendered))], k) for k in range(n - len(rendered))]
            for k, (blob, ext) in enumerate(pool.map(_copy_one, jobs, chunksize=64)):
                (folder / f"c{k:06d}.{ext}").write_bytes(blob)
    done.write_text("")
    return folder


def time_ours(files: list[Path]) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    fps = fingerprint_many(files, workers=2, on_error="return")
    fps = [fp for fp in fps if not isinstance(fp, Exception)]
    t1 = time.perf_counter()
    groups = find_duplicate_groups(fps)
    return t1 - t0, time.perf_counter() - t1, len(groups)


def time_imagededup(folder: Path, search_max: int) -> tuple[float, float, int, bool]:
    import logging
    import warnings

    from imagededup.methods import PHash
    logging.disable(logging.INFO)  # its progress lines
    warnings.filterwarnings("ignore", module="imagededup")
    hasher = PHash(verbose=False)
    t0 = time.perf_counter()
    encodings = hasher.encode_images(image_dir=str(folder), num_enc_workers=2)
    t1 = time.perf_counter()
    sample = encodings
    if len(encodings) > search_max:
        keys = random.Random(0).sample(sorted(encodings), search_max)
        sample = {k: encodings[k] for k in keys}
    t1 = time.perf_counter()
    dups = hasher.find_duplicates(encoding_map=sample, max_distance_threshold=10, num_dist_workers=2)
    scale = (len(encodings) / len(sample)) ** 2
    return t1 - t0, (time.perf_counter() - t1) * scale, sum(1 for v in dups.values() if v), scale > 1


def time_cli(folder: Path) -> tuple[float, float]:
    instance = Path(tempfile.mkdtemp(prefix="dedup-speed-", dir=OUT))
    try:
        env = {**os.environ, "MENAGERIE_INSTANCE": str(instance)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "import", str(folder), "--class", "bench"],
                       check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t1 = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "dedup", "--json"], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return t1 - t0, time.perf_counter() - t1
    finally:
        shutil.rmtree(instance, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[2000, 20000, 100000])
    ap.add_argument("--cli", action="store_true")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--baseline-search-max", type=int, default=20000)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    rows = []
    for n in args.sizes:
        t0 = time.perf_counter()
        folder = speed_set(n)
        files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        print(f"{len(files)} files in {folder} (ready in {time.perf_counter() - t0:.0f} s)", flush=True)
        ours = time_ours(files)
        print(f"  ours: fingerprints {ours[0]:.1f} s, search {ours[1]:.1f} s, {ours[2]} groups", flush=True)
        base = None if args.no_baseline else time_imagededup(folder, args.baseline_search_max)
        if base:
            print(f"  imagededup PHash: hashes {base[0]:.1f} s, search {base[1]:.1f} s"
                  f"{' (extrapolated from a sample)' if base[3] else ''}, "
                  f"{base[2]} files with a duplicate; ours/theirs: hashes {ours[0] / base[0]:.2f}x, "
                  f"search {ours[1] / base[1]:.2f}x, total {(ours[0] + ours[1]) / (base[0] + base[1]):.2f}x",
                  flush=True)
        rows.append({"n": len(files), "ours": ours[:2], "imagededup": base[:2] if base else None})
        if args.cli and n == args.sizes[0]:
            imp, dedup = time_cli(folder)
            print(f"  manage.py import {imp:.1f} s, cold manage.py dedup --json {dedup:.1f} s", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
