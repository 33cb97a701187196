"""A finished run folder laid out as diffusion.train writes it (per-class samples of several epochs, a grid per
epoch, metrics.jsonl, nearest.json), for the gallery tests: no training needed."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from diffusion import rundir

RUN_ID = "20260102-000000-gall"
CLASSES = ("cat", "dog", "fish")
COLOURS = {"cat": (200, 60, 40), "dog": (60, 80, 200), "fish": (40, 160, 90)}


def picture(colour, size: int, epoch: int, index: int) -> Image.Image:
    """A disc that grows sharper with the epoch (index moves it), so film strips show change."""
    img = Image.new("RGB", (size, size), (250, 250, 245))
    draw = ImageDraw.Draw(img)
    r = size // 3 + (index % 3)
    cx, cy = size // 2 + index % 4 - 2, size // 2
    blur = max(0, 6 - 2 * epoch)
    for k in range(blur, -1, -1):
        fade = tuple(min(255, c + 30 * k) for c in colour)
        draw.ellipse((cx - r - k, cy - r - k, cx + r + k, cy + r + k), fill=fade)
    return img


def make_gallery_run(instance: Path, *, run_id: str = RUN_ID, classes=CLASSES, epochs=(1, 2, 3), n: int = 4,
                     size: int = 32, nearest: dict | None = None, status: dict | None = None,
                     config: dict | None = None, metrics: list[dict] | None = None, pictures=None) -> Path:
    """runs/<run_id>/ with config.json, status.json (completed), metrics.jsonl, and for each epoch the grid and `n`
    samples per class. `nearest` ({(epoch, class): nearest.json content}) writes those records. `pictures`
    (a function (class, epoch, index) -> PIL image) replaces the drawn discs (e.g. demo images)."""
    run_dir = Path(instance) / "runs" / run_id
    for epoch in epochs:
        for name in classes:
            for i in range(n):
                path = rundir.epoch_samples_dir(run_dir, epoch) / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                img = pictures(name, epoch, i) if pictures else picture(COLOURS.get(name, (120, 120, 120)), size,
                                                                        epoch, i)
                img.save(path)
        Image.new("RGB", (size * n, size * len(classes)), "white").save(rundir.grid_path(run_dir, epoch))
    for (epoch, name), record in (nearest or {}).items():
        rundir.nearest_path(rundir.epoch_samples_dir(run_dir, epoch) / name).write_text(json.dumps(record))
    rundir.write_json_atomic(run_dir / "config.json", {
        "class_names": list(classes), "preset": "tiny", "image_size": size, "epochs": max(epochs), "minutes": None,
        "batch_size": 16, "lr": 0.002, "seed": 0, "data": "", "created": "2026-01-02T00:00:00+00:00",
        **(config or {})})
    rundir.write_json_atomic(run_dir / "status.json", {"state": "completed", "epoch": max(epochs),
                                                       "step": max(epochs) * 10, "steps_per_epoch": 10,
                                                       **(status or {})})
    for record in metrics if metrics is not None else default_metrics(epochs):
        rundir.append_jsonl(run_dir / "metrics.jsonl", record)
    return run_dir


def default_metrics(epochs) -> list[dict]:
    """Two train records per epoch (loss falling) and an evaluation of every grid."""
    out = []
    for epoch in epochs:
        for k in range(2):
            out.append({"kind": "train", "epoch": epoch - 1, "step": (epoch - 1) * 10 + 5 * (k + 1),
                        "loss": 0.5 / epoch - 0.01 * k})
        out.append({"kind": "eval", "epoch": epoch, "step": epoch * 10, "accuracy": 0.5 + 0.1 * epoch,
                    "fid": 60.0 / epoch, "memorised_share": 0.0})
    return out
