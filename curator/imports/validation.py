"""Decide whether a file's bytes are an image we accept, and say clearly why not.

The file's content decides, never its name: a PNG named .jpg is fine, an HTML page named .jpg is not.
Pixel counts are checked before decoding, so a decompression bomb is refused without allocating it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field

from PIL import Image as PILImage

from curator.imports.decoding import load_pixels

ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
REDUCED_DECODE_SIDE = 192  # JPEG DCT scaling stops before either side drops below this (gallery thumbnails need it)
PILImage.LOAD_TRUNCATED_IMAGES = False
# Our own pixel limit (Limits.max_pixels) is checked right after the header is read and before anything is decoded,
# and it can name the dimensions; Pillow's global bomb check would refuse first with a vaguer message.
PILImage.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class Limits:
    """Plain data; the app passes its configured values in."""
    max_file_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 8
    max_zip_entries: int = 50_000

    @classmethod
    def from_config(cls, config) -> "Limits":
        """The limits an app (or the command line) is configured with: MAX_FILE_BYTES and MAX_PIXELS."""
        return cls(max_file_bytes=config["MAX_FILE_BYTES"], max_pixels=config["MAX_PIXELS"])


class Rejected(Exception):
    """A file we refuse, with a reason a person can act on."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class ValidImage:
    image: PILImage.Image  # decoded (first frame for animations), possibly at reduced size (see reduced_decode)
    format: str
    width: int  # of the file, whatever size it was decoded at
    height: int
    has_alpha: bool
    notes: list[str] = field(default_factory=list)

    @property
    def full_size(self) -> tuple[int, int]:
        return self.width, self.height


def reduced_decode(img: PILImage.Image, side: int = REDUCED_DECODE_SIDE) -> None:
    """Before ``load()``: let the decoder produce a smaller picture where the format can (JPEG DCT scaling to 1/2,
    1/4 or 1/8, both sides staying >= ``side``). Every byte is still entropy-decoded, so a truncated or corrupt file
    fails as it would at full size; ``img.size`` then tells the size it will be decoded at."""
    if img.format == "JPEG":
        img.draft(img.mode, (side, side))


SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG", b"GIF8": "GIF", b"BM": "BMP",
              b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


def _describe_non_image(data: bytes) -> str:
    for signature, name in SIGNATURES.items():
        if data.startswith(signature):
            return f"corrupt {name}: it starts like one, but its header cannot be read"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "corrupt WEBP: it starts like one, but its header cannot be read"
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<?xml") or b"<svg" in head:
        return "SVG is a vector format, not a raster image: export it to PNG first"
    if head.startswith(b"<!doctype html") or head.startswith(b"<html") or b"<body" in head:
        return "HTML page, not an image"
    if head.startswith(b"pk\x03\x04"):
        return "a zip archive inside an archive or upload: import the archive itself"
    try:
        data[:512].decode("utf-8")
        return "text file, not an image"
    except UnicodeDecodeError:
        return f"not a recognised image (accepted: {', '.join(ACCEPTED_FORMATS)})"


def has_alpha_channel(img: PILImage.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def validate_image_bytes(data: bytes, limits: Limits = Limits(), *, reduced: bool = False) -> ValidImage:
    """Return the decoded image or raise Rejected with the reason.

    ``reduced=True`` decodes JPEGs at reduced size (``reduced_decode``) when all the caller needs is a thumbnail and
    fingerprints: the check is as strict, and several times cheaper for photos.
    """
    if not data:
        raise Rejected("empty file (0 bytes)")
    if len(data) > limits.max_file_bytes:
        raise Rejected(f"file too large: {len(data) / 2**20:.1f} MiB exceeds the {limits.max_file_bytes / 2**20:.0f} MiB limit")
    try:
        img = PILImage.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except PILImage.UnidentifiedImageError:
        raise Rejected(_describe_non_image(data)) from None
    except Exception as exc:  # a broken header can raise almost anything inside a plugin
        raise Rejected(f"corrupt image header: {exc}") from None
    width, height = img.size
    if width * height > limits.max_pixels:
        raise Rejected(f"image too large: {width}×{height} = {width * height / 1e6:.0f} megapixels exceeds "
                       f"the {limits.max_pixels / 1e6:.0f} megapixel limit")
    if min(width, height) < limits.min_side:
        raise Rejected(f"image too small: {width}×{height} (at least {limits.min_side} px per side)")
    fmt = img.format
    notes = []
    if getattr(img, "n_frames", 1) > 1:
        notes.append(f"animated ({img.n_frames} frames): the first frame is used")
    try:
        if reduced:
            reduced_decode(img)
        img = load_pixels(img, data)
    except Exception as exc:
        raise Rejected(f"truncated or corrupt image data ({fmt}): {exc}") from None
    return ValidImage(image=img, format=fmt, width=width, height=height, has_alpha=has_alpha_channel(img),
                      notes=notes)
