"""curator.imports.decoding: Wuffs decodes PNGs to the pixels Pillow gives, and anything it is not used for goes to Pillow.

What is tried: every PNG colour type at every bit depth up to 8 (1/2/4-bit grey, 1/2/4-bit palette, grey, grey+alpha,
palette with a transparent index or an alpha table, RGB with and without a colour key, RGBA), Adam7-interlaced files
of five kinds, 16-bit grey, an animated PNG, EXIF orientation as eXIf or XMP before and after the pixel data, a
truncated file and corrupt checksums. "The same picture" is what the rest of Menagerie sees: equal pixels, and for
transparent pictures equal premultiplied pixels (the colour under a fully transparent pixel is invisible; Wuffs
zeroes it where a colour key applies, Pillow keeps it).
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from curator.imports.decoding import load_pixels
from curator.imports.hashing import has_alpha, normalise_mode
from curator.imports.validation import Rejected, validate_image_bytes
from tests.imagefiles import picture, png_chunk, truncated_png


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


def _visible(img: Image.Image) -> np.ndarray:
    img = normalise_mode(img)
    return np.asarray(img.convert("RGBa") if img.mode == "RGBA" else img)


def _assert_same_picture(data: bytes, *, by_wuffs: bool = True) -> Image.Image:
    opened = Image.open(io.BytesIO(data))
    ours = load_pixels(opened, data)
    assert (ours is not opened) == by_wuffs, "decoded by the wrong decoder"
    theirs = _pillow(data)
    assert ours.size == theirs.size and ours.format == "PNG"
    assert has_alpha(ours) == has_alpha(theirs)
    assert np.array_equal(_visible(ours), _visible(theirs))
    return ours


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


CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type
ADAM7 = ((0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1))


def _rows(samples: np.ndarray, depth: int) -> bytes:
    """Filter-0 scanlines of (height, width, channels) samples, packed big-endian at `depth` bits."""
    out = b""
    for row in samples.reshape(samples.shape[0], -1):
        bits = (row[:, None].astype(np.uint16) >> np.arange(depth - 1, -1, -1)) & 1
        out += b"\x00" + np.packbits(bits.astype(np.uint8).ravel()).tobytes()
    return out


def _raw_png(samples: np.ndarray, depth: int, colour_type: int, *, interlaced: bool = False,
             chunks: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A PNG written by hand, for what Pillow cannot write: Adam7 interlacing and 2/4-bit greyscale. `chunks` (PLTE,
    tRNS, ...) go before the pixel data."""
    height, width = samples.shape[:2]
    if interlaced:
        raw = b"".join(_rows(samples[y0::dy, x0::dx], depth) for y0, x0, dy, dx in ADAM7
                       if samples[y0::dy, x0::dx].size)
    else:
        raw = _rows(samples, depth)
    header = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, int(interlaced))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + b"".join(png_chunk(k, v) for k, v in chunks)
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def _samples(colour_type: int, depth: int, seed: int = 3, size: tuple[int, int] = (13, 37)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2 ** depth, size=(*size, CHANNELS[colour_type])).astype(np.uint8)


PALETTE = bytes(np.random.default_rng(9).integers(0, 256, 256 * 3).astype(np.uint8))
RAW_CASES = {
    "grey 2-bit": lambda: _raw_png(_samples(0, 2), 2, 0),
    "grey 4-bit": lambda: _raw_png(_samples(0, 4), 4, 0),
    "palette 1-bit": lambda: _raw_png(_samples(3, 1), 1, 3, chunks=((b"PLTE", PALETTE[:6]),)),
    "palette 2-bit": lambda: _raw_png(_samples(3, 2), 2, 3, chunks=((b"PLTE", PALETTE[:12]),)),
    "rgb colour key (not black)": lambda: _raw_png(_samples(2, 1) * 200, 8, 2,
                                                   chunks=((b"tRNS", struct.pack(">HHH", 200, 0, 200)),)),
    "interlaced grey": lambda: _raw_png(_samples(0, 8), 8, 0, interlaced=True),
    "interlaced grey + alpha": lambda: _raw_png(_samples(4, 8), 8, 4, interlaced=True),
    "interlaced rgb": lambda: _raw_png(_samples(2, 8), 8, 2, interlaced=True),
    "interlaced rgba": lambda: _raw_png(_samples(6, 8), 8, 6, interlaced=True),
    "interlaced palette 4-bit + alpha table": lambda: _raw_png(
        _samples(3, 4), 4, 3, interlaced=True, chunks=((b"PLTE", PALETTE[:48]), (b"tRNS", bytes(range(0, 256, 32))))),
}


