"""A run folder laid out as diffusion.train writes it, for the sticker, favourites and generation tests (no
training needed)."""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from tests.imagefiles import picture

RUN_ID = "20260101-000000-stkr"
GEN_ID = "20260101-000100-ab12"  # one cat, seed 7
GEN2_ID = "20260101-000200-cd34"  # two cats and two dogs with their animations, seed 11, the last epoch's weights


def disc(colour=(200, 40, 40), size: int = 16) -> Image.Image:
    img = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(img).ellipse((2, 2, size - 3, size - 3), fill=colour)
    return img


def save_gif(final: Image.Image, path: Path) -> None:
    """A small denoising-like animation ending on `final`."""
    frames = [Image.effect_noise(final.size, 60).convert("RGB"), final.convert("RGB")]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)


def make_generation(run_dir: Path, gen_id: str, per_class: dict[str, int], request: dict, *, gif: bool = False,
                    seed: int = 100) -> Path:
    """generated/<gen_id>/<class>/<i>.png (distinct pictures, so the curator finds them new) + request.json."""
    gen = run_dir / "generated" / gen_id
    for n, (name, count) in enumerate(per_class.items()):
        (gen / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = picture(16, seed=seed + 10 * n + i, mode="RGB")
            img.save(gen / name / f"{i}.png")
            if gif:
                save_gif(img, gen / name / f"{i}.gif")
    (gen / "request.json").write_text(json.dumps({"classes": list(per_class), "n": max(per_class.values()),
                                                  **request}))
    (gen / "exit_code").write_text("0\n")
    return gen


def make_run(instance: Path, data: Path | None = None, *, checkpoints: bool = False) -> Path:
    """runs/<RUN_ID>/ with config.json, two epoch-1 samples per class and one finished generation (GEN_ID: one cat,
    a green disc); with `checkpoints`, also (empty) last.pt, best.pt and epoch_0001.pt and a second, newer
    generation (GEN2_ID) with animations, whose settings the Generate form should remember."""
    run_dir = Path(instance) / "runs" / RUN_ID
    for name, colour in (("cat", (200, 40, 40)), ("dog", (40, 60, 200))):
        for i in range(2):
            path = run_dir / "samples" / "epoch_0001" / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            disc(colour).save(path)
    Image.new("RGB", (40, 20), "white").save(run_dir / "samples" / "epoch_0001.png")
    gen = run_dir / "generated" / GEN_ID
    (gen / "cat").mkdir(parents=True)
    disc((20, 150, 60)).save(gen / "cat" / "0.png")
    (gen / "request.json").write_text(json.dumps({"classes": ["cat"], "n": 1, "seed": 7, "steps": 25,
                                                  "sampler": "dpm++2m", "guidance": 3.0}))
    (gen / "exit_code").write_text("0\n")
    if checkpoints:
        (run_dir / "checkpoints").mkdir()
        for name in ("last.pt", "best.pt", "epoch_0001.pt"):
            (run_dir / "checkpoints" / name).write_bytes(b"not a real checkpoint")
        make_generation(run_dir, GEN2_ID, {"cat": 2, "dog": 2},
                        {"seed": 11, "steps": 12, "sampler": "ddim", "guidance": 1.5, "which": "last"}, gif=True)
    (run_dir / "config.json").write_text(json.dumps({
        "class_names": ["cat", "dog"], "preset": "micro", "image_size": 16, "epochs": 1,
        "data": str(data) if data else "", "fit": "crop", "background": "white"}))
    (run_dir / "status.json").write_text(json.dumps({"state": "completed", "epoch": 1}))
    return run_dir
