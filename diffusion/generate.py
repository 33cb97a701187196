"""Draw samples from a trained run and write them as PNGs (and denoising GIFs); grid images for training.

`python -m diffusion.generate RUN_DIR OUT_DIR [--class NAME]... [--n N] ...` is the torch-side entry point;
`python manage.py sample` calls `generate_to_dir` the same way.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.files import write_with

from . import rundir
from .checkpoint import load_for_sampling, parse_which
from .config import DEFAULT_SAMPLER
from .rundir import safe_dir_name
from .samplers import SAMPLERS, sample, to_uint8


def to_pil(img_u8: torch.Tensor) -> Image.Image:
    """[C,S,S] uint8 -> PIL image (RGB, or RGBA for 4 channels)."""
    arr = img_u8.permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(arr), "RGBA" if arr.shape[2] == 4 else "RGB")


def save_png(img_u8: torch.Tensor, path: Path) -> None:
    """Write a PNG atomically, so a reader never sees a half-written image (not durable: samples can be drawn
    again from the checkpoint with the same seeds)."""
    _save_image(to_pil(img_u8), path, format="PNG")


def _save_image(img: Image.Image, path: Path, **save_args) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, lambda f: img.save(f, **save_args), durable=False)


def make_grid(images_u8: torch.Tensor, rows: int, pad: int = 2, scale: int = 1) -> Image.Image:
    """Tile [rows*cols, C, S, S] images row-major into one PIL image with a light separating border."""
    n, c, s, _ = images_u8.shape
    cols = (n + rows - 1) // rows
    fill = 255 if c == 3 else 0
    grid = torch.full((c, rows * (s + pad) + pad, cols * (s + pad) + pad), fill, dtype=torch.uint8)
    if c == 4:
        grid[3] = 0
    for i in range(n):
        r, col = divmod(i, cols)
        y, x = pad + r * (s + pad), pad + col * (s + pad)
        grid[:, y:y + s, x:x + s] = images_u8[i]
    img = to_pil(grid)
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_grid(images_u8: torch.Tensor, rows: int, path: Path, scale: int = 1) -> None:
    _save_image(make_grid(images_u8, rows, scale=scale), path, format="PNG")


def save_gif(frames_u8: list[torch.Tensor], path: Path, duration_ms: int = 80, final_hold: int = 12) -> None:
    """Animated GIF of the denoising process (x0 predictions per step), holding the final image a moment."""
    images = [to_pil(f).convert("RGB") for f in frames_u8]
    images += [images[-1]] * final_hold
    images = [im.resize((im.width * 4, im.height * 4), Image.NEAREST) for im in images]
    _save_image(images[0], path, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but CUDA is not available on this machine; use --device cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device 'mps' was requested but Apple MPS is not available; use --device cpu")
    return torch.device(device)


def run_guidance(run_dir) -> tuple[float, list | None]:
    """The run's default guidance and interval: config.json's (the guidance sweep writes its choice there)."""
    config = rundir.read_json(Path(run_dir) / "config.json", default={}) or {}
    return float(config.get("guidance", 3.0)), config.get("guidance_interval")


def write_nearest_files(run_dir: Path, written: list[Path]) -> None:
    """nearest.json beside each class folder of `written` pictures, with the run's evaluator (if it has one)."""
    from .data import DataError, source_items
    from .evaluate import Evaluator, EvaluatorFileError
    from .nearest import write_nearest
    path = Path(run_dir) / "evaluator.pt"
    if not path.exists() or not written:
        return
    try:
        evaluator = Evaluator.load(path)
        config = rundir.read_json(Path(run_dir) / "config.json", default={}) or {}
        items = source_items(config.get("data", ""))
    except (OSError, EvaluatorFileError, DataError, ValueError):
        return  # nearest.json is a help for the user, not worth failing a generation over
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[evaluator.image_shape[0]]
    by_folder: dict[Path, list[Path]] = {}
    for p in written:
        by_folder.setdefault(p.parent, []).append(p)
    for folder, paths in by_folder.items():
        arrays = []
        for p in paths:
            with Image.open(p) as im:
                arr = np.asarray(im.convert(mode))
            arrays.append(torch.from_numpy((arr[:, :, None] if arr.ndim == 2 else arr).copy()).permute(2, 0, 1))
        write_nearest(folder, [p.name for p in paths], torch.stack(arrays), evaluator, items)