@pytest.mark.parametrize("case", RAW_CASES)
def test_wuffs_gives_pillows_pixels_for_hand_written_pngs(case):
    data = RAW_CASES[case]()
    if "interlaced" in case:
        assert Image.open(io.BytesIO(data)).info.get("interlace") == 1
    _assert_same_picture(data)


def test_low_bit_grey_colour_key_is_transparent():
    """A 4-bit grey PNG with a tRNS colour key: Wuffs makes the keyed pixels transparent, as the PNG spec says.
    (Pillow 13 ignores such a key and shows them opaque: this is the one picture that now looks different.)"""
    samples = _samples(0, 4)
    ours = np.asarray(normalise_mode(_ours(_raw_png(samples, 4, 0, chunks=((b"tRNS", struct.pack(">H", 5)),)))))
    keyed = samples[..., 0] == 5
    assert keyed.any() and (ours[..., 3][keyed] == 0).all() and (ours[..., 3][~keyed] == 255).all()
    assert np.array_equal(ours[..., 0][~keyed], samples[..., 0][~keyed] * 17)  # 4-bit grey scaled to 8 bits


def test_16_bit_and_animated_pngs_are_left_to_pillow():
    grey16 = Image.fromarray((np.arange(40 * 30, dtype=np.uint16).reshape(30, 40) * 50).astype(np.uint16))
    _assert_same_picture(_encode(grey16), by_wuffs=False)
    frames = [_sticker(), _sticker().rotate(90)]
    animated = _encode(frames[0], save_all=True, append_images=frames[1:])
    _assert_same_picture(animated, by_wuffs=False)


def _moved_after_pixels(data: bytes, kind: bytes) -> bytes:
    """Move the `kind` chunk behind the IDAT chunk (allowed by the PNG spec; Pillow writes it before)."""
    start = data.index(kind) - 4
    length = struct.unpack(">I", data[start:start + 4])[0]
    chunk = data[start:start + 12 + length]
    rest = data[:start] + data[start + 12 + length:]
    end = rest.index(b"IEND") - 4
    return rest[:end] + chunk + rest[end:]


def _xmp_orientation() -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/'
                  '1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
                  'tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    return info


@pytest.mark.parametrize("where", ["eXIf before the pixels", "eXIf after the pixels", "XMP before the pixels",
                                   "XMP after the pixels"])
def test_exif_orientation_is_kept(where):
    """Orientation 6 (turned a quarter) as an eXIf chunk or as XMP in an iTXt chunk, before or after the pixel data:
    after it, only Pillow's decode reads the chunk, so such files go to Pillow."""
    if where.startswith("eXIf"):
        exif = Image.Exif()
        exif[0x0112] = 6
        data, kind = _encode(_sticker(), exif=exif), b"eXIf"
    else:
        data, kind = _encode(_sticker(), pnginfo=_xmp_orientation()), b"iTXt"
    after = where.endswith("after the pixels")
    if after:
        data = _moved_after_pixels(data, kind)
    ours = _assert_same_picture(data, by_wuffs=not after)
    assert ours.getexif().get(0x0112) == 6


def test_text_before_the_pixels_keeps_wuffs():
    """The usual case, a tEXt chunk (e.g. the software that saved it) before the pixels: still decoded by Wuffs."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "a paint program")
    assert _assert_same_picture(_encode(_sticker(), pnginfo=info)).info["Software"] == "a paint program"


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
