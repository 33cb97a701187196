"""Build the near-duplicate benchmark from real images (the demo emoji set).

Every original gets transformed copies that a person would call "the same picture": resized,
JPEG-recompressed (flattened on white, as editors do), format changed (WebP lossy, GIF palette,
lossless WebP), cropped 2-5 %, brightness +-10 % (of the picture over a kept background, or of the
whole picture flattened on white, background included), and combinations. Copies of one original share a
``group``; every pair across groups is a negative. Hard negatives are labelled: the same emoji in
another art style ("same-subject") and another emoji of the same class in the same style
("same-style-class").

    python bench/near_dup_pairs.py [--variants 6] [--seed 0]   # prints a summary of the set

Used by bench/dedup_quality.py (``build_items``) and the tests (``transform``).
"""
from __future__ import annotations

import argparse
import glob
import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageEnhance

DEMO = str(Path(__file__).resolve().parent.parent / "demo" / "animal-emoji" / "images")  # the bundled copy
WHITE = (255, 255, 255)


@dataclass
class Item:
    """One benchmark image: encoded bytes plus its ground truth."""

    name: str
    data: bytes
    group: int  # index of the original it was made from
    style: str
    emoji: str
    cls: str
    transform: str  # "original" or the transform recipe


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
]


def parse_name(path: str) -> tuple[str, str, str]:
    cls = os.path.basename(os.path.dirname(path))
    style, emoji = os.path.splitext(os.path.basename(path))[0].split("__", 1)
    return style, emoji, cls


def build_items(demo: str = DEMO, variants: int = 6, seed: int = 0) -> list[Item]:
    """Originals plus ``variants`` transformed copies of each (recipes cycled, parameters random)."""
    rng = random.Random(seed)
    paths = sorted(glob.glob(os.path.join(demo, "*", "*.png")))
    if not paths:
        raise SystemExit(f"no images under {demo}")
    items: list[Item] = []
    for g, p in enumerate(paths):
        style, emoji, cls = parse_name(p)
        with open(p, "rb") as f:
            data = f.read()
        items.append(Item(os.path.relpath(p, demo), data, g, style, emoji, cls, "original"))
        img = Image.open(io.BytesIO(data)).convert("RGBA")
        for v in range(variants):
            recipe = RECIPES[(g * variants + v) % len(RECIPES)]
            blob, done = transform(img, recipe, rng)
            items.append(Item(f"{os.path.relpath(p, demo)}#{v}", blob, g, style, emoji, cls, done))
    return items


def pair_kind(a: Item, b: Item) -> str:
    """'positive', 'same-subject' (same emoji, other style), 'same-style-class', or 'negative'."""
    if a.group == b.group:
        return "positive"
    if a.emoji == b.emoji:
        return "same-subject"
    if a.style == b.style and a.cls == b.cls:
        return "same-style-class"
    return "negative"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    items = build_items(variants=args.variants, seed=args.seed)
    kinds: dict[str, int] = {}
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            k = pair_kind(items[i], items[j])
            kinds[k] = kinds.get(k, 0) + 1
    print(f"{len(items)} images from {len({it.group for it in items})} originals")
    for k, n in sorted(kinds.items()):
        print(f"  {k:<18}{n:>10} pairs")


if __name__ == "__main__":
    main()
