"""curator.decoding: Wuffs decodes PNGs to exactly the pixels Pillow gives, and anything it is not for goes to Pillow.

What is tried: every PNG colour type and bit depth Pillow writes (1-bit, 4-bit palette, grey, grey+alpha, palette with
and without a transparent index, RGB with and without a colour key, RGBA), an Adam7-interlaced file, 16-bit grey,
an animated PNG, EXIF orientation before and after the pixel data, a truncated file and a corrupt checksum.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from curator.decoding import load_pixels
from curator.hashing import has_alpha, normalise_mode
from curator.validation import Rejected, validate_image_bytes
from imagefiles import png_chunk, picture, truncated_png


def _encode(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **params)
    return buf.getvalue()


def _pillow(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def _ours(data: bytes) -> Image.Image:
    return load_pixels(Image.open(io.BytesIO(data)), data)


def _assert_same_picture(data: bytes, *, by_wuffs: bool = True) -> None:
    opened = Image.open(io.BytesIO(data))
    ours = load_pixels(opened, data)
    assert (ours is not opened) == by_wuffs, "decoded by the wrong decoder"
    theirs = _pillow(data)
    assert ours.size == theirs.size and ours.format == "PNG"
    assert has_alpha(ours) == has_alpha(theirs)
    a, b = normalise_mode(ours), normalise_mode(theirs)
    assert a.mode == b.mode
    assert np.array_equal(np.asarray(a), np.asarray(b))


def _sticker(size: int = 40) -> Image.Image:
    img = picture(size, seed=4)
    arr = np.asarray(img).copy()
    arr[::3, ::2, 3] = 90  # some partial transparency as well
    return Image.fromarray(arr)


CASES = {
    "rgba": lambda: _encode(_sticker()),
    "rgb": lambda: _encode(_sticker().convert("RGB")),
    "rgb colour key": lambda: _encode(_sticker().convert("RGB"), transparency=(0, 0, 0)),
    "grey": lambda: _encode(_sticker().convert("L")),
    "grey + alpha": lambda: _encode(_sticker().convert("LA")),
    "grey colour key": lambda: _encode(_sticker().convert("L"), transparency=0),
    "1-bit": lambda: _encode(_sticker().convert("1")),
    "palette": lambda: _encode(_sticker().convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=64)),
    "palette 4-bit": lambda: _encode(_sticker().convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE,
                                                                          colors=16), bits=4),
    "palette + transparent index": lambda: _encode(_sticker().convert("P"), transparency=0),
    "palette + alpha table": lambda: _encode(_sticker().quantize(32)),
}


@pytest.mark.parametrize("case", CASES)
def test_wuffs_gives_pillows_pixels(case):
    _assert_same_picture(CASES[case]())


def _adam7_png(img: Image.Image) -> bytes:
    """An interlaced RGBA PNG (Pillow cannot write one): the seven Adam7 passes, each row with filter 0."""
    arr = np.asarray(img.convert("RGBA"))
    raw = b""
    for y0, x0, dy, dx in ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2),
                           (1, 0, 2, 1)):
        sub = arr[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    header = struct.pack(">IIBBBBB", img.width, img.height, 8, 6, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


def test_interlaced_png():
    data = _adam7_png(_sticker(37))
    assert Image.open(io.BytesIO(data)).info.get("interlace") == 1
    _assert_same_picture(data)


def test_16_bit_and_animated_pngs_are_left_to_pillow():
    grey16 = Image.fromarray((np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50).astype(np.uint16))
    _assert_same_picture(_encode(grey16), by_wuffs=False)
    frames = [_sticker(), _sticker().rotate(90)]
    animated = _encode(frames[0], save_all=True, append_images=frames[1:])
    _assert_same_picture(animated, by_wuffs=False)


def _with_exif_after_pixels(data: bytes) -> bytes:
    """Move the eXIf chunk behind the IDAT chunk (allowed by the PNG spec; Pillow writes it before)."""
    start = data.index(b"eXIf") - 4
    length = struct.unpack(">I", data[start:start + 4])[0]
    exif_chunk = data[start:start + 12 + length]
    rest = data[:start] + data[start + 12 + length:]
    end = rest.index(b"IEND") - 4
    return rest[:end] + exif_chunk + rest[end:]


@pytest.mark.parametrize("after_pixels", [False, True])
def test_exif_orientation_is_kept(after_pixels):
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter
    data = _encode(_sticker(), exif=exif)
    if after_pixels:
        data = _with_exif_after_pixels(data)
    ours = _ours(data)
    assert ours is not None and ours.getexif().get(0x0112) == 6


def _corrupt_after_idat(data: bytes, back: int) -> bytes:
    """Flip the byte ``back`` bytes before the end of the first IDAT chunk's CRC (1: the CRC, 5: zlib's Adler-32)."""
    at = data.index(b"IDAT")
    end = at + 8 + struct.unpack(">I", data[at - 4:at])[0]
    out = bytearray(data)
    out[end - back] ^= 0xFF
    return bytes(out)


def test_truncated_or_corrupt_pixel_data_is_rejected():
    """Cut mid pixel data, or pixel data whose zlib checksum is wrong: refused, with the reason Pillow always gave."""
    for data in (truncated_png(), _corrupt_after_idat(_encode(_sticker()), back=5)):
        with pytest.raises(Rejected, match="truncated or corrupt image data"):
            validate_image_bytes(data)


def test_chunk_checksum_only_wuffs_checks_goes_to_pillow():
    """A wrong IDAT chunk CRC, which Pillow never verified: Wuffs refuses it, so Pillow decodes it as it always did."""
    _assert_same_picture(_corrupt_after_idat(_encode(_sticker()), back=1), by_wuffs=False)
