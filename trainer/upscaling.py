"""The learned upscaler and sticker-pack jobs, driven from the web process (which never imports torch).

Like a training run, each is a detached process whose files are the truth: `runs/<id>/upscaler/` (status.json
with a heartbeat, written by `python -m diffusion.upscale`), previews under `upscaler/previews/`, and pack jobs
under `runs/<id>/packs/<job>/` (an `exit_code` file when the command ends). A process that vanished without a
final status is shown, and recorded, as failed, with the end of its output.
"""
from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from core.files import write_atomic
from core.processes import log_tail, process_alive, recorded_exit, spawn_detached, spawn_recording_exit
from diffusion import rundir

SUBDIR = "upscaler"
PROCESS_LOG = "process.log"
STALE_AFTER_S = 30.0  # the upscaler beats every 3 s
MINUTES_RANGE = (0.5, 60.0)
PACKS = "packs"


ROOT = Path(__file__).resolve().parent.parent


class UpscalerError(Exception):
    """The action cannot be done now; the message says why and nothing changed."""


def folder(run_dir: Path) -> Path:
    return Path(run_dir) / SUBDIR


@dataclass
class UpscalerView:
    state: str  # none | queued | running | completed | failed | cancelled
    status: dict

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running")

    @property
    def progress(self) -> float:
        return float(self.status.get("progress") or 0.0)

    @property
    def has_model(self) -> bool:
        return bool(self.status.get("has_model"))

    @property
    def error(self) -> str:
        return str(self.status.get("error") or "")

    @property
    def scores(self) -> dict:
        return self.status.get("eval") or {}


def read(run_dir: Path) -> UpscalerView:
    """The upscaler's state; a process that died without saying so is recorded as failed."""
    d = folder(run_dir)
    status = rundir.read_status(d)
    state = status.get("state") or "none"
    if state in ("queued", "running") and not _alive(status):
        last = log_tail(d / PROCESS_LOG, 6) or log_tail(d / "train.log", 6)
        status = rundir.write_status(d, state="failed", ended=time.time(), error=(
            f"the upscaler process (pid {status.get('pid')}) stopped without reporting an end: it was killed or "
            "crashed." + (f" Last output:\n{last}" if last else "")))
        state = "failed"
    status["has_model"] = (d / "model.pt").exists()
    return UpscalerView(state, status)


def _alive(status: dict) -> bool:
    pid = status.get("pid")
    if status.get("state") == "queued":  # launched; the process has not written its first status yet
        if pid is None:
            return time.time() - float(status.get("launched_at") or 0) < 10
        return process_alive(pid)
    return rundir.is_alive(status, STALE_AFTER_S) and (pid is None or process_alive(pid))


def parse_minutes(raw) -> float:
    try:
        minutes = float(raw)
    except (TypeError, ValueError):
        raise UpscalerError(f"minutes {raw!r} must be a number from {MINUTES_RANGE[0]:g} to "
                            f"{MINUTES_RANGE[1]:g}") from None
    if not MINUTES_RANGE[0] <= minutes <= MINUTES_RANGE[1]:
        raise UpscalerError(f"minutes must be from {MINUTES_RANGE[0]:g} to {MINUTES_RANGE[1]:g} (got {minutes:g})")
    return minutes