def generate_to_dir(run_dir, out_dir, *, classes: list[str] | None = None, n: int = 8, steps: int = 25,
                    sampler: str = DEFAULT_SAMPLER, guidance: float | None = None, seed: int = 0, gif: bool = False,
                    which="best", device: str = "auto", batch_size: int = 256, progress=None,
                    interval="run", nearest: bool = True) -> list[Path]:
    """Write `out_dir/<class>/<i>.png` (i = 0..n-1) for each class (all by default); returns the PNG paths.

    `which`: "best", "last" or an epoch whose weights the run kept. `guidance` None: the run's default (chosen by
    its guidance sweep); `interval` "run": the run's guidance interval, None: guidance at every noise level, or
    [lo, hi] in sigma. With `nearest` (and a run evaluator) each class folder gets a nearest.json.

    Each sample's starting noise is seeded by (seed, class, index), so asking for one class or fewer samples
    gives the same images as asking for all (up to float rounding between batch sizes).
    With gif=True also writes `<i>.gif`, the denoising animation of that sample.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    dev = resolve_device(device)
    which = parse_which(which)
    default_guidance, default_interval = run_guidance(run_dir)
    guidance = default_guidance if guidance is None else guidance
    interval = default_interval if interval == "run" else interval
    model, schedule, config, class_names = load_for_sampling(Path(run_dir), which=which, device=dev)
    if classes:
        unknown = [c for c in classes if c not in class_names]
        if unknown:
            raise ValueError(f"unknown class(es) {', '.join(unknown)}; this run knows: {', '.join(class_names)}")
    chosen = list(dict.fromkeys(classes)) if classes else list(class_names)
    out_dir = Path(out_dir)
    written = []
    for name in chosen:
        ci = class_names.index(name)
        gen = torch.Generator().manual_seed(int(seed) * 1009 + ci)
        shape = (model.cfg.in_channels, model.image_size, model.image_size)
        for start in range(0, n, batch_size):
            count = min(batch_size, n - start)
            labels = torch.full((count,), ci, dtype=torch.long)
            noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(
                (int(seed) * 1_000_003 + ci) * 100_003 + start + j)) for j in range(count)])
            result = sample(model, schedule, labels, steps=steps, sampler=sampler, guidance=guidance,
                            generator=gen, device=dev, prediction=config.prediction, return_trajectory=gif,
                            noise=noise, interval=interval)
            images, frames = result if gif else (result, None)
            images_u8 = to_uint8(images)
            for j in range(count):
                path = out_dir / safe_dir_name(name) / f"{start + j}.png"
                save_png(images_u8[j], path)
                written.append(path)
                if gif:
                    save_gif([to_uint8(f[j]) for f in frames] + [images_u8[j]], path.with_suffix(".gif"))
            if progress is not None:
                progress(name, start + count, n)
    if nearest:
        write_nearest_files(Path(run_dir), written)
    return written


def interval_choice(choice: str):
    """"run" / "on" / "off" (the command-line words) -> the `interval` argument of generate_to_dir."""
    from .config import DEFAULT_GUIDANCE_INTERVAL
    return {"run": "run", "on": list(DEFAULT_GUIDANCE_INTERVAL), "off": None}[choice]


def main(argv=None) -> int:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    p = argparse.ArgumentParser(description="Sample a trained Menagerie diffusion run into OUT/<class>/<i>.png")
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p.add_argument("--class", dest="classes", action="append")
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--sampler", default=DEFAULT_SAMPLER, choices=SAMPLERS)
    p.add_argument("--guidance", type=float, default=None, help="default: the run's (chosen by its guidance sweep)")
    p.add_argument("--interval", choices=("run", "on", "off"), default="run",
                   help="limited-interval guidance: the run's choice, on (the default interval) or off")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gif", action="store_true")
    p.add_argument("--which", default="best", help="best, last or an epoch number whose weights the run kept")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    try:
        paths = generate_to_dir(a.run_dir, a.out_dir, classes=a.classes, n=a.n, steps=a.steps, sampler=a.sampler,
                                guidance=a.guidance, seed=a.seed, gif=a.gif, which=a.which, device=a.device,
                                interval=interval_choice(a.interval))
    except (ValueError, RuntimeError) as e:  # CheckpointError is a RuntimeError
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"written": len(paths), "out": str(a.out_dir)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
