"""Build the near-duplicate benchmark from real images (the demo emoji set).

Every original gets transformed copies that a person would call "the same picture": resized,
JPEG-recompressed (flattened on white, as editors do), format changed (WebP lossy, GIF palette,
lossless WebP), cropped 2-5 %, brightness +-10 % (of the picture over a kept background, or of the
whole picture flattened on white, background included), and combinations. Copies of one original share a
``group``; every pair across groups is a negative. Hard negatives are labelled: the same emoji in
another art style ("same-subject") and another emoji of the same class in the same style
("same-style-class").

    python bench/near_dup_pairs.py [--variants 6] [--seed 0]   # prints a summary of the set

Used by bench/dedup_quality.py (``build_items``); the copies are made by curator.dedup.variants.
"""
from __future__ import annotations

import argparse
import glob
import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

from common import DEMO_IMAGES  # bench/common.py, beside this script
from PIL import Image

from curator.dedup.variants import RECIPES, transform


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


def parse_name(path: str) -> tuple[str, str, str]:
    cls = os.path.basename(os.path.dirname(path))
    style, emoji = os.path.splitext(os.path.basename(path))[0].split("__", 1)
    return style, emoji, cls


def build_items(demo: str | Path = DEMO_IMAGES, variants: int = 6, seed: int = 0) -> list[Item]:
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
