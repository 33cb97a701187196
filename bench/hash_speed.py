"""Hashing throughput of curator.imports.hashing.fingerprint_many against a plain imagehash loop, same run.

Images: the demo emoji (128 px RGBA PNG) plus, written to a temp dir, copies at realistic sizes so
decoding costs what it costs on user data: 1024 px JPEG (flattened on white, quality 90) and 512 px
RGBA PNG upscales. Baseline: a single-process loop of ``imagehash.phash(Image.open(p))`` (which
computes *only* a pHash). Ours computes sha256, pHash, dHash, the confirm thumbnail and, for files
decoded at full size (PNG), the pixel hash; JPEGs are decoded at reduced size (DCT scaling), so their
pixel hash is left to the duplicate search (curator.dedup.same_pixels). PNG cannot be decoded at reduced
size, so there the decode bounds the gain at about the number of cores.

    python bench/hash_speed.py [--workers 2] [--repeat 3]
"""
from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
from pathlib import Path

import imagehash
from common import DEMO_IMAGES  # bench/common.py, beside this script
from PIL import Image

from curator.imports.hashing import fingerprint_file, fingerprint_many


def build_set(out_dir: str, demo: str | Path = DEMO_IMAGES) -> dict[str, list[str]]:
    """Write the JPEG and PNG upscales; return file lists per kind."""
    src = sorted(glob.glob(os.path.join(demo, "*", "*.png")))
    if not src:
        raise SystemExit(f"no demo images under {demo}")
    sets = {"png128 (demo)": src, "jpeg1024": [], "png512": []}
    for i, p in enumerate(src):
        im = Image.open(p).convert("RGBA")
        big = im.resize((1024, 1024), Image.Resampling.LANCZOS)
        flat = Image.new("RGBA", big.size, (255, 255, 255, 255))
        flat.alpha_composite(big)
        jp = os.path.join(out_dir, f"{i:04d}.jpg")
        flat.convert("RGB").save(jp, quality=90)
        sets["jpeg1024"].append(jp)
        pp = os.path.join(out_dir, f"{i:04d}.png")
        im.resize((512, 512), Image.Resampling.LANCZOS).save(pp)
        sets["png512"].append(pp)
    return sets


def time_it(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs for each method")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = build_set(tmp)
        sets["all"] = [p for k in list(sets) for p in sets[k]]
        print(f"{'set':<15}{'files':>6}{'baseline img/s':>16}{'ours 1 proc':>15}{f'ours {args.workers} proc':>13}"
              f"{'x 1 proc':>12}{f'x {args.workers} proc':>10}")
        for name, paths in sets.items():
            base = time_it(lambda: [imagehash.phash(Image.open(p)) for p in paths], args.repeat)
            one = time_it(lambda: [fingerprint_file(p) for p in paths], args.repeat)
            pool = time_it(lambda: fingerprint_many(paths, workers=args.workers), args.repeat)
            n = len(paths)
            print(f"{name:<15}{n:>6}{n / base:>16.0f}{n / one:>15.0f}{n / pool:>13.0f}"
                  f"{base / one:>11.2f}x{base / pool:>9.2f}x", flush=True)
    print("baseline = single-process imagehash.phash(Image.open(p)); ours = sha256 + pHash + dHash + thumbnail"
          " (+ pixel hash for full-size decodes) on curator.imports.hashing.fingerprint_many's forked processes; best of", args.repeat)


if __name__ == "__main__":
    main()
