"""Load a dataset once into a uint8 tensor [N, C, S, S] (cached on disk), and draw augmented batches from it.

Sources: an ImageFolder directory (one subfolder per class) or a curator snapshot manifest.json. Each image is
composited over a background colour (or kept RGBA with background="alpha"), resized with a Lanczos filter and
centre-cropped ("crop") or padded ("pad") to a square. The result is small (298 images at 32 px = 0.9 MB), so it
lives in memory and batches are cut from it directly: no loader workers, which on 2 cores cost more than they give.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageColor, UnidentifiedImageError

from core.files import write_with

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
CACHE_VERSION = 1


class DataError(ValueError):
    """The dataset cannot be used for training; the message says why and what to do."""


def list_image_folder(root: Path) -> tuple[list[tuple[Path, str]], list[str]]:
    """(path, class) pairs of an ImageFolder tree, and the sorted class names. Empty classes are an error."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data directory {root} does not exist")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if not class_dirs:
        hint = f" (found {len(loose)} images directly in it)" if loose else ""
        raise DataError(f"{root} has no class subfolders{hint}; expected one subfolder of images per class")
    items, empty = [], []
    for d in class_dirs:
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            empty.append(d.name)
        items += [(p, d.name) for p in files]
    if empty:
        raise DataError(f"class folder(s) with no images in {root}: {', '.join(empty)}; add images or remove them")
    return items, [d.name for d in class_dirs]


def read_manifest(path: Path) -> tuple[list[tuple[Path, str]], list[str], dict]:
    """(path, class) pairs, class names and the raw manifest of a curator snapshot."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"snapshot manifest {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise DataError(f"snapshot manifest {path} is not valid JSON: {e}") from None
    classes = list(manifest.get("classes") or [])
    items = []
    for item in manifest.get("items", []):
        label = item.get("label")
        if label not in classes:
            raise DataError(f"manifest {path}: item {item.get('path')} has label {label!r} not in classes {classes}")
        items.append(((path.parent / item["path"]).resolve(), label))
    counts = {c: 0 for c in classes}
    for _, c in items:
        counts[c] += 1
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise DataError(f"snapshot {path} has class(es) with no images: {', '.join(empty)}")
    return items, classes, manifest


def _background_rgb(background: str) -> tuple[int, int, int]:
    try:
        return ImageColor.getrgb(background)[:3]
    except ValueError:
        raise DataError(f"background {background!r} is not a colour (try 'white', '#808080') nor 'alpha'") from None


def preprocess_image(img: Image.Image, image_size: int, fit: str, background: str) -> np.ndarray:
    """One PIL image -> uint8 array [S, S, C] (C = 3, or 4 with background="alpha")."""
    rgba = img.convert("RGBA")
    w, h = rgba.size
    # Resize with premultiplied alpha so transparent pixels' (often garbage) colours do not bleed into edges.
    if fit == "crop":
        scale = image_size / min(w, h)
    elif fit == "pad":
        scale = image_size / max(w, h)
    else:
        raise DataError(f"fit {fit!r} must be 'crop' or 'pad'")
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if background == "alpha":
        premult = rgba.convert("RGBa").resize((nw, nh), Image.LANCZOS, reducing_gap=3.0).convert("RGBA")
        canvas = Image.new("RGBA", (image_size, image_size), (0, 0, 0, 0))
    else:
        bg = Image.new("RGBA", rgba.size, _background_rgb(background) + (255,))
        flat = Image.alpha_composite(bg, rgba).convert("RGB")
        premult = flat.resize((nw, nh), Image.LANCZOS, reducing_gap=3.0)
        canvas = Image.new("RGB", (image_size, image_size), _background_rgb(background))
    left, top = (image_size - nw) // 2, (image_size - nh) // 2
    canvas.paste(premult, (left, top))  # negative offsets centre-crop, positive ones pad
    return np.asarray(canvas, dtype=np.uint8)


def _cache_key(items, image_size, fit, background) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, image_size, fit, background]).encode())
    for path, label in items:
        try:
            st = os.stat(path)
            stamp = (st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        h.update(json.dumps([str(path), label, stamp]).encode())
    return h.hexdigest()[:20]


def load_images(source, image_size: int, fit: str = "crop", background: str = "white", *,
                cache_dir: Path | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Load and preprocess a dataset into (images_u8 [N,C,S,S], labels [N], class_names).

    `source`: an ImageFolder directory or a snapshot manifest.json. The result is cached in `cache_dir`
    (default: `<manifest dir>/cache` for a snapshot; no disk cache for a folder unless given), keyed by the
    file list (paths, sizes, mtimes) and the settings. Images smaller than `image_size` are upscaled with a
    warning naming them.
    """
    source = Path(source)
    if source.is_file() or source.suffix == ".json":
        items, classes, _ = read_manifest(source)
        if cache_dir is None:
            cache_dir = source.parent / "cache"
    else:
        items, classes = list_image_folder(source)
    if len(classes) < 2:
        only = classes[0] if classes else "none"
        raise DataError(f"found only one class ({only}) in {source}; class-conditional training needs at least two "
                        "(point --data at the folder that contains one subfolder per class)")
    key = _cache_key(items, image_size, fit, background)
    cache_file = Path(cache_dir) / f"images-{key}.pt" if cache_dir is not None else None
    if cache_file is not None and cache_file.exists():
        try:
            cached = torch.load(cache_file, map_location="cpu", weights_only=True)
            return cached["images"], cached["labels"], list(cached["class_names"])
        except Exception as e:  # a torn cache file is rebuilt, never trusted
            log.warning("ignoring unreadable data cache %s (%s); rebuilding", cache_file, e)

    index = {c: i for i, c in enumerate(classes)}
    arrays, labels, small = [], [], []
    for path, label in items:
        try:
            with Image.open(path) as img:
                img.load()
                if min(img.size) < image_size:
                    small.append(f"{Path(path).name} ({img.size[0]}x{img.size[1]})")
                arrays.append(preprocess_image(img, image_size, fit, background))
        except FileNotFoundError:
            raise DataError(f"image file {path} (class {label}) does not exist") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            raise DataError(f"cannot read image {path} (class {label}): {e}") from None
        labels.append(index[label])
    if small:
        shown = ", ".join(small[:10]) + (f" and {len(small) - 10} more" if len(small) > 10 else "")
        warnings.warn(f"{len(small)} image(s) smaller than the training size {image_size} px were upscaled "
                      f"(expect blur): {shown}", UserWarning, stacklevel=2)
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    labels_t = torch.tensor(labels, dtype=torch.long)
    if cache_file is not None:
        _save_atomic({"images": images, "labels": labels_t, "class_names": classes}, cache_file)
    return images, labels_t, classes