def start(run_dir: Path, minutes: float) -> None:
    """Train the run's upscaler in a detached process (`python -m diffusion.upscale RUN_DIR --minutes M`)."""
    minutes = parse_minutes(minutes)
    view = read(run_dir)
    if view.active:
        raise UpscalerError("the upscaler is already training; wait for it or cancel it")
    config = rundir.read_json(Path(run_dir) / "config.json", default=None) or {}
    data = config.get("data")
    if not data or not Path(data).exists():
        raise UpscalerError(f"the run's images ({data or 'none recorded'}) are not on this machine any more, so "
                            "there is nothing to learn from")
    d = folder(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    rundir.clear_cancel(d)
    cmd = [sys.executable, "-m", "diffusion.upscale", str(run_dir), "--minutes", f"{minutes:g}"]
    rundir.write_json_atomic(rundir.status_path(d), {"state": "queued", "launched_at": time.time(),
                                                     "minutes": minutes, "progress": 0.0})
    proc = spawn_detached(cmd, d / PROCESS_LOG)
    rundir.write_status(d, pid=proc.pid)


def cancel(run_dir: Path) -> str:
    """Ask the training process to stop (it saves the model so far); returns what happened, in words."""
    view = read(run_dir)
    if not view.active:
        return "The upscaler is not training."
    d = folder(run_dir)
    rundir.request_cancel(d)
    pid = view.status.get("pid")
    if pid and process_alive(pid):
        try:
            os.kill(int(pid), signal.SIGTERM)
        except (ProcessLookupError, PermissionError, ValueError):
            pass
    return "Cancelling: the upscaler saves what it has learned and stops."


# --- processes (no database here: this module stays free of Flask and SQLAlchemy) ------------------------------

# --- previews: one sample through the learned upscaler ----------------------------------------------------------

def preview_path(run_dir: Path, rel: str, scale: int) -> Path:
    model = folder(run_dir) / "model.pt"
    stamp = model.stat().st_mtime_ns if model.exists() else 0
    key = hashlib.sha1(f"{rel}|{scale}|{stamp}".encode()).hexdigest()[:16]
    return folder(run_dir) / "previews" / f"{key}-x{scale}.png"


def preview(run_dir: Path, rel: str, scale: int, source_png: bytes) -> tuple[str, Path]:
    """("ready" | "working" | "failed", path) of the learned upscale of a run picture's sticker colour
    (`source_png`, from trainer.stickers.prepare); starts the job when there is no result yet."""
    out = preview_path(run_dir, rel, scale)
    if out.exists():
        return "ready", out
    job = out.with_suffix(".pid")
    if job.exists():
        return ("working" if process_alive(job.read_text().strip(), expect="diffusion.upscale") else "failed"), out
    if not (folder(run_dir) / "model.pt").exists():
        raise UpscalerError("the run has no trained upscaler yet: train it first")
    out.parent.mkdir(parents=True, exist_ok=True)
    source = out.with_name(out.stem + "-in.png")
    write_atomic(source, source_png, durable=False)
    cmd = [sys.executable, "-m", "diffusion.upscale", str(run_dir), "--apply", str(source), "--out", str(out),
           "--scale", str(scale)]
    proc = spawn_detached(cmd, out.with_suffix(".log"))
    job.write_text(str(proc.pid))
    return "working", out


# --- sticker packs: `manage.py stickers RUN --favourites` as a job --------------------------------------------

@dataclass
class PackJob:
    id: str
    path: Path
    state: str  # running | done | failed
    request: dict
    error: str = ""

    @property
    def zip_path(self) -> Path:
        return self.path / "pack.zip"


def start_pack(instance: Path, run_dir: Path, *, scale: int, upscaler: str, outline: int, outline_colour: str,
               colours: int) -> str:
    """Export the run's favourites as a sticker pack in a detached process; returns the job id."""
    job_id = f"{datetime.now():%Y%m%d-%H%M%S}-{os.urandom(2).hex()}"
    out = Path(run_dir) / PACKS / job_id
    out.mkdir(parents=True)
    request = {"scale": scale, "upscaler": upscaler, "outline": outline, "outline_colour": outline_colour,
               "colours": colours, "created": time.time()}
    rundir.write_json_atomic(out / "request.json", request)
    manage = Path(__file__).resolve().parent.parent / "manage.py"
    cmd = [sys.executable, str(manage), "stickers", "--instance", str(instance), str(Path(run_dir).name),
           "--favourites", "--scale", str(scale), "--upscaler", upscaler, "--outline", str(outline),
           "--outline-colour", outline_colour, "--colours", str(colours), "--out", str(out / "pack.zip"), "--json"]
    proc = spawn_recording_exit(cmd, out, out / "output.log")
    rundir.write_json_atomic(out / "job.json", {"pid": proc.pid})
    return job_id


def read_pack(run_dir: Path, job_id: str) -> PackJob | None:
    out = Path(run_dir) / PACKS / job_id
    request = rundir.read_json(out / "request.json", default=None)
    if request is None:
        return None
    code = recorded_exit(out)
    if code is not None:
        state = "done" if code == 0 and (out / "pack.zip").exists() else "failed"
    else:
        pid = (rundir.read_json(out / "job.json", default={}) or {}).get("pid")
        state = "running" if process_alive(pid) else "failed"
    error = (log_tail(out / "output.log", 8) or "the export stopped without a result") if state == "failed" else ""
    return PackJob(job_id, out, state, request, error)
