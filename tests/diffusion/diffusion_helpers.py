"""Helpers for the diffusion tests: a tiny synthetic ImageFolder and a micro training config.

A module of its own (not conftest) so test files can import it by a name no other test folder uses."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

# Micro models are all per-op overhead: one thread avoids fork/join stalls on a shared, busy CPU.
torch.set_num_threads(1)

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220)}


def make_image_folder(root: Path, classes=("red", "green", "blue"), per_class: int = 8, size: int = 12,
                      seed: int = 0) -> Path:
    """One subfolder per class of RGBA PNGs: a coloured disc of random radius/position on transparency."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for name in classes:
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        colour = COLOURS.get(name, tuple(int(v) for v in rng.integers(0, 255, 3)))
        for i in range(per_class):
            cx, cy = rng.uniform(size * 0.35, size * 0.65, 2)
            r = rng.uniform(size * 0.2, size * 0.4)
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            arr = np.zeros((size, size, 4), np.uint8)
            arr[inside] = (*colour, 255)
            Image.fromarray(arr, "RGBA").save(d / f"{i}.png")
    return root


def micro_config(data, **over):
    from diffusion.config import TrainConfig
    base = dict(data=str(data), image_size=8, preset="micro", epochs=2, batch_size=8, lr=2e-3, warmup_steps=5,
                sample_every=1, sample_steps=2, samples_per_class=2, eval=False, log_every=2)
    base.update(over)
    return TrainConfig(**base)
