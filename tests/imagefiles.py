"""Make real image files (and deliberately broken ones) for tests."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


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


def demo_subset(demo_images: Path, dest: Path, classes=("cat", "fish"), per_class: int = 6) -> Path:
    """A small ImageFolder copy of the demo set (the full set makes a training epoch take seconds)."""
    import shutil
    for name in classes:
        (dest / name).mkdir(parents=True)
        for f in sorted((demo_images / name).glob("*.png"))[:per_class]:
            shutil.copy(f, dest / name / f.name)
    return dest
