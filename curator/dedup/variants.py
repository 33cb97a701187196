"""The edits that leave "the same picture": what this project means by a near duplicate, written down as code.

A copy made by any '+'-joined recipe of these steps should be found by the duplicate search: resized,
JPEG-recompressed (flattened on white, as editors do), format changed (WebP lossy, GIF palette, lossless WebP),
cropped 2-5 %, brightness +-10 % (of the picture over a kept background, or of the whole picture flattened on
white, background included), a plain margin of 2-6 % of its size added (white, black, grey or a colour), and
combinations. The tests and bench/dedup_quality.py build their copies with it.
"""
from __future__ import annotations

import io
import random

from PIL import Image, ImageEnhance

WHITE = (255, 255, 255)


def _flatten(img: Image.Image, bg=WHITE) -> Image.Image:
    img = img.convert("RGBA")
    base = Image.new("RGBA", img.size, bg + (255,))
    base.alpha_composite(img)
    return base.convert("RGB")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _crop(img: Image.Image, rng: random.Random, lo=0.02, hi=0.05) -> Image.Image:
    """Remove lo..hi of the width and of the height, split at random between the two sides."""
    w, h = img.size
    fx, fy = rng.uniform(lo, hi), rng.uniform(lo, hi)
    sx, sy = rng.random(), rng.random()
    left, top = round(w * fx * sx), round(h * fy * sy)
    right, bottom = w - round(w * fx * (1 - sx)), h - round(h * fy * (1 - sy))
    return img.crop((left, top, right, bottom))


def _brightness(img: Image.Image, factor: float) -> Image.Image:
    if img.mode == "RGBA":
        rgb, a = img.convert("RGB"), img.getchannel("A")
        out = ImageEnhance.Brightness(rgb).enhance(factor).convert("RGBA")
        out.putalpha(a)
        return out
    return ImageEnhance.Brightness(img).enhance(factor)


BORDER_COLOURS = [(255, 255, 255), (0, 0, 0), (128, 128, 128), (38, 110, 190), (230, 60, 60)]


def _border(img: Image.Image, rng: random.Random, lo=0.02, hi=0.06) -> tuple[Image.Image, str]:
    """A plain opaque margin of lo..hi of the picture's size on every side, as an editor's "canvas size" adds it."""
    colour = rng.choice(BORDER_COLOURS)
    frac = rng.uniform(lo, hi)
    m = max(1, round(frac * max(img.size)))
    out = Image.new("RGBA", (img.width + 2 * m, img.height + 2 * m), colour + (255,))
    out.paste(img, (m, m))  # the picture's own transparency stays (only the new margin is opaque)
    return out, f"border{m}px#{'%02x%02x%02x' % colour}"


def transform(img: Image.Image, recipe: str, rng: random.Random) -> tuple[bytes, str]:
    """Apply a '+'-joined recipe of steps to an RGBA image; return encoded bytes and the exact recipe."""
    img = img.convert("RGBA")
    done = []
    fmt = ("PNG", {})
    for step in recipe.split("+"):
        if step == "resize":
            side = rng.choice([64, 96, 160, 200, 256])
            img = img.resize((side, round(side * img.height / img.width)), Image.Resampling.LANCZOS)
            done.append(f"resize{side}")
        elif step == "crop":
            img = _crop(img, rng)
            done.append(f"crop{img.width}x{img.height}")
        elif step == "flatten":  # opaque on white, as an editor does before brightening a whole picture
            img = _flatten(img).convert("RGBA")
            done.append("flatten")
        elif step == "bright":
            f = rng.choice([0.9, 0.93, 1.07, 1.1])
            img = _brightness(img, f)
            done.append(f"bright{f}")
        elif step == "border":
            img, what = _border(img, rng)
            done.append(what)
        elif step == "jpeg":
            q = rng.choice([60, 75, 85, 95])
            fmt = ("JPEG", {"quality": q})
            done.append(f"jpeg{q}")
        elif step == "webp":
            q = rng.choice([70, 85])
            fmt = ("WEBP", {"quality": q})
            done.append(f"webp{q}")
        elif step == "webpll":
            fmt = ("WEBP", {"lossless": True})
            done.append("webp-lossless")
        elif step == "gif":
            fmt = ("GIF", {})
            done.append("gif")
        else:
            raise ValueError(f"unknown step {step!r}")
    name, kw = fmt
    if name == "JPEG":
        out = _flatten(img)
    elif name == "GIF":
        out = img.convert("RGBA")
        alpha = out.getchannel("A").point(lambda v: 255 if v >= 128 else 0)
        pal = _flatten(out).quantize(255)
        pal.paste(255, mask=alpha.point(lambda v: 255 - v))
        kw = {"transparency": 255}
        out = pal
    else:
        out = img
    return _encode(out, name, **kw), "+".join(done)


RECIPES = [
    "resize", "jpeg", "webp", "webpll", "gif", "crop", "bright",
    "resize+jpeg", "crop+resize", "bright+jpeg", "crop+jpeg", "crop+bright+webp", "resize+bright+jpeg",
    "flatten+bright", "flatten+crop+bright+jpeg",  # brightness of the whole picture: the white background too
    "border", "border+jpeg", "resize+border", "border+resize+jpeg",
]
