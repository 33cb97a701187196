"""Training end to end on a micro model: the run-directory contract, exact resume after SIGKILL or cancel,
and every bad input the issue lists (changed config, corrupt checkpoint, out of memory)."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from diffusion import rundir
from diffusion.checkpoint import CheckpointError, load_for_sampling
from diffusion.generate import generate_to_dir
from diffusion.train import TrainingError, train, write_run_config
from tests.diffusion.diffusion_helpers import micro_config

ROOT = Path(__file__).resolve().parents[2]


def _weights(run_dir: Path, which="last") -> dict:
    state = torch.load(rundir.checkpoint_path(run_dir, which), map_location="cpu", weights_only=False)
    return {"model": state["model"], "ema": state["ema"]["model"], "step": state["step"]}


def _assert_same_weights(a: dict, b: dict):
    assert a["step"] == b["step"]
    for part in ("model", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"


RESUME_EPOCHS = 20


def resume_config(tiny_folder):
    """The interrupted runs and their reference: a checkpoint every few milliseconds of training, so there is one
    to resume from wherever the kill lands (previews keep to their share of the time, so they cannot mark it)."""
    return micro_config(tiny_folder, epochs=RESUME_EPOCHS, batch_size=5, sample_steps=1, samples_per_class=1,
                        checkpoint_minutes=0.0005)


@pytest.fixture(scope="module")
def reference_run(tiny_folder, tmp_path_factory):
    """An uninterrupted micro run that the interrupted ones must match bit for bit."""
    run = tmp_path_factory.mktemp("ref") / "run"
    status = train(resume_config(tiny_folder), run, progress=False)
    assert status["state"] == "completed"
    return run


def test_run_directory_contract(tiny_folder, tmp_path):
    """Tried: 2 epochs, grid every epoch. Every file of the contract must exist with the documented fields."""
    run = tmp_path / "run"
    status = train(micro_config(tiny_folder), run, progress=False)
    assert status["state"] == "completed" and status["epoch"] == 2 and status["step"] == 6
    st = rundir.read_status(run)
    for key in ("state", "epoch", "epochs", "step", "total_steps", "images_per_sec", "eta_seconds", "pid",
                "heartbeat", "error", "started", "updated", "latest_grid_epoch", "best_epoch", "device"):
        assert key in st, key
    assert st["latest_grid_epoch"] == 2 and st["best_epoch"] in (1, 2) and st["error"] is None
    config = json.loads((run / "config.json").read_text())
    assert config["class_names"] == ["blue", "green", "red"] and config["preset"] == "micro"
    assert rundir.list_epochs(run) == [1, 2]
    grid = Image.open(rundir.grid_path(run, 2))
    assert grid.size == (2 * 10 + 2, 3 * 10 + 2)  # 2 columns x 3 rows of 8 px with 2 px borders
    assert [p.name for p in rundir.class_sample_paths(run, 2, "red")] == ["0.png", "1.png"]
    kinds = [m["kind"] for m in rundir.read_metrics(run)]
    assert kinds.count("train") == 3  # log_every=2 over 6 steps
    train_rec = next(m for m in rundir.read_metrics(run) if m["kind"] == "train")
    assert {"epoch", "step", "loss", "lr", "images_per_sec"} <= set(train_rec)
    assert rundir.checkpoint_path(run, "last").exists() and rundir.checkpoint_path(run, "best").exists()
    log = (run / "train.log").read_text()
    assert "run completed" in log and "micro" in log
    model, schedule, cfg, names = load_for_sampling(run, "best")
    assert names == ["blue", "green", "red"] and cfg.epochs == 2 and model.image_size == 8


def test_sigkill_mid_run_then_resume_matches_the_uninterrupted_run(tiny_folder, tmp_path, reference_run):
    """Tried: `python -m diffusion.train RUN` killed with SIGKILL after its 3rd epoch (and a checkpoint), then
    `--resume`. The final model and EMA weights must equal the never-interrupted run's exactly."""
    run = tmp_path / "run"
    run.mkdir()
    write_run_config(run, resume_config(tiny_folder))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # as this process (conftest)
    proc = subprocess.Popen([sys.executable, "-m", "diffusion.train", str(run), "--no-progress"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if (rundir.read_status(run).get("epoch") or 0) >= 3 and rundir.checkpoint_path(run, "last").exists():
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stderr.close()
    killed_at = _weights(run)["step"]
    assert rundir.read_status(run)["state"] == "running"  # SIGKILL leaves no chance to write anything else
    assert killed_at < _weights(reference_run)["step"]
    assert not rundir.is_alive(rundir.read_status(run), now=time.time() + 60)  # stale heartbeat, dead pid

    status = train(resume_config(tiny_folder), run, resume=True, progress=False)
    assert status["state"] == "completed"
    _assert_same_weights(_weights(run), _weights(reference_run))


def test_cancel_file_mid_epoch_then_resume_matches_too(tiny_folder, tmp_path, reference_run):
    """Tried: RUN/cancel written while training (in the middle of an epoch, usually); state "cancelled";
    a resume (with the same config) must still end on exactly the reference weights."""
    run = tmp_path / "run"
    cfg = lambda: resume_config(tiny_folder)  # noqa: E731

    def cancel_soon():
        while (rundir.read_status(run).get("step") or 0) < 7:
            time.sleep(0.005)
        rundir.request_cancel(run)
    t = threading.Thread(target=cancel_soon, daemon=True)
    t.start()
    status = train(cfg(), run, progress=False)
    t.join(5)
    assert status["state"] == "cancelled" and 7 <= status["step"] < _weights(reference_run)["step"]
    status = train(cfg(), run, resume=True, progress=False)
    assert status["state"] == "completed"
    _assert_same_weights(_weights(run), _weights(reference_run))


def test_resume_with_changed_config_is_refused_but_longer_training_is_allowed(tiny_folder, tmp_path):
    """Tried: resume with another lr (refused, naming lr and both values), then with more epochs (allowed)."""
    run = tmp_path / "run"
    train(micro_config(tiny_folder, epochs=1), run, progress=False)
    with pytest.raises(TrainingError, match=r"lr: 0\.002 -> 0\.01"):
        train(micro_config(tiny_folder, epochs=1, lr=0.01), run, resume=True, progress=False)
    assert rundir.read_status(run)["state"] == "failed" and "lr" in rundir.read_status(run)["error"]
    status = train(micro_config(tiny_folder, epochs=2), run, resume=True, progress=False)
    assert status["state"] == "completed" and status["epoch"] == 2
    with pytest.raises(TrainingError, match="already has a checkpoint"):
        train(micro_config(tiny_folder, epochs=3), run, progress=False)  # no silent overwrite


def test_corrupt_checkpoint_gives_a_clear_error(tiny_folder, tmp_path):
    """Tried: last.pt truncated to half its size; resume and sampling must both name the file."""
    run = tmp_path / "run"
    train(micro_config(tiny_folder, epochs=1), run, progress=False)
    last = rundir.checkpoint_path(run, "last")
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="last.pt is corrupt"):
        train(micro_config(tiny_folder, epochs=2), run, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_for_sampling(run, "last")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_for_sampling(tmp_path / "empty")


def test_out_of_memory_is_reported_with_a_smaller_batch_size(tiny_folder, tmp_path, monkeypatch):
    """Tried: a forward pass that asks the CPU allocator for 2^50 bytes (a real allocation failure, not a
    fake exception). The run must fail with a message suggesting a smaller batch size."""
    from diffusion import unet

    def greedy_forward(self, x, t, labels):
        return torch.empty(2 ** 50, dtype=torch.uint8)
    monkeypatch.setattr(unet.UNet, "forward", greedy_forward)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"out of memory.*--batch-size 4"):
        train(micro_config(tiny_folder, epochs=1), run, progress=False)
    st = rundir.read_status(run)
    assert st["state"] == "failed" and "smaller batch size" in st["error"]
    assert "Traceback" in (run / "train.log").read_text()


def test_bad_settings_fail_before_training(tiny_folder, tmp_path):
    """Tried: an unknown sampler and a missing data folder; both clear ValueErrors, status "failed"."""
    with pytest.raises(ValueError, match="sampler"):
        train(micro_config(tiny_folder, sampler="euler-magic"), tmp_path / "a", progress=False)
    assert rundir.read_status(tmp_path / "a")["state"] == "failed"
    with pytest.raises(ValueError, match="does not exist"):
        train(micro_config(tmp_path / "nowhere"), tmp_path / "b", progress=False)


def test_generate_writes_pngs_per_class_and_gifs(reference_run, tmp_path):
    """Tried: 3 samples of one class with --gif, and 1 of every class; same seed, same class -> same image."""
    out = tmp_path / "out"
    paths = generate_to_dir(reference_run, out, classes=["red"], n=3, steps=3, sampler="dpm++2m", guidance=2.0,
                            seed=1, gif=True, device="cpu")
    assert [p.relative_to(out).as_posix() for p in paths] == ["red/0.png", "red/1.png", "red/2.png"]
    gif = Image.open(out / "red" / "0.gif")
    assert gif.n_frames >= 3
    all_paths = generate_to_dir(reference_run, tmp_path / "all", n=1, steps=3, guidance=2.0, seed=1, device="cpu")
    assert sorted(p.parent.name for p in all_paths) == ["blue", "green", "red"]
    import numpy as np
    same = np.asarray(Image.open(all_paths[-1]), dtype=int) - np.asarray(Image.open(out / "red" / "0.png"), dtype=int)
    assert np.abs(same).max() <= 2  # same noise; only float rounding differs between batch sizes
    other = np.asarray(Image.open(out / "red" / "1.png"), dtype=int) - np.asarray(Image.open(out / "red" / "0.png"))
    assert np.abs(other).max() > 10
    with pytest.raises(ValueError, match="unknown class"):
        generate_to_dir(reference_run, out, classes=["purple"], n=1, steps=1, device="cpu")


def test_minutes_budget_stops_the_run_and_still_writes_final_samples(tiny_folder, tmp_path):
    """Tried: a 0.01-minute budget with no epoch limit; the run must stop on its own as "completed", log the
    budget as the reason, and leave a final grid, last.pt and best.pt."""
    run = tmp_path / "run"
    status = train(micro_config(tiny_folder, epochs=None, minutes=0.01, sample_every=None), run, progress=False)
    assert status["state"] == "completed" and status["step"] >= 1 and status["minutes"] == 0.01
    assert "time budget reached" in (run / "train.log").read_text()
    assert rundir.list_epochs(run) and rundir.checkpoint_path(run, "best").exists()


def test_above_32_px_the_schedule_is_shifted_and_a_resume_keeps_what_the_run_was_trained_with(tiny_folder, tmp_path):
    """Tried: a 64 px run (shift 2 log(32/64) saved with its weights, and used when sampling from them); a 32 px run
    (no shift); then a 64 px run saved as before shifts existed (schedule without one) resumed for another epoch: it
    must go on unshifted rather than change its noise halfway."""
    import math

    run64 = tmp_path / "run64"
    train(micro_config(tiny_folder, image_size=64, epochs=1, sample_every=None), run64, progress=False)
    saved = torch.load(run64 / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert saved["schedule"]["shift"] == pytest.approx(2 * math.log(32 / 64))
    assert load_for_sampling(run64, "last")[1].shift == pytest.approx(2 * math.log(32 / 64))

    run32 = tmp_path / "run32"
    train(micro_config(tiny_folder, image_size=32, epochs=1, sample_every=None), run32, progress=False)
    assert torch.load(run32 / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["schedule"].get(
        "shift") == 0.0

    del saved["schedule"]["shift"]  # as a run trained before this change saved it
    torch.save(saved, run64 / "checkpoints" / "last.pt")
    train(micro_config(tiny_folder, image_size=64, epochs=2, sample_every=None), run64, resume=True, progress=False)
    resumed = torch.load(run64 / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert resumed["step"] > saved["step"] and resumed["schedule"]["shift"] == 0.0
