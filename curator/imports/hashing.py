"""Image fingerprints for duplicate detection: exact bytes, exact pixels, perceptual hashes, a confirm thumbnail.

Pure: PIL, pywuffs, numpy, scipy and xxhash only (no Flask, no database), so worker processes can run it and the
web process, the CLI and the benchmarks share one definition of "the same picture".

Choices, with reasons:
- **One fixed background: white** (``BACKGROUND``). Sticker art is mostly transparent and the RGB
  under transparent pixels is arbitrary, so alpha is composited before perceptual hashing. White is
  what editors and converters put behind a transparent image when they flatten it (e.g. "save as
  JPEG"), so a transparent sticker and its flattened JPEG copy hash alike.
- **Pixel hash of premultiplied RGBA.** Two files show the same picture when their premultiplied
  pixels agree; this ignores the invisible colour under alpha = 0 (lossless WebP rewrites it), and
  treats an opaque RGBA image, an RGB image and a greyscale image of the same pixels as equal.
  The hash is xxh3-128 (``xxhash``), not sha256: 1 µs instead of 41 µs for a 128 px sticker's
  64 KiB of pixels, 0.02 ms instead of 0.7 ms for a 512 px one. Unlike sha256 its collisions can be
  made on purpose; the worst such a pair can do is be proposed as duplicates in the review, where a
  person decides. Files keep sha256: it names them in the store.
- **Signed 64-bit storage.** SQLite integers are signed 64-bit, so hashes are stored as int64
  (``to_signed64``) and reinterpreted as uint64 (``to_unsigned64``) for Hamming distances.
- **Reduced-size decoding.** Perceptual hashes and the thumbnail only need ~64 px, so JPEGs are
  decoded at 1/2..1/8 scale by the decoder itself (``reduced_decode``: DCT scaling, every byte of
  the file is still entropy-decoded, so a truncated file is still caught) and other formats are
  box-reduced after decoding, premultiplied (the pixel hash's premultiplied copy is reused) and
  then composited. This, PNGs decoded by Wuffs (``curator.imports.decoding``), hashes computed with numpy on
  tiny grids and, in ``fingerprint_many``, forked worker processes are where the speed over
  ``imagehash.phash(Image.open(p))`` comes from.
- **Pixel hash only from a full decode.** A JPEG decoded at reduced size has no exact pixels, so
  its ``pixel_hash`` is None; ``pixel_hash_of_bytes`` computes it on demand (the duplicate search
  does, for near-duplicate candidates of equal size: only those can be the same pixels).
- **Content, not canvas** (fingerprint versions 2 to 5). A plain margin (an added border, or the empty field around a
  small glyph) is trimmed before hashing (``content_box``): a uniform colour, then the white field inside it, are
  removed from the outside of the picture over the background, so a copy with a white, black or coloured border of a
  few percent and the picture without it give the same hashes and thumbnail, and a small glyph on a wide field is
  compared by its glyph, not by its mostly identical background (a content that is small in the reduced work image is
  cut from the full-resolution picture, so it keeps its detail). The stored fingerprint is the thumbnail followed by
  the content's size in the file's pixels and the version (``FINGERPRINT_BYTES``; the confirm stage matches
  renditions of different detail at the smaller one's resolution). Version 3 trims a border that smoothing blended
  over two lines into the field inside it (a thin border enlarged, then reduced: ``BLEND_LINES``), and a lone pixel
  that differs from a margin (JPEG ringing) no longer stretches the content's box to the edge. Version 5 skips such
  lines only after a coloured margin, and only lines of one even colour near the two margins' (version 4
  also peeled a grey outline inside the white background, and a wordmark's edge inside an added border). Older
  fingerprints (version 1: the bare 12,288-byte thumbnail of the canvas; version 2: no version byte; versions 3 and
  4: a shorter version field) are recognised by their length and recomputed from the stored file when a search needs
  them (curator.dedup.service).
- **pHash / dHash are imagehash's algorithms** (same resampling, same DCT, same bit order; a test
  checks bit equality with ``imagehash``), computed without its per-call string conversions.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np
import scipy.fft
import xxhash
from PIL import Image, ImageOps

from curator.imports.decoding import load_pixels
from curator.imports.forking import forking_is_safe, map_in_forks
from curator.imports.validation import has_alpha_channel as has_alpha  # one definition of "has transparency"
from curator.imports.validation import reduced_decode

__all__ = [
    "BACKGROUND",
    "THUMB_SIDE",
    "THUMB_BYTES",
    "ImageFingerprint",
    "FingerprintError",
    "sha256_bytes",
    "to_signed64",
    "to_unsigned64",
    "has_alpha",
    "normalise_mode",
    "composite_for_hashing",
    "pixel_hash",
    "pixel_hash_of_bytes",
    "perceptual_hashes",
    "work_image",
    "thumb_array",
    "content_box",
    "content_size",
    "restamped",
    "FINGERPRINT_BYTES",
    "FINGERPRINT_VERSION",
    "STORED_LENGTHS",
    "fingerprint_image",
    "fingerprint_bytes",
    "fingerprint_file",
    "fingerprint_many",
]

# white: what flattening tools put behind transparency (_over_background's arithmetic assumes it)
BACKGROUND = (255, 255, 255)
HASH_WORK_SIDE = 64  # decoded images are box-reduced until their shorter side is just above this
THUMB_SIDE = 64  # confirm-stage thumbnail: THUMB_SIDE x THUMB_SIDE RGB, uint8, row-major (12 KiB)
THUMB_BYTES = THUMB_SIDE * THUMB_SIDE * 3
# fingerprint version 5 (of the trimmed content): the thumbnail, then the content's width and height (two uint16) and
# the version (uint32; little-endian). Version 4 (the version a uint16) skipped lines after the white background too,
# and any line "blending" two margins that was near their midway colour (see ``_blends``): a grey outline between
# white and a near-white fill, or a wordmark's edge inside a red border, was cut away. Version 3 ended in a one-byte
# version, cut a margin on the work image only, keeping its last line where the reduction blends it with the content
# (see ``_content``), and cut a picture's own plain sky or wall as if it were a border (see ``content_box``); version
# 2 had no version byte and a trim that kept a border blended over two lines; version 1 was the bare thumbnail of the
# whole canvas (THUMB_BYTES).
# Each version has its own length, so older ones are recognised without reading the blob (SQLite keeps a blob's length
# in the record header) and recomputed from the stored file (curator.dedup.service).
FINGERPRINT_VERSION = 5
FINGERPRINT_BYTES = THUMB_BYTES + 8
STORED_LENGTHS = (THUMB_BYTES, THUMB_BYTES + 4, THUMB_BYTES + 5, THUMB_BYTES + 6, FINGERPRINT_BYTES)  # versions 1-5
MARGIN_TOLERANCE = 40  # grey levels (any channel) within which a pixel is still the margin's colour (JPEG-proof)
MARGIN_UNIFORM = 0.9  # share of a side's outer line that must be the margin's colour; two sides make a margin
BLEND_LINES = 2  # lines between two margins that may blend them (a border enlarged with smoothing, then reduced)
MARGIN_LAYERS = 3  # e.g. an added black border, a line blending it (resampling), the picture's own white field
GLYPH_SHARE = 0.85  # content under this share of the work image's side (and under 64 px there) is a glyph on a field
MARGIN_SIDE = 192  # a margin found on the work image is cut on the picture reduced only to this (shorter side;
# a large JPEG is decoded at >= 192 px, see reduced_decode): its last blended line is a third of the work image's
_MASK64 = (1 << 64) - 1


class FingerprintError(ValueError):
    """A file that cannot be decoded as an image; ``path`` says which, ``reason`` why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # picklable (benchmarks fingerprint in worker processes)
        return (FingerprintError, (self.path, self.reason))


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of the file's bytes: exact duplicates."""
    return hashlib.sha256(data).hexdigest()


