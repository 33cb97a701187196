"""Make real image files (and deliberately broken ones) for tests, and whole datasets (build_dataset, which the
`dataset` fixture in tests/conftest.py wraps)."""
from __future__ import annotations

import io
import shutil
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from app import ROOT


def picture(size: int = 32, seed: int = 0, mode: str = "RGBA") -> Image.Image:
    """A distinct little picture per seed: a coloured shape on a transparent (or white) background."""
    img = Image.new(mode, (size, size), (0, 0, 0, 0) if mode == "RGBA" else (255, 255, 255))
    draw = ImageDraw.Draw(img)
    colour = ((seed * 67) % 256, (seed * 151 + 80) % 256, (seed * 29 + 160) % 256, 255)
    k = size // 8
    if seed % 3 == 0:
        draw.ellipse((k, k + seed % 3, size - k, size - k), fill=colour)
    elif seed % 3 == 1:
        draw.rectangle((k + seed % 4, k, size - 2 * k, size - k), fill=colour)
    else:
        draw.polygon([(size // 2, k), (size - k, size - k), (k, size - k - seed % 5)], fill=colour)
    draw.line((0, seed % size, size, (seed * 7) % size), fill=(255 - colour[0], 30, 30, 255), width=max(1, k // 2))
    return img


def png_bytes(img: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def write_picture(path: Path, size: int = 32, seed: int = 0, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = picture(size, seed, "RGBA" if fmt in ("PNG", "WEBP") else "RGB")
    path.write_bytes(png_bytes(img, fmt))
    return path


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid-looking PNG declaring width×height pixels in a few hundred bytes (a decompression bomb header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(16)) + comp.flush()  # only the first rows: never decoded anyway
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def photo(width: int = 1024, height: int = 768, seed: int = 5) -> Image.Image:
    """A smooth opaque picture with structure at every scale: a JPEG-friendly stand-in for a photo, large enough
    for the import to decode it at reduced size."""
    yy, xx = np.mgrid[:height, :width] / max(width, height)
    f = np.random.default_rng(seed).uniform(2, 9, size=3)
    arr = np.stack([np.sin(xx * f[0] * 6) * np.cos(yy * f[1] * 5), np.sin((xx + yy) * f[2] * 4),
                    np.cos(xx * yy * 30)], -1)
    return Image.fromarray(((arr + 1) * 127.5).astype(np.uint8), "RGB")


def truncated_jpeg(seed: int = 5) -> bytes:
    """The first 60 % of a 1024x768 JPEG: its header is fine, its image data stops short."""
    data = png_bytes(photo(seed=seed), "JPEG")
    return data[: len(data) * 6 // 10]


def truncated_png(seed: int = 1) -> bytes:
    data = png_bytes(picture(64, seed))
    return data[: len(data) // 2]


HTML_AS_JPG = b"<!DOCTYPE html><html><body><h1>Not a picture</h1></body></html>"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


DEMO_IMAGES = ROOT / "demo" / "animal-emoji" / "images"  # the bundled demo set
DISC_COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def build_dataset(root: Path, classes: Mapping[str, int | Sequence[str]] | Sequence[str], *, kind: str = "pictures",
                  size: int | None = None, seed: int = 0, name: str = "{i}.png") -> Path:
    """Write an image folder under `root`, one subfolder per class (class "" puts the files in `root` itself), and
    return `root`. Writing into a folder that already holds files adds to it.

    `classes` maps each class to how many files it gets, in order. `kind` says what the files are:
    - "pictures": `picture(size, seed)` (size 32 unless given), a distinct shape per seed. Seeds count up from `seed`
      across all the classes in order. Files are named `name.format(cls=class, i=index)`, and the name's suffix
      chooses the format (.png, .jpg, .webp).
    - "demo": copies of the bundled demo set's files, either the first N of the class in sorted order or, in place
      of a count, a list of file names. A name with a "/" is a path in the demo set, so a folder may hold another
      demo class's files. `classes` may also be a plain list of demo paths ("cat/x.png"), each copied to the same
      path under `root`.
    - "discs": a disc of one colour per class (red, green, blue, otherwise drawn from the generator) with random
      radius and position, on transparency, size 12 unless given. One generator seeded with `seed` serves the whole
      folder, so the same call always writes the same files."""
    if kind not in ("pictures", "demo", "discs"):
        raise ValueError(f"unknown dataset kind {kind!r}")
    if not isinstance(classes, Mapping):
        if kind != "demo":
            raise ValueError("a list of paths names demo files: pass kind='demo'")
        grouped: dict[str, list[str]] = {}
        for rel in classes:
            grouped.setdefault(rel.rpartition("/")[0], []).append(rel)
        classes = grouped
    root = Path(root)
    if kind == "pictures":
        n = seed
        for cls, count in classes.items():
            for i in range(count):
                filename = name.format(cls=cls, i=i)
                fmt = FORMATS[Path(filename).suffix.lower()]
                write_picture(root / cls / filename, size=size or 32, seed=n, fmt=fmt)
                n += 1
    elif kind == "demo":
        for cls, files in classes.items():
            (root / cls).mkdir(parents=True, exist_ok=True)
            chosen = (sorted((DEMO_IMAGES / cls).glob("*.png"))[:files] if isinstance(files, int)
                      else [DEMO_IMAGES / (f if "/" in f else f"{cls}/{f}") for f in files])
            for f in chosen:
                shutil.copy(f, root / cls / f.name)
    else:
        rng = np.random.default_rng(seed)
        size = size or 12
        yy, xx = np.mgrid[:size, :size]
        for cls, count in classes.items():
            folder = root / cls
            folder.mkdir(parents=True, exist_ok=True)
            colour = DISC_COLOURS.get(cls, tuple(int(v) for v in rng.integers(0, 255, 3)))  # draws for every class
            for i in range(count):
                cx, cy = rng.uniform(size * 0.35, size * 0.65, 2)
                r = rng.uniform(size * 0.2, size * 0.4)
                inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
                arr = np.zeros((size, size, 4), np.uint8)
                arr[inside] = (*colour, 255)
                Image.fromarray(arr, "RGBA").save(folder / name.format(cls=cls, i=i))
    return root
