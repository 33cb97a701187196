"""Data-parallel training under torchrun: 2 CPU processes with the gloo backend, rank 0 writes."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from diffusion import rundir
from diffusion.train import write_run_config
from tests.diffusion.diffusion_helpers import micro_config

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_cpu_processes_train_one_run(tiny_folder, tmp_path):
    """Tried: `torchrun --nproc_per_node 2 -m diffusion.train RUN` for 2 epochs of the 24-image set at a global
    batch of 8 (4 per rank). One status/checkpoint must record world size 2, 3 steps per epoch (12 images per
    rank) and a finished run; no rank may crash."""
    run = tmp_path / "run"
    run.mkdir()
    write_run_config(run, micro_config(tiny_folder, epochs=2, batch_size=8))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "diffusion.train", str(run), "--no-progress"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = rundir.read_status(run)
    assert status["state"] == "completed" and status["world_size"] == 2
    assert status["steps_per_epoch"] == 3 and status["step"] == 6
    state = torch.load(rundir.checkpoint_path(run, "last"), map_location="cpu", weights_only=False)
    assert state["world_size"] == 2 and len(state["rng"]["noise"]) == 2  # every rank's RNG, for resume
    assert state["rng"]["noise"][0].tolist() != state["rng"]["noise"][1].tolist()  # ranks draw different noise
    assert rundir.list_epochs(run) == [1, 2]
    assert (run / "train.log").read_text().count("run completed") == 1  # only rank 0 logs