def _save_atomic(obj, path: Path) -> None:
    """The tensor cache is derived from the snapshot and made again if lost: atomic, not durable (core.files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, lambda f: torch.save(obj, f), durable=False)


def make_batch(images_u8: torch.Tensor, index: torch.Tensor, *, flip: bool, generator: torch.Generator,
               device) -> torch.Tensor:
    """Cut a batch from the uint8 cache, scale to [-1, 1], flip a random half horizontally, move to device."""
    x = images_u8[index]
    if flip:
        mask = torch.rand(len(index), generator=generator) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    x = x.to(device, non_blocking=True)
    return x.float().div_(127.5).sub_(1.0)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch, a pure function of (seed, epoch): resuming mid-epoch needs no saved state."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(n, generator=g)


def source_items(source) -> list[dict]:
    """{"path" (absolute), "sha256"} of each image of a dataset, in `load_images` order (index i is image i).

    A snapshot's manifest carries the hashes; an ImageFolder's files are hashed here (a few ms per image)."""
    source = Path(source)
    if source.is_file() or source.suffix == ".json":
        items, _, manifest = read_manifest(source)
        hashes = [item.get("sha256") for item in manifest.get("items", [])]
        return [{"path": str(p), "sha256": h} for (p, _), h in zip(items, hashes)]
    items, _ = list_image_folder(source)
    return [{"path": str(Path(p).resolve()), "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()}
            for p, _ in items]