def to_signed64(value: int) -> int:
    """Reinterpret an unsigned 64-bit hash as a signed int64 (what SQLite stores)."""
    value = int(value)
    if not 0 <= value <= _MASK64:
        raise ValueError(f"not an unsigned 64-bit value: {value}")
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned64(value: int) -> int:
    """Inverse of ``to_signed64``."""
    value = int(value)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"not a signed 64-bit value: {value}")
    return value & _MASK64


def normalise_mode(img: Image.Image) -> Image.Image:
    """The first frame as 8-bit RGBA (if it has transparency) or RGB.

    16-bit and float greyscale are scaled to 8 bits rather than clipped; palettes with a transparent
    index and colour keys become real alpha.
    """
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 257.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 1.0
        img = Image.fromarray(np.clip(arr / scale + 0.5, 0, 255).astype(np.uint8), "L")
        mode = "L"
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        if arr.size and arr.max() <= 1.0:
            arr = arr * 255.0
        img = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "L")
        mode = "L"
    if has_alpha(img):
        return img if mode == "RGBA" else img.convert("RGBA")
    return img if mode == "RGB" else img.convert("RGB")


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # broken EXIF must not make a readable picture unreadable
        return 1


def _oriented(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag so the hash describes the picture as displayed."""
    return ImageOps.exif_transpose(img) if _orientation(img) != 1 else img


def composite_for_hashing(img: Image.Image) -> Image.Image:
    """RGB picture as it looks over ``BACKGROUND`` (opaque images are only converted to RGB)."""
    img = normalise_mode(img)
    return _over_background(img.convert("RGBa")) if img.mode == "RGBA" else img


def _over_background(premultiplied: Image.Image) -> Image.Image:
    """An RGBa (premultiplied) picture over the white ``BACKGROUND``: colour + 255 x (1 - alpha), exactly.

    Each pixel as one little-endian uint32 (R, G, B, a): adding (255 - a) to the three colour bytes at once cannot
    carry, since a premultiplied colour never exceeds its alpha (4x faster than numpy on the strided channels).
    """
    pixels = np.frombuffer(premultiplied.tobytes(), "<u4")
    flat = pixels + (255 - (pixels >> 24)) * np.uint32(0x010101)
    return Image.frombytes("RGB", premultiplied.size, flat.tobytes(), "raw", "RGBX")


def pixel_hash(img: Image.Image) -> str:
    """xxh3-128 over size + premultiplied pixels: the same picture in another encoding hashes equal."""
    img = normalise_mode(img)
    return _pixel_hash(img, _premultiplied(img))


def _premultiplied(img: Image.Image) -> Image.Image | None:
    """RGBa of a normalised RGBA image (None for RGB): the pixel hash and the work image share this conversion."""
    return img.convert("RGBa") if img.mode == "RGBA" else None


def _pixel_hash(img: Image.Image, premultiplied: Image.Image | None) -> str:
    h = xxhash.xxh3_128()
    if premultiplied is not None and premultiplied.getchannel(3).getextrema()[0] < 255:
        h.update(f"RGBa {img.width}x{img.height}\n".encode())
        h.update(premultiplied.tobytes())
    else:  # opaque: the same picture as the RGB image
        h.update(f"RGB {img.width}x{img.height}\n".encode())
        h.update((img if img.mode == "RGB" else img.convert("RGB")).tobytes())
    return h.hexdigest()


def pixel_hash_of_bytes(data: bytes) -> str:
    """Pixel hash from a full decode of a file's bytes (for files fingerprinted at reduced size)."""
    with Image.open(io.BytesIO(data)) as img:
        return pixel_hash(_oriented(load_pixels(img, data)))


def work_image(img: Image.Image) -> Image.Image:
    """Composited RGB picture, box-reduced so the shorter side stays >= HASH_WORK_SIDE (cheap to hash)."""
    img = normalise_mode(img)
    return _work_image(img, _premultiplied(img))


def _work_image(img: Image.Image, premultiplied: Image.Image | None, side: int = HASH_WORK_SIDE) -> Image.Image:
    """Reduced premultiplied, so transparent colour does not bleed in, then composited over the background (shorter
    side kept >= ``side``)."""
    picture = img if premultiplied is None else premultiplied
    factor = min(img.width, img.height) // side
    if factor >= 2:
        picture = picture.reduce(factor)
    return picture if premultiplied is None else _over_background(picture)


def perceptual_hashes(img: Image.Image) -> dict[str, int]:
    """imagehash pHash and dHash of the picture's content over the fixed background, as signed int64.

    Same pipeline as ``fingerprint_image`` (reduced work image, margins trimmed; pHash on the 32x32 grid), so hashes
    from either agree exactly.
    """
    img = normalise_mode(img)
    phash, dhash, _ = _hashes_and_thumb(_content(img, _premultiplied(img))[0])
    return {"phash": phash, "dhash": dhash}


def content_box(pixels: np.ndarray, tolerance: int = MARGIN_TOLERANCE, uniform: float = MARGIN_UNIFORM,
                layers: int = MARGIN_LAYERS) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the content of an (H, W, 3) picture: up to ``layers`` plain margins removed.

    A margin is the median colour of the outer ring of what is left, when it holds at least ``uniform`` of the outer
    line of two sides or more (a picture may touch the other two); everything outside the bounding box of the pixels
    that differ from it by more than ``tolerance`` is trimmed. The first margin may be any colour: a white one (the
    background a transparent picture is composited on) is cut to the content however uneven; a coloured one is an
    added border and is cut equally on every side (``_border_width``), so a wallpaper's own sky or wall stays, as it
    must once a border has been added around it. After it only the white background (the field inside an added
    border) and a line blending two margins are removed, so a drawn outline is never peeled off. A photo whose edges
    are not one colour keeps its canvas, and so does a blank picture (nothing would be left).
    """
    h, w = pixels.shape[:2]
    left, top, right, bottom = 0, 0, w, h
    previous = None

    for _ in range(layers):
        # only an added border (a coloured margin) may be blended into what follows, by resampling the picture with
        # it: the white background a transparent picture is composited on is cut to the content and blends nothing
        blended = previous is not None and _coloured(previous, tolerance)
        for inset in range(BLEND_LINES + 1) if blended else (0,):
            sub = pixels[top + inset:bottom - inset, left + inset:right - inset].astype(np.int16)
            if sub.shape[0] < 3 or sub.shape[1] < 3:
                return left, top, right, bottom
            ring = np.concatenate([sub[0], sub[-1], sub[1:-1, 0], sub[1:-1, -1]])
            colour = np.median(ring, axis=0)
            if _plain(sub, colour, tolerance, uniform) and (previous is None or not _coloured(colour, tolerance)):
                # skipping lines is only right when they blend the previous margin into this one (resampling)
                if all(_blends(pixels[top + k:bottom - k, left + k:right - k].astype(np.int16), previous, colour,
                               tolerance, uniform) for k in range(inset)):
                    break
        else:
            break
        left, top, right, bottom = left + inset, top + inset, right - inset, bottom - inset
        previous = colour
        differs = (np.abs(sub - colour) > tolerance).any(axis=2)
        differs[[0, 0, -1, -1], [0, -1, 0, -1]] = False  # a corner blends two margins' lines
        differs = _without_specks(differs)
        rows, cols = np.flatnonzero(differs.any(axis=1)), np.flatnonzero(differs.any(axis=0))
        if rows.size == 0:
            break
        box = (left + int(cols[0]), top + int(rows[0]), left + int(cols[-1]) + 1, top + int(rows[-1]) + 1)
        if _coloured(colour, tolerance):  # an added border, as thick on every side
            cuts = (box[0] - left, box[1] - top, right - box[2], bottom - box[3])
            t = _border_width(sub, colour, tolerance, uniform, sorted(cuts))
            cuts = [max(t, min(cut, t + 1)) for cut in cuts]  # a resampled border's edge may move by a line
            box = (left + cuts[0], top + cuts[1], right - cuts[2], bottom - cuts[3])
        if box == (left, top, right, bottom):
            break
        left, top, right, bottom = box
    return left, top, right, bottom


def _coloured(colour: np.ndarray, tolerance: float) -> bool:
    """A margin colour that is not the white background (within ``tolerance``): an added border."""
    return bool(colour.min() < 255 - tolerance)


def _plain(sub: np.ndarray, colour: np.ndarray, slack: float, uniform: float) -> bool:
    """True when the outer line of two sides or more of ``sub`` is ``colour`` (within ``slack``, any channel) on
    ``uniform`` of its pixels: a margin (a picture may touch the other two sides)."""
    sides = (sub[0], sub[-1], sub[:, 0], sub[:, -1])
    return sum((np.abs(side - colour).max(axis=1) <= slack).mean() >= uniform for side in sides) >= 2


def _even(line: np.ndarray, slack: float, uniform: float) -> bool:
    """True when ``uniform`` of ``line``'s pixels are within ``slack`` (any channel) of its median colour."""
    return bool((np.abs(line - np.median(line, axis=0)).max(axis=1) <= slack).mean() >= uniform)


def _blends(sub: np.ndarray, first: np.ndarray, second: np.ndarray, slack: float, uniform: float) -> bool:
    """True when the outer lines of ``sub`` blend the margin colours ``first`` and ``second`` (an added border
    resampled with the picture, or its last line darkened by JPEG's ringing): within half their distance plus
    ``slack`` of the colour midway (``_plain``), and one even colour along two sides or more (``_even``). Without
    the second test a wordmark whose purple ink touches its edges passed as a blend of a red border and white, and
    lost a line on every side. (Asking the colour to lie between the two margins' too lost the ringing line: 408 of
    2,196 bordered JPEG copies of the tuning part's pictures were then cut wrong, against 34.)"""
    sides = (sub[0], sub[-1], sub[:, 0], sub[:, -1])
    return (_plain(sub, (first + second) / 2, np.abs(first - second).max() / 2 + slack, uniform)
            and sum(_even(side, slack, uniform) for side in sides) >= 2)


def _border_width(sub: np.ndarray, colour: np.ndarray, slack: float, uniform: float, cuts: list[int]) -> int:
    """How many lines of ``sub`` a coloured margin of ``colour`` takes on every side: the fewest outer lines of any
    side that hold the colour on ``uniform`` of their pixels, and no more than the content box leaves on its second
    thinnest side (``cuts``, sorted) beyond BLEND_LINES. An added border is equally thick all round, while a picture's
    own sky or wall, plain along one or two sides, is no border (cut in the original, it would not be once a border
    is added around it); JPEG's ringing may break a thin border's colour on a side or two, and a star field or a snowy
    field holds its colour on most of every line but not over its whole width."""
    sides = (sub, sub[::-1], sub.transpose(1, 0, 2), sub.transpose(1, 0, 2)[::-1])
    depth = min(_plain_depth(lines[: len(lines) // 2], colour, slack, uniform) for lines in sides)
    return min(depth, max(cuts[1], BLEND_LINES))


def _plain_depth(lines: np.ndarray, colour: np.ndarray, slack: float, uniform: float) -> int:
    """How many of ``lines`` (outermost first) hold ``colour`` on ``uniform`` of their pixels."""
    for k, line in enumerate(lines):
        if (np.abs(line - colour).max(axis=1) <= slack).mean() < uniform:
            return k
    return len(lines)


def _without_specks(mask: np.ndarray) -> np.ndarray:
    """``mask`` without its isolated pixels (none of the four neighbours set): a JPEG block's ringing or a speck of
    noise in a margin must not stretch the content's box to the picture's edge, while a line, however thin, keeps
    every pixel (each has a neighbour along it)."""
    near = np.zeros_like(mask)
    near[1:] |= mask[:-1]
    near[:-1] |= mask[1:]
    near[:, 1:] |= mask[:, :-1]
    near[:, :-1] |= mask[:, 1:]
    return mask & near


def _content(img: Image.Image, premultiplied: Image.Image | None) -> tuple[Image.Image, float]:
    """The picture's content over the background (``content_box``), and how many of ``img``'s pixels one of its
    pixels spans. Found on the reduced work image; when the content is small there and well inside its canvas (a
    glyph on a wide field: under HASH_WORK_SIDE and under GLYPH_SHARE of the work image's side), it is cut from
    ``img`` itself, so a 16 px glyph keeps its 16 px of detail instead of the few the work image has.

    Otherwise (a 400-800 px photo with a border is under 64 px there too) a margin found there is cut again on the
    picture reduced only to MARGIN_SIDE, never less than the work image cut (a JPEG's ringing can widen the box at
    the finer scale), and one line further on each side it was found where a reduction or a coloured border blends
    a line of margin into the content (not a sticker's own edge on white at full size): on the work image the
    margin's last line is blended with the content (a photo's border under a box filter of 8 px or more) and was
    kept. Chosen on the benchmark's tuning part, its fourth and fifth untouched parts and its wallpapers
    (bench/dedup_quality.py), with the even border cut of ``content_box``."""
    work = _work_image(img, premultiplied)
    box = content_box(np.asarray(work))
    if box == (0, 0, work.width, work.height):
        return work, img.width / work.width
    factor = img.width / work.width
    side = min(box[2] - box[0], box[3] - box[1])
    glyph = factor > 1 and side < HASH_WORK_SIDE and side < GLYPH_SHARE * min(work.size)
    if glyph:
        wide = (int(box[0] * factor), int(box[1] * factor),  # the work image's box holds its blended edge pixels
                min(img.width, int(np.ceil(box[2] * factor))), min(img.height, int(np.ceil(box[3] * factor))))
        return _content(img.crop(wide), None if premultiplied is None else premultiplied.crop(wide))
    fine = _work_image(img, premultiplied, MARGIN_SIDE) if factor > 1 else work
    if fine.width > work.width:
        pixels = np.asarray(fine)
        ring = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        blend = int(fine.width < img.width or np.median(ring, axis=0).min() < 255 - MARGIN_TOLERANCE)
        left, top, right, bottom = _finer_box(content_box(pixels), box, fine.size,
                                              (fine.width / work.width, fine.height / work.height), blend)
        if right > left and bottom > top:
            cut = fine.crop((left, top, right, bottom))
            reduce = min(cut.width, cut.height) // HASH_WORK_SIDE
            content = cut.reduce(reduce) if reduce >= 2 else cut  # composited: the same as reducing premultiplied
            return content, img.width / fine.width * cut.width / content.width
    return work.crop(box), factor


def _finer_box(fine: tuple, work: tuple, size: tuple[int, int], scale: tuple[float, float],
               blend: int = 1) -> tuple[int, ...]:
    """The content box found on the finer picture (of ``size``), ``blend`` lines further in on each side where it
    cut a margin, and never wider than the work image's box (``work``, ``scale`` times smaller): at the finer scale a
    JPEG's ringing can keep a line of the margin."""
    out = []
    for k, (edge, coarse) in enumerate(zip(fine, work)):
        coarse *= scale[k % 2]
        if k < 2:
            out.append(max(edge + blend * (edge > 0), int(coarse)))
        else:
            out.append(min(edge - blend * (edge < size[k % 2]), int(np.ceil(coarse))))
    return tuple(out)


def _hashes_and_thumb(content: Image.Image) -> tuple[int, int, bytes]:
    """pHash, dHash and the confirm thumbnail of the picture's content (``_content``).

    The thumbnail is THUMB_SIDE x THUMB_SIDE RGB of the content over the background, squashed to a square, so every
    picture is sampled on the same grid and two thumbnails align pixel for pixel (curator.dedup.matching compares
    them with small shifts and scales to tolerate crops)."""
    thumb_img = content.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    # pHash resamples to 32x32 first; starting from the 64 px thumbnail instead of the work image is cheaper
    return phash_of(thumb_img), dhash_of(content), thumb_img.tobytes()


def content_size(fingerprint: bytes | None) -> tuple[int, int] | None:
    """The content's (width, height) in the file's pixels from a stored fingerprint; None for a version-1 one (or
    anything that is not a fingerprint)."""
    if fingerprint is None or len(fingerprint) not in STORED_LENGTHS[1:]:
        return None
    w, h = np.frombuffer(fingerprint, "<u2", 2, THUMB_BYTES)
    return int(w), int(h)


def restamped(fingerprint: bytes, canvas: tuple[int, int]) -> bytes:
    """An older fingerprint in the current layout, its thumbnail and content size kept (version 1 had no size: the
    canvas's), for a picture whose file cannot be read any more: it is compared as before and no longer counted as
    waiting for a recompute (``curator.dedup.service.refresh_fingerprints``)."""
    if len(fingerprint) not in STORED_LENGTHS:
        raise ValueError(f"fingerprint has {len(fingerprint)} bytes, expected one of {STORED_LENGTHS}")
    width, height = content_size(fingerprint) or canvas
    return (fingerprint[:THUMB_BYTES] + np.array([min(width, 65535), min(height, 65535)], "<u2").tobytes()
            + np.array([FINGERPRINT_VERSION], "<u4").tobytes())


def phash_of(img: Image.Image) -> int:
    """imagehash.phash (hash_size 8): greyscale 32x32 Lanczos, 2-D DCT-II, 8x8 low frequencies > median."""
    grey = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.LANCZOS))
    low = scipy.fft.dctn(grey, axes=(0, 1))[:8, :8]  # imagehash's two pocketfft passes, axis 0 then axis 1
    ordered = np.sort(low, axis=None)
    return _bits_to_signed64(low > (ordered[31] + ordered[32]) / 2)  # np.median's value, without its overhead


def dhash_of(img: Image.Image) -> int:
    """imagehash.dhash (hash_size 8): greyscale 9x8 Lanczos, is each pixel brighter than its left neighbour."""
    grey = np.asarray(img.convert("L").resize((9, 8), Image.Resampling.LANCZOS))
    return _bits_to_signed64(grey[:, 1:] > grey[:, :-1])


def _bits_to_signed64(bits: np.ndarray) -> int:
    """Row-major bits, first bit most significant (imagehash's hex order), as signed int64."""
    return to_signed64(int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big"))


def thumb_array(thumb: bytes) -> np.ndarray:
    """Confirm thumbnail (or a whole fingerprint) as a float32 (THUMB_SIDE, THUMB_SIDE, 3) array in 0..255."""
    if len(thumb) not in STORED_LENGTHS:
        raise ValueError(f"thumbnail has {len(thumb)} bytes, expected one of {STORED_LENGTHS}")
    arr = np.frombuffer(thumb, dtype=np.uint8, count=THUMB_BYTES)
    return arr.reshape(THUMB_SIDE, THUMB_SIDE, 3).astype(np.float32)


@dataclass(frozen=True)
class ImageFingerprint:
    """Everything dedup needs about one image; hashes are signed int64 as stored in SQLite."""

    sha256: str
    pixel_hash: str | None  # None when the file was decoded at reduced size (see reduced_decode)
    phash: int
    dhash: int
    width: int
    height: int
    has_alpha: bool
    thumb: bytes  # the stored fingerprint: confirm thumbnail + content size (FINGERPRINT_BYTES)
    file_size: int | None = None
    format: str | None = None

    @property
    def phash_signed(self) -> int:
        return self.phash

    @property
    def dhash_signed(self) -> int:
        return self.dhash

    @property
    def phash_u64(self) -> int:
        return to_unsigned64(self.phash)

    @property
    def dhash_u64(self) -> int:
        return to_unsigned64(self.dhash)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["thumb"] = self.thumb.hex()
        return d


def fingerprint_image(img: Image.Image, data: bytes | None = None, *,
                      full_size: tuple[int, int] | None = None) -> ImageFingerprint:
    """Fingerprint a loaded image; ``data`` (the file's bytes) gives the sha256 and size.

    ``full_size`` is the file's size in pixels when ``img`` was decoded at reduced size (see
    ``reduced_decode``): the fingerprint then carries that size and no pixel hash.
    """
    fmt = img.format
    full = full_size is None or tuple(full_size) == img.size
    if not full and _orientation(img) in (5, 6, 7, 8):  # turned by a quarter: the displayed size swaps
        full_size = (full_size[1], full_size[0])
    img = _oriented(img)
    alpha = has_alpha(img)
    img = normalise_mode(img)
    premultiplied = _premultiplied(img)
    content, span = _content(img, premultiplied)
    phash, dhash, thumb = _hashes_and_thumb(content)
    width, height = (img.width, img.height) if full else full_size
    scale = span * width / img.width  # content size in the file's pixels (img may be a reduced decode)
    thumb += np.array([min(round(content.width * scale), 65535), min(round(content.height * scale), 65535)],
                      "<u2").tobytes() + np.array([FINGERPRINT_VERSION], "<u4").tobytes()
    return ImageFingerprint(
        sha256=sha256_bytes(data) if data is not None else "",
        pixel_hash=_pixel_hash(img, premultiplied) if full else None,
        phash=phash,
        dhash=dhash,
        width=width,
        height=height,
        has_alpha=alpha,
        thumb=thumb,
        file_size=len(data) if data is not None else None,
        format=fmt,
    )


def fingerprint_bytes(data: bytes, name: str = "<bytes>") -> ImageFingerprint:
    """Fingerprint a file's bytes; raises FingerprintError if they are not a decodable image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            size = img.size
            reduced_decode(img)
            return fingerprint_image(load_pixels(img, data), data=data, full_size=size)
    except FingerprintError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise FingerprintError(name, f"not a readable image ({type(exc).__name__}: {exc})") from exc


def fingerprint_file(path: str | os.PathLike) -> ImageFingerprint:
    """Fingerprint one file (bytes read once: sha256 and decoding share them)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FingerprintError(path, f"cannot read ({exc.strerror or exc})") from exc
    return fingerprint_bytes(data, name=path)


def _fingerprint_or_error(path: str):
    try:
        return fingerprint_file(path)
    except FingerprintError as exc:
        return exc


def fingerprint_many(paths: Iterable[str | os.PathLike], workers: int = 2, *, on_error: str = "raise",
                     progress=None) -> list:
    """Fingerprints in input order, on ``workers`` forked processes (both cores by default) where this process may
    fork (a single-threaded one, see curator.imports.forking), else here.

    ``on_error="raise"`` raises the first FingerprintError; ``"return"`` puts the FingerprintError in
    that file's slot so one bad file loses nothing else. ``progress`` (e.g. a tqdm bar) gets
    ``update(1)`` per file.
    """
    if on_error not in ("raise", "return"):
        raise ValueError("on_error must be 'raise' or 'return'")
    paths = [os.fspath(p) for p in paths]
    if workers > 1 and len(paths) >= 2 * workers and forking_is_safe():
        computed = map_in_forks(_fingerprint_or_error, paths, workers, task_size=16)
    else:
        computed = map(_fingerprint_or_error, paths)
    results = []
    for r in computed:
        results.append(r)
        if progress is not None:
            progress.update(1)
    if on_error == "raise":
        for r in results:
            if isinstance(r, FingerprintError):
                raise r
    return results
