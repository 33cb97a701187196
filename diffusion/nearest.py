"""nearest.json beside a class folder of pictures: each picture's nearest training images (see
diffusion.rundir.nearest_path for the format), so a user can check a sample is not a copy."""
from __future__ import annotations

from pathlib import Path

import torch

from . import rundir

K = 3  # training images listed per picture


def nearest_records(evaluator, images_u8: torch.Tensor, items: list[dict], k: int = K) -> list[dict]:
    """Per picture: {"memorised", "nearest": [{"sha256", "path", "distance"}]} from the evaluator's pixel-space
    nearest neighbours (`items[i]` describes training image i, as `diffusion.data.source_items` gives them)."""
    dist, idx = evaluator.nearest_training(images_u8, k=k)
    out = []
    for drow, irow in zip(dist.tolist(), idx.tolist()):
        near = []
        for d, i in zip(drow, irow):
            item = items[i] if i < len(items) else {}
            near.append({"sha256": item.get("sha256"), "path": item.get("path"), "distance": round(float(d), 5)})
        out.append({"memorised": bool(drow[0] < evaluator.nn_threshold), "nearest": near})
    return out


def write_nearest(picture_dir: Path, names: list[str], images_u8: torch.Tensor, evaluator, items: list[dict]) -> Path:
    """Write `picture_dir/nearest.json` for the pictures `names` (file names like "0.png", same order as images)."""
    records = nearest_records(evaluator, images_u8, items)
    path = rundir.nearest_path(picture_dir)
    rundir.write_json_atomic(path, {"threshold": evaluator.nn_threshold,
                                    "pictures": dict(zip(names, records))})
    return path


def write_nearest_by_class(out_dir: Path, class_dirs: list[str], labels: torch.Tensor, names: list[str],
                           images_u8: torch.Tensor, evaluator, items: list[dict]) -> None:
    """nearest.json in each `out_dir/<class_dirs[c]>/` for the pictures of class c."""
    for c, folder in enumerate(class_dirs):
        mask = (labels == c).nonzero().flatten().tolist()
        if mask:
            write_nearest(Path(out_dir) / folder, [names[i] for i in mask], images_u8[mask], evaluator, items)
