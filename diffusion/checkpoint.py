"""Atomic checkpoint files and loading a trained model back for sampling.

A checkpoint holds everything a resume needs to continue bit-for-bit: model, EMA, optimiser, step, epoch,
position within the epoch, every RNG state, the config and class names.
"""
from __future__ import annotations

from pathlib import Path

import torch

from core.files import write_with

from . import rundir
from .config import TrainConfig
from .schedule import CosineSchedule
from .unet import UNet, UNetConfig


class CheckpointError(RuntimeError):
    """A checkpoint is missing or unreadable; the message names the file and what to do."""


def save_atomic(state: dict, path: Path) -> None:
    """torch.save to a temp file in the same directory, fsync, rename: a crash never leaves half a checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_with(path, lambda f: torch.save(state, f))


def load(path: Path, map_location="cpu") -> dict:
    """Load a checkpoint dict; a missing, truncated or foreign file raises CheckpointError naming it."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a Menagerie checkpoint ({type(e).__name__}: {e}); "
                              "delete it, or resume from the other checkpoint of the run") from None
    if not isinstance(state, dict) or "model_config" not in state or "ema" not in state:
        raise CheckpointError(f"checkpoint {path} is not a Menagerie diffusion checkpoint (missing model or EMA)")
    return state


def parse_which(which) -> str | int:
    """"best", "last" or an epoch number (int or digits) -> "best" / "last" / int; ValueError otherwise."""
    if isinstance(which, int) or str(which).isdigit():
        return int(which)
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best', 'last' or an epoch number, got {which!r}")
    return which


def load_for_sampling(run_dir: Path, which="best", device="cpu"):
    """(ema_model, schedule, config, class_names) from a run's best.pt, last.pt or an epoch's kept weights.

    which="best" falls back to last.pt when no best.pt exists yet (a run that has not been evaluated).
    """
    run_dir = Path(run_dir)
    which = parse_which(which)
    path = rundir.checkpoint_path(run_dir, which)
    if which == "best" and not path.exists():
        path = rundir.checkpoint_path(run_dir, "last")
    if not path.exists():
        if isinstance(which, int):
            kept = rundir.list_checkpoint_epochs(run_dir)
            raise CheckpointError(f"run {run_dir} kept no weights for epoch {which}; epochs kept: "
                                  f"{', '.join(map(str, kept)) or 'none'} (or use best / last)")
        raise CheckpointError(f"run {run_dir} has no checkpoint yet (looked for checkpoints/{which}.pt)")
    state = load(path)
    model = UNet(UNetConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["ema"]["model"])
    model.to(device).eval()
    schedule = CosineSchedule.from_dict(state["schedule"])
    config = TrainConfig.from_dict(state["config"])
    return model, schedule, config, list(state["class_names"])
