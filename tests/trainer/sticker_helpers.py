"""A run folder laid out as diffusion.train writes it, for the sticker tests (no training needed)."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

RUN_ID = "20260101-000000-stkr"


def disc(colour=(200, 40, 40), size: int = 16) -> Image.Image:
    img = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(img).ellipse((2, 2, size - 3, size - 3), fill=colour)
    return img


def make_run(instance: Path, data: Path | None = None) -> Path:
    """runs/<RUN_ID>/ with config.json, two epoch-1 samples per class and one finished generation."""
    run_dir = Path(instance) / "runs" / RUN_ID
    for name, colour in (("cat", (200, 40, 40)), ("dog", (40, 60, 200))):
        for i in range(2):
            path = run_dir / "samples" / "epoch_0001" / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            disc(colour).save(path)
    Image.new("RGB", (40, 20), "white").save(run_dir / "samples" / "epoch_0001.png")
    gen = run_dir / "generated" / "20260101-000100-ab12"
    (gen / "cat").mkdir(parents=True)
    disc((20, 150, 60)).save(gen / "cat" / "0.png")
    (gen / "request.json").write_text(json.dumps({"classes": ["cat"], "n": 1, "seed": 7, "steps": 25,
                                                  "sampler": "dpm++2m", "guidance": 3.0}))
    (gen / "exit_code").write_text("0\n")
    (run_dir / "config.json").write_text(json.dumps({
        "class_names": ["cat", "dog"], "preset": "micro", "image_size": 16, "epochs": 1,
        "data": str(data) if data else "", "fit": "crop", "background": "white"}))
    (run_dir / "status.json").write_text(json.dumps({"state": "completed", "epoch": 1}))
    return run_dir
