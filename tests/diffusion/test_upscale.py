"""The learned upscaler: it learns from pairs cut from originals, holds images back, and saves/cancels like a run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion import rundir
from diffusion import upscale as up

ROOT = Path(__file__).resolve().parents[2]


def smooth_images(folder: Path, n: int = 12, size: int = 64) -> Path:
    """An ImageFolder of smooth synthetic pictures: soft blobs of colour on white (two classes)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        img = np.full((size, size, 3), 255.0)
        for _ in range(3):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
            w = np.clip(1.5 - np.hypot(yy - cy, xx - cx) / r, 0, 1)[..., None]
            img = img * (1 - w) + rng.uniform(0, 255, 3) * w
        path = folder / ("a" if i % 2 else "b") / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.round().astype(np.uint8)).save(path)
    return folder


def test_a_few_steps_reduce_the_loss_and_beat_nearest_and_bilinear(tmp_path):
    """Tried: 25 training steps on 12 smooth 64 px pictures (pairs 16 -> 64 for x4, 8 -> 64 for x8), max_steps
    instead of a time budget. The logged loss falls, the held-back image is scored, and the trained x4 beats
    nearest and bilinear enlargement on a smooth picture it never saw."""
    data = smooth_images(tmp_path / "data")
    out = tmp_path / "up"
    status = up.train_upscaler(out, data, image_size=16, minutes=5, max_steps=25, batch=4, eval_every_s=1e9)
    assert status["state"] == "completed" and status["step"] == 25
    losses = [r["loss"] for r in rundir.read_metrics(out) if "loss" in r]
    assert np.mean(losses[-2:]) < losses[0]
    assert status["eval"]["x4"]["images"] >= 1 and "psnr_lanczos" in status["eval"]["x8"]
    split = json.loads((out / "split.json").read_text())
    assert split["held_back"] and split["trained_on"] + len(split["held_back"]) == 12
    model, saved = up.load_model(out)
    assert saved["step"] == 25
    high = np.asarray(Image.open(sorted((tmp_path / "data").rglob("*.png"))[0]).convert("RGB"))
    low = up.downscale(torch.from_numpy(high).permute(2, 0, 1)[None].float(), 4)[0].round().byte() \
        .permute(1, 2, 0).numpy()
    learned = up.psnr(up.upscale_array(model, low, 4), high)
    assert learned > up.psnr(up.classic(low, 4, "nearest"), high)
    assert learned > up.psnr(up.classic(low, 4, "bilinear"), high)


def test_validation_images_pick_each_scales_checkpoint(tmp_path):
    """Tried: 30 steps on 84 smooth 32 px pictures, scored on the validation images every 10 steps. The split keeps
    held-back, validation and training images apart; each scale's saved weights are the ones that scored best on
    the validation images, at a step where it was scored; the held-back images are scored after."""
    data = smooth_images(tmp_path / "data", n=84, size=32)
    out = tmp_path / "up"
    status = up.train_upscaler(out, data, image_size=8, minutes=None, max_steps=30, batch=4, validate_every=10)
    split = json.loads((out / "split.json").read_text())
    held, val = set(split["held_back"]), set(split["validation"])
    assert len(val) >= up.MIN_VALIDATION and not held & val
    assert split["trained_on"] + len(val) + len(held) == 84
    model, saved = up.load_model(out)
    items = [(Path(p), "x") for p in sorted(val)]
    for s in up.SCALES:
        picked = status["picked"][f"x{s}"]
        assert picked["step"] in (10, 20, 30)
        low, high = up._validation_pairs(up.load_high(items, 32, "crop", "white"), s)
        assert up._psnr_batch(model.nets[str(s)], low, high) == pytest.approx(picked["psnr"], abs=1e-3)
        scored = [r["validation"][f"x{s}"]["psnr"] for r in rundir.read_metrics(out) if "validation" in r]
        assert picked["psnr"] == pytest.approx(max(scored), abs=1e-3)
    assert saved["picked"] == status["picked"] and status["eval"]["x8"]["images"] == len(held)


def test_a_fixed_number_of_steps_gives_the_same_model_however_long_it_takes(tmp_path):
    """Tried: the same 12 steps twice (no time budget), the second time with the machine made slower by a sleep
    in every step's data. Both end after 12 steps with the same weights: load changes the wall time, not the
    result. Neither a budget nor a step count is refused."""
    data = smooth_images(tmp_path / "data")
    first = up.train_upscaler(tmp_path / "a", data, image_size=16, minutes=None, max_steps=12, batch=4)
    crops = up._crops

    def slow(*args, **kwargs):
        time.sleep(0.05)
        return crops(*args, **kwargs)
    up._crops = slow
    try:
        second = up.train_upscaler(tmp_path / "b", data, image_size=16, minutes=None, max_steps=12, batch=4)
    finally:
        up._crops = crops
    assert first["step"] == second["step"] == 12 and second["elapsed"] > first["elapsed"]
    a, _ = up.load_model(tmp_path / "a")
    b, _ = up.load_model(tmp_path / "b")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-6), name
    with pytest.raises(up.UpscaleError, match="minutes.*or a number of steps"):
        up.train_upscaler(tmp_path / "c", data, minutes=None, max_steps=None)


def test_held_back_split_is_stable_and_by_file_name():
    """Tried: the split rule on 200 names, twice and under another folder. About one in ten is held back, the
    same names each time, whatever folder they are in."""
    names = [f"img-{i}.png" for i in range(200)]
    held = [n for n in names if up.is_held_back(n)]
    assert 8 <= len(held) <= 35
    assert held == [n for n in names if up.is_held_back(f"/elsewhere/x/{n}")]


def test_bad_inputs_are_clear(tmp_path):
    """Tried: a scale of 3, a run folder with no config, a missing model, a corrupt model file, originals too small
    for x8, a model saved by the earlier shared-body version. Each raises UpscaleError saying what is wrong."""
    model = up.Upscaler(channels=8, blocks=1)
    with pytest.raises(up.UpscaleError, match="scale 3"):
        model(torch.zeros(1, 3, 4, 4), 3)
    with pytest.raises(up.UpscaleError, match="not a training run"):
        up.run_settings(tmp_path)
    with pytest.raises(up.UpscaleError, match="no trained upscaler"):
        up.load_model(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"not a model")
    with pytest.raises(up.UpscaleError, match="corrupt"):
        up.load_model(tmp_path)
    with pytest.raises(up.UpscaleError, match="too small"):
        up.pair_sizes(32, 24, 8)
    torch.save({"model": {"tails.4.2.weight": torch.zeros(1)}, "model_config": {}}, tmp_path / "model.pt")
    with pytest.raises(up.UpscaleError, match="earlier version.*train it again"):
        up.load_model(tmp_path)


def test_sigterm_saves_and_ends_cancelled(tmp_path):
    """Tried: `python -m diffusion.upscale RUN_DIR` on a run folder (config.json naming the data), then SIGTERM once
    it reports running. The process exits 0 with state "cancelled", and a model file is saved."""
    data = smooth_images(tmp_path / "data", n=6)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"data": str(data), "image_size": 16}))
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "diffusion.upscale", str(run_dir), "--minutes", "5"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    folder = up.upscaler_dir(run_dir)
    deadline = time.time() + 60
    while time.time() < deadline and rundir.read_status(folder).get("step", 0) < 10:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stdout.read().decode()
    status = rundir.read_status(folder)
    assert status["state"] == "cancelled" and (folder / "model.pt").exists()
