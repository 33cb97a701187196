"""The run directory contract, readable without torch (the web process imports this module).

Layout of `<runs>/<id>/`: config.json, status.json, metrics.jsonl, train.log, cancel (request flag),
checkpoints/{last,best}.pt and checkpoints/epoch_NNNN.pt (weights kept for sampling from that epoch),
samples/epoch_NNNN.png and samples/epoch_NNNN/<class>/<i>.png, and beside each class folder of pictures (samples
or generated/<job>/<class>/) a `nearest.json`: per picture, its nearest training images (see `nearest_path`).
Everything that others read is written atomically (temp file + rename) so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from core.files import new_dated_folder, write_atomic
from core.processes import process_alive

STATES = ("queued", "running", "completed", "failed", "cancelled")
_GRID_RE = re.compile(r"^epoch_(\d{4,})\.png$")
_EPOCH_CKPT_RE = re.compile(r"^epoch_(\d{4,})\.pt$")
NEAREST = "nearest.json"
GUIDANCE = "guidance.json"


def new_run_dir(runs_root: Path) -> Path:
    """Create and return a fresh run directory named like `20261122-071500-ab12` (sortable by time)."""
    return new_dated_folder(runs_root)


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON atomically and durably (core.files): a run's settings and status are their only record."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def read_json(path: Path, default=None):
    """Read a JSON file; `default` when it does not exist (or is empty, e.g. created but not yet written)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    if not text.strip():
        return default
    return json.loads(text)


def status_path(run_dir: Path) -> Path:
    return Path(run_dir) / "status.json"


def read_status(run_dir: Path) -> dict:
    """The run's status.json as a dict ({} if the run has not written one yet)."""
    return read_json(status_path(run_dir), default={}) or {}


def write_status(run_dir: Path, **fields) -> dict:
    """Merge `fields` into status.json (atomically) and stamp `updated`; returns the new status.

    A single writer per run is assumed (the training process); concurrent writers within it must hold a lock.
    """
    status = read_status(run_dir)
    status.update(fields)
    status["updated"] = time.time()
    write_json_atomic(status_path(run_dir), status)
    return status


def request_cancel(run_dir: Path) -> Path:
    """Ask a running training process to stop: it saves a checkpoint and ends in state "cancelled"."""
    path = Path(run_dir) / "cancel"
    path.write_text(f"{time.time()}\n", encoding="utf-8")
    return path


def cancel_requested(run_dir: Path) -> bool:
    return (Path(run_dir) / "cancel").exists()


def clear_cancel(run_dir: Path) -> None:
    try:
        (Path(run_dir) / "cancel").unlink()
    except FileNotFoundError:
        pass


def samples_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "samples"


def grid_path(run_dir: Path, epoch: int) -> Path:
    """Path of the sample grid written after `epoch` (one row per class, fixed noise)."""
    return samples_dir(run_dir) / f"epoch_{int(epoch):04d}.png"


def epoch_samples_dir(run_dir: Path, epoch: int) -> Path:
    return samples_dir(run_dir) / f"epoch_{int(epoch):04d}"


def list_epochs(run_dir: Path) -> list[int]:
    """Epochs that have a sample grid, ascending."""
    d = samples_dir(run_dir)
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := _GRID_RE.match(p.name)))


def safe_dir_name(name: str) -> str:
    """A class name usable as one path component (no separators, no '..'): the folder a class's pictures go in."""
    cleaned = re.sub(r"[\\/\x00]", "_", str(name)).strip()
    return cleaned if cleaned not in ("", ".", "..") else f"_{cleaned or 'class'}"


def class_sample_paths(run_dir: Path, epoch: int, class_name: str) -> list[Path]:
    """Per-class sample images of one epoch, in index order."""
    d = epoch_samples_dir(run_dir, epoch) / safe_dir_name(class_name)
    if not d.is_dir():
        return []
    files = [p for p in d.iterdir() if p.suffix == ".png" and p.stem.isdigit()]
    return sorted(files, key=lambda p: int(p.stem))


def checkpoint_path(run_dir: Path, which: str = "last") -> Path:
    """`which` is "last", "best" or an epoch number (int or digits): that epoch's kept weights."""
    if isinstance(which, int) or str(which).isdigit():
        return epoch_checkpoint_path(run_dir, int(which))
    return Path(run_dir) / "checkpoints" / f"{which}.pt"


def epoch_checkpoint_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"epoch_{int(epoch):04d}.pt"


def list_checkpoint_epochs(run_dir: Path) -> list[int]:
    """Epochs whose weights are kept (so the user can sample from them), ascending."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := _EPOCH_CKPT_RE.match(p.name)))


def nearest_path(picture_dir: Path) -> Path:
    """`nearest.json` of a class folder of pictures: {"threshold": float (the run's memorisation distance),
    "pictures": {"<i>.png": {"memorised": bool, "nearest": [{"sha256", "path" (absolute), "distance"}, ...]}}},
    distances RMS in [0, 1] over pixels (the evaluator's memorisation measure), nearest first."""
    return Path(picture_dir) / NEAREST


def guidance_path(run_dir: Path) -> Path:
    """`guidance.json`: the end-of-run guidance sweep, {"rows": [{"guidance", "interval" ([lo, hi] in sigma or
    null), "accuracy", "fid", "kid", "memorised_share", "grid" (path in the run), "seconds", ...}], "chosen": one
    of the rows (also written into config.json's guidance / guidance_interval), "why": text, "seconds": cost}."""
    return Path(run_dir) / GUIDANCE


def append_jsonl(path: Path, obj: dict) -> None:
    """Append one JSON line (flushed and fsynced so a crash loses at most the line being written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj, sort_keys=True, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run_dir: Path) -> list[dict]:
    """All metrics.jsonl records; a torn last line (crash mid-write) is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def measured_speeds(runs_root: Path, limit: int = 50) -> list[dict]:
    """Training speeds earlier runs measured here, newest first: {"run", "preset", "image_size", "batch_size",
    "device", "images_per_sec"} (median of the run's train records), from at most `limit` runs. Lets the new-run
    form say what a budget buys on this machine without loading torch or timing anything."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    out = []
    for run in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True)[:limit]:
        config = read_json(run / "config.json", default={}) or {}
        speeds = sorted(m["images_per_sec"] for m in read_metrics(run)
                        if m.get("kind") == "train" and isinstance(m.get("images_per_sec"), (int, float)))
        if not speeds or "preset" not in config:
            continue
        device = str(read_status(run).get("device") or "cpu").split(":")[0]
        out.append({"run": run.name, "preset": config["preset"], "image_size": config.get("image_size"),
                    "batch_size": config.get("batch_size"), "device": device,
                    "images_per_sec": speeds[len(speeds) // 2]})
    return out


def is_alive(status: dict, stale_after_s: float = 30.0, now: float | None = None) -> bool:
    """Is the run's process still working? Needs state "running", a fresh heartbeat and a live pid.

    The heartbeat is written by a background thread every few seconds, so a process that was killed
    (SIGKILL, power loss) is recognised within `stale_after_s` even if its pid got reused.
    """
    if not status or status.get("state") != "running":
        return False
    now = time.time() if now is None else now
    heartbeat = status.get("heartbeat")
    if not isinstance(heartbeat, (int, float)) or now - heartbeat > stale_after_s:
        return False
    pid = status.get("pid")
    return pid is None or process_alive(pid)
