"""Import throughput against a bare decode-and-hash loop over the same files, measured in the same run.

Ours: validate, fingerprint (sha256, pixel hash, pHash, dHash, comparison thumbnail), store, thumbnail, index (one
SQLite transaction), as `manage.py import` does it (files stored by two forked worker processes). Baseline:
`PIL.Image.open(...).load()` + sha256 over the same bytes, one process. Target (issue 2): the import costs at most 3x the bare loop.

    python bench/import_speed.py [--n 600] [--repeat 3] [--workdir DIR]

The scratch instances go under --workdir, by default this project's folder (where ./instance lives), not /tmp: on
the machine these figures come from, creating a file under /tmp cost about 1 ms of kernel time, 30x more than
anywhere else on the same disk, and an import creates one or two files per image. The same happens anywhere for a
few minutes after a large delete (this bench deletes its scratch folder when it ends), so the bench first prints
what creating a file costs; run it again later if that is well above 0.05 ms.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import statistics
import tempfile
import time
from pathlib import Path

from common import DEMO_IMAGES, ROOT  # bench/common.py, beside this script
from PIL import Image


def build_sets(tmp: Path, n: int) -> dict[str, Path]:
    """Three realistic sets of n files: the demo stickers (128 px RGBA PNG), the same stickers at 512 px (Lanczos
    upscales: larger sticker art) and photo-sized JPEGs (768 px, flattened on white)."""
    sources = sorted(DEMO_IMAGES.rglob("*.png"))
    stickers, big, photos = tmp / "stickers", tmp / "stickers512", tmp / "photos"
    for i in range(n):
        src = sources[i % len(sources)]
        img = Image.open(src).convert("RGBA")
        cls = src.parent.name
        variant = i // len(sources)
        out = stickers / cls / f"{variant}_{src.name}"
        out.parent.mkdir(parents=True, exist_ok=True)
        if variant:  # distinct bytes for repeats: nudge one pixel so each file is a new image
            img.putpixel((variant % 128, 0), (variant % 256, 0, 0, 255))
        img.save(out)
        out = big / cls / f"{variant}_{src.name}"
        out.parent.mkdir(parents=True, exist_ok=True)
        img.resize((512, 512), Image.Resampling.LANCZOS).save(out)
        photo = Image.new("RGB", img.size, (255, 255, 255))
        photo.paste(img, mask=img.split()[3])
        photo = photo.resize((768, 768), Image.Resampling.BICUBIC)
        if variant:
            photo.putpixel((variant % 768, 1), (variant % 256, 1, 2))
        out = photos / cls / f"{variant}_{src.stem}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        photo.save(out, "JPEG", quality=90)
    return {"stickers 128px PNG": stickers, "stickers 512px PNG": big, "photos 768px JPEG": photos}


def bare_loop(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        data = path.read_bytes()
        hashlib.sha256(data).hexdigest()
        Image.open(io.BytesIO(data)).load()
    return time.perf_counter() - start


def menagerie_import(folder: Path, instance: Path) -> tuple[float, int]:
    from app import create_app
    from core.db import db
    from curator.imports.service import import_paths
    from curator.imports.storage import ImageStore
    from curator.imports.storing import CLI_WORKERS
    app = create_app({"TESTING": True}, instance_path=instance)
    with app.app_context():
        start = time.perf_counter()
        batch = import_paths(db.session, ImageStore(instance), [folder], workers=CLI_WORKERS)  # as `manage.py import`
        elapsed = time.perf_counter() - start
        added = batch.added
        db.engine.dispose()
    return elapsed, added


def file_creation_ms(folder: Path, count: int = 300) -> float:
    """Milliseconds to create (and write 1 KiB to) a new file in `folder`: about 0.05 ms on this project's test disk
    when nothing was deleted lately, and several times that for minutes after a large delete (ext4 skips inodes freed
    in the last 30-300 s when it allocates one), which slows every import measured then."""
    folder.mkdir(parents=True)
    start = time.perf_counter()
    for i in range(count):
        with open(folder / f"{i}.bin", "wb") as f:
            f.write(b"x" * 1024)
    return (time.perf_counter() - start) / count * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="files per set")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (bare loop, then the imports)")
    parser.add_argument("--workdir", type=Path, default=ROOT, help="where the scratch instances go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix=".bench-import-") as tmp_name:
        tmp = Path(tmp_name)
        sets = build_sets(tmp / "src", args.n)
        print(f"creating a file under {args.workdir}: {file_creation_ms(tmp / 'probe'):.3f} ms (see file_creation_ms)")
        print(f"{'set':<22}{'files':>7}{'bare img/s':>12}{'into empty':>12}{'ratio':>8}{'into used':>11}{'ratio':>8}")
        for number, (label, folder) in enumerate(sets.items()):
            other = sets["photos 768px JPEG"] if label != "photos 768px JPEG" else sets["stickers 128px PNG"]
            files = sorted(folder.rglob("*.*"))
            bare, empty, used = [], [], []
            for r in range(args.repeat):  # each round times the bare loop right before its imports, so a slow spell
                bare.append(bare_loop(files))  # of this shared machine slows both sides of the round's ratios
                instance = tmp / f"instance-{number}-{r}-empty"
                elapsed, added = menagerie_import(folder, instance)  # a new instance: creates its store folders
                assert added == len(files), (added, len(files))
                empty.append(elapsed)
                instance = tmp / f"instance-{number}-{r}-used"  # (nothing is deleted before the end: on an ext4
                menagerie_import(other, instance)  # mounted with 'discard', file creation crawls for a while after
                elapsed, added = menagerie_import(folder, instance)  # a large delete)
                assert added == len(files), (added, len(files))
                used.append(elapsed)
            n = len(files)
            ratio_empty = statistics.median(e / b for e, b in zip(empty, bare))
            ratio_used = statistics.median(u / b for u, b in zip(used, bare))
            print(f"{label:<22}{n:>7}{n / min(bare):>12.0f}{n / min(empty):>12.0f}{ratio_empty:>7.2f}x"
                  f"{n / min(used):>11.0f}{ratio_used:>7.2f}x", flush=True)
        print("img/s: best of the rounds; ratio = import time / bare PIL open+load+sha256 time of the same round, median"
              f" of {args.repeat} rounds (target <= 3x); 'into empty' = the first batch of a new instance (it also creates"
              " the store's 256 shard folders), 'into used' = a batch added to an instance already holding"
              f" {args.n} other images")


if __name__ == "__main__":
    main()
