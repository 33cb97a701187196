"""Training runs driven from the web process: create, queue, launch, cancel, resume, and read back their files.

The web process never imports torch. A run is a directory (diffusion/rundir.py) plus a `Run` row; training is
`python -m diffusion.train RUN_DIR [--resume]` in its own session, so it outlives page loads and server restarts,
and the truth about it is in its files. One run trains at a time per device: `schedule()` — called at app start
and on the trainer's page loads and polls, under a file lock so several server workers agree — notices runs
whose process died without a final status (marked failed, with the log tail) and starts the oldest queued run on
each free device. No extra daemon.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Run, Snapshot, utcnow
from core.processes import log_tail, process_alive, spawn_detached
from diffusion import rundir
from diffusion.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = ("completed", "failed", "cancelled")
ACTIVE = ("starting", "running")
STALE_AFTER_S = 60.0  # no heartbeat for this long (the trainer beats every 3 s) and no process: crashed
CANCEL_MARK = "web-cancel"  # our note that the user cancelled (the trainer clears `cancel` when it starts)
PROCESS_LOG = "process.log"  # the subprocess's stdout/stderr (tracebacks from before train.log exists)



class RunError(Exception):
    """The action cannot be done to this run now; the message says why and nothing changed."""


# --- where things are ---------------------------------------------------------------------------------------

def runs_root(instance: Path) -> Path:
    return Path(instance) / "runs"


def run_path(instance: Path, run_id: str) -> Path:
    return runs_root(instance) / run_id


def device_key(device: str) -> str:
    """The device a run will train on, worked out without torch: "auto" is cuda when an NVIDIA driver is present."""
    if device != "auto":
        return device
    has_driver = Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
    return "cuda" if has_driver and not hidden else "cpu"


# --- reading a run ------------------------------------------------------------------------------------------

@dataclass
class RunView:
    """Everything a page shows about one run, read from its files and row."""
    id: str
    path: Path
    state: str  # queued | starting | running | completed | failed | cancelled
    status: dict
    config: dict
    row: Run | None
    epochs_with_grids: list[int] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return list(self.config.get("class_names") or [])

    @property
    def name(self) -> str:
        """The name people gave the run, else one derived from its id (older runs, command-line runs)."""
        return (self.row.name if self.row is not None and self.row.name else None) or derived_name(self.id, self.config)

    @property
    def image_size(self) -> int | None:
        size = self.config.get("image_size")
        return size if isinstance(size, int) and size > 0 else None

    @property
    def epochs_done(self) -> int:
        epoch = self.status.get("epoch")
        return epoch if isinstance(epoch, int) and epoch >= 0 else 0

    @property
    def stop_reason(self) -> str | None:
        """Why a completed run ended: "epochs" (its target reached) or "budget" (its time ran out). Read from
        status.json's `stop_reason` when the trainer writes it, else worked out from the epochs and the budget."""
        if self.state != "completed":
            return None
        reason = self.status.get("stop_reason")
        if reason in ("epochs", "budget"):
            return reason
        if self.target_epochs and self.epochs_done >= self.target_epochs:
            return "epochs"
        return "budget" if self.config.get("minutes") else None

    @property
    def summary(self) -> str:
        """How far the run got, in words that agree with its log: "15 epochs · stopped by the 10-minute budget"
        once it ended, "epoch 3 of 50" (epochs done) while it trains."""
        done = self.epochs_done
        epochs = f"{done} epoch{'' if done == 1 else 's'}"
        if self.finished:
            minutes = self.config.get("minutes") or 0
            reason = {"epochs": "complete",
                      "budget": f"stopped by the {minutes:g}-minute budget"}.get(self.stop_reason)
            if self.state == "cancelled":
                reason = "cancelled"
            elif self.state == "failed":
                reason = "failed"
            return f"{epochs} · {reason}" if reason else epochs
        if self.target_epochs:
            return f"epoch {done} / {self.target_epochs}"
        return f"{epochs} done"

    def grid_label(self, epoch: int) -> str:
        """What an epoch's grid shows, in the numbers of the log. The preview before any training is epoch 0. A run
        stopped mid-epoch (budget, cancel) samples once more at its last step: that grid is "15 epochs + 3 steps"
        (older trainers filed it under the epoch in progress, "epoch 16", which the log never reached)."""
        if epoch == 0:
            return "before training"
        done = self.epochs_done
        if self.finished and epoch == self.latest_grid_epoch and epoch in (done, done + 1):
            per_epoch = self.status.get("steps_per_epoch")
            step = self.status.get("latest_grid_step", self.status.get("step"))
            if isinstance(per_epoch, int) and isinstance(step, int) and per_epoch > 0 and step > done * per_epoch:
                extra = step - done * per_epoch
                return f"end of training · {done} epochs + {extra} step{'' if extra == 1 else 's'}"
            if epoch == done + 1:
                return f"end of training · after epoch {done}"
        return f"epoch {epoch}"

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    @property
    def target_epochs(self) -> int | None:
        return self.config.get("epochs")

    @property
    def progress(self) -> float | None:
        """Fraction done (0..1) from steps, the epoch target or the time budget; None before training starts."""
        if self.state == "completed":
            return 1.0
        step, total = self.status.get("step"), self.status.get("total_steps")
        if isinstance(step, int) and isinstance(total, int) and total > 0:
            return min(1.0, step / total)
        return None

    @property
    def eta_text(self) -> str:
        eta = self.status.get("eta_seconds")
        if self.state != "running" or not isinstance(eta, (int, float)):
            return ""
        return duration_text(eta)

    @property
    def latest_grid_epoch(self) -> int | None:
        return self.epochs_with_grids[-1] if self.epochs_with_grids else None

    def preview(self, most: int = 3) -> list[str]:
        """A glance at the newest samples: the first picture of up to `most` classes (paths relative to the run)."""
        epoch = self.latest_grid_epoch
        if epoch is None:
            return []
        firsts = (rundir.class_sample_paths(self.path, epoch, name)[:1] for name in self.class_names[:most])
        return [str(paths[0].relative_to(self.path)) for paths in firsts if paths]

    @property
    def has_checkpoint(self) -> bool:
        return rundir.checkpoint_path(self.path, "last").exists()

    @property
    def can_resume(self) -> bool:
        return self.state in ("cancelled", "failed")

    @property
    def can_extend(self) -> bool:
        return self.state in TERMINAL and self.has_checkpoint

    @property
    def error(self) -> str:
        return self.status.get("error") or ""

    @property
    def snapshot_id(self) -> str | None:
        return self.config.get("snapshot_id")

    @property
    def created(self) -> str:
        return str(self.config.get("created", ""))[:19].replace("T", " ")

    def log_tail(self, lines: int = 25) -> str:
        text = log_tail(self.path / "train.log", lines)
        if self.state == "failed" or not text:
            extra = log_tail(self.path / PROCESS_LOG, lines)
            if extra and extra not in text:
                text = (text + "\n" + extra).strip()
        return text

    def metrics(self) -> list[dict]:
        return rundir.read_metrics(self.path)


# --- names ----------------------------------------------------------------------------------------------------

NAME_MAX = 80
ADJECTIVES = ("amber", "brave", "calm", "dapper", "eager", "fuzzy", "gentle", "happy", "jolly", "keen", "lucky",
              "mellow", "nimble", "olive", "plucky", "quiet", "rosy", "sunny", "tidy", "umber", "vivid", "witty",
              "zesty", "bold", "cosy", "dusky", "frosty", "golden", "hazel", "misty", "silver", "swift")
ANIMALS = ("otter", "badger", "heron", "lynx", "panda", "gecko", "koala", "lemur", "marten", "newt", "ocelot",
           "puffin", "quokka", "raven", "stoat", "tapir", "urchin", "vole", "walrus", "yak", "zebra", "bison",
           "crane", "dingo", "egret", "ferret", "gibbon", "hare", "ibis", "jackal", "kiwi", "mole")
# Characters a name may not hold: controls (incl. newlines and tabs), line/paragraph separators, and the bidi
# controls that make text read in another order than it is stored.
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def derived_name(run_id: str, config: dict | None = None) -> str:
    """A readable, stable name from the run's id and settings: "Amber otter · small 32 px"."""
    digest = hashlib.sha256(run_id.encode("utf-8")).digest()
    words = f"{ADJECTIVES[digest[0] % len(ADJECTIVES)]} {ANIMALS[digest[1] % len(ANIMALS)]}".capitalize()
    config = config or {}
    detail = " ".join(str(part) for part in (config.get("preset"),
                                             f"{config['image_size']} px" if config.get("image_size") else None)
                      if part)
    return f"{words} · {detail}" if detail else words


def check_name(text) -> str:
    """A run name as typed, trimmed; RunError saying what is wrong when it is empty, too long or holds
    characters that would hide or reorder what it says."""
    name = str(text or "").strip()
    if not name:
        raise RunError("a run name needs at least one character")
    if len(name) > NAME_MAX:
        raise RunError(f"a run name has at most {NAME_MAX} characters, this one has {len(name)}")
    bad = sorted({f"U+{ord(c):04X}" for c in name
                  if c in _BIDI or unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs", "Co", "Cn")})
    if bad:
        raise RunError("a run name cannot hold control or text-direction characters (found "
                       + ", ".join(bad[:5]) + ")")
    return name


def rename(session: Session, row: Run, text) -> str:
    """Give a run a new name (checked by `check_name`); returns it. The id, folder and URLs stay."""
    row.name = check_name(text)
    session.commit()
    return row.name


def duration_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else (f"{minutes}m {secs:02d}s" if minutes else f"{secs}s")


def displayed_state(row: Run | None, status: dict) -> str:
    """The file's state, except that a launched run whose process has not reported yet shows as starting."""
    state = status.get("state") or "queued"
    if state == "queued" and row is not None and row.launched is not None:
        return "starting"
    return state


def view_run(instance: Path, run_id: str, row: Run | None = None) -> RunView | None:
    path = run_path(instance, run_id)
    config = rundir.read_json(path / "config.json", default=None)
    if config is None:
        return None
    status = rundir.read_status(path)
    state = displayed_state(row, status)
    if row is None and state == "running" and not rundir.is_alive(status, STALE_AFTER_S):
        state = "failed"  # a command-line run whose heartbeat stopped (shown only; its files are not ours)
        status = {**status, "error": status.get("error") or "no heartbeat from the training process: it stopped"}
    return RunView(run_id, path, state, status, config, row, rundir.list_epochs(path))


def list_runs(session: Session, instance: Path) -> list[RunView]:
    """Runs newest first: those the web launched (rows) and run folders made by `manage.py train` (no row)."""
    rows = {r.id: r for r in session.scalars(select(Run))}
    root = runs_root(instance)
    ids = set(rows)
    if root.is_dir():
        ids |= {p.name for p in root.iterdir() if p.is_dir() and (p / "config.json").exists()}
    views = [v for run_id in sorted(ids, reverse=True) if (v := view_run(instance, run_id, rows.get(run_id)))]
    return views


# --- processes ----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def scheduler_lock(instance: Path):
    """One scheduler at a time across server workers and processes (an advisory file lock)."""
    root = runs_root(instance)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".scheduler.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def launch(session: Session, instance: Path, row: Run) -> subprocess.Popen:
    """Start (or resume, when a checkpoint exists) the run's training process. The caller holds the lock."""
    path = run_path(instance, row.id)
    resume = rundir.checkpoint_path(path, "last").exists()
    rundir.clear_cancel(path)
    (path / CANCEL_MARK).unlink(missing_ok=True)
    # Written before the process starts: afterwards status.json belongs to the trainer alone.
    rundir.write_status(path, state="queued", launched_at=time.time(), error=None)
    cmd = [sys.executable, "-m", "diffusion.train", str(path), "--no-progress"] + (["--resume"] if resume else [])
    proc = spawn_detached(cmd, path / PROCESS_LOG)
    row.pid, row.launched = proc.pid, utcnow()
    session.commit()
    return proc


def _settle_dead(view: RunView) -> None:
    """A started run whose process is gone but whose status is not final: cancelled if the user asked, else failed."""
    status = rundir.read_status(view.path)  # re-read: it may have finished cleanly a moment ago
    if status.get("state") in TERMINAL:
        return
    if (view.path / CANCEL_MARK).exists():
        rundir.write_status(view.path, state="cancelled", ended=time.time())
        return
    pid = status.get("pid") or (view.row.pid if view.row else None)
    last = log_tail(view.path / PROCESS_LOG, 8) or log_tail(view.path / "train.log", 8)
    rundir.write_status(view.path, state="failed", ended=time.time(),
                        error=f"the training process (pid {pid}) stopped without reporting an end: it was killed or "
                              f"crashed." + (f" Last output:\n{last}" if last else ""))


def refresh(view: RunView) -> RunView:
    """Notice a crashed or killed run (its process is gone, no final status) and record it. The caller locks."""
    if view.state not in ACTIVE or view.row is None:
        return view
    if view.state == "starting":
        alive = process_alive(view.row.pid, expect=view.id)
    else:
        ours = view.row.launched is not None
        pid = view.status.get("pid")
        heartbeat = view.status.get("heartbeat")
        fresh = isinstance(heartbeat, (int, float)) and time.time() - heartbeat < STALE_AFTER_S
        alive = process_alive(pid, expect=view.id if ours else None) if pid else fresh
        if alive and (view.path / CANCEL_MARK).exists() and not rundir.cancel_requested(view.path):
            rundir.request_cancel(view.path)  # the trainer cleared an early request when it started: ask again
    if not alive:
        _settle_dead(view)
        status = rundir.read_status(view.path)
        view.status, view.state = status, displayed_state(view.row, status)
    return view


def schedule(session: Session, instance: Path) -> list[str]:
    """Record dead runs, then start the oldest queued run on every free device. Returns the ids started."""
    instance = Path(instance)
    if not runs_root(instance).is_dir():
        return []
    started = []
    with scheduler_lock(instance):
        session.expire_all()
        busy: set[str] = set()
        waiting: list[tuple[float, RunView]] = []
        for row in session.scalars(select(Run)):
            view = view_run(instance, row.id, row)
            if view is None or view.finished:
                continue
            view = refresh(view)
            if view.state in ACTIVE:
                busy.add(row.device)
            elif view.state == "queued":
                waiting.append((float(view.status.get("queued_at") or 0), view))
        for _, view in sorted(waiting, key=lambda item: (item[0], item[1].id)):
            if view.row.device not in busy:
                launch(session, instance, view.row)
                busy.add(view.row.device)
                started.append(view.id)
    return started


# --- creating and changing runs -----------------------------------------------------------------------------

def create_run(session: Session, instance: Path, settings: dict, *, snapshot: Snapshot | None = None,
               class_names: list[str] | None = None) -> Run:
    """A new queued run: its folder with config.json and status.json, and its row. Raises ValueError (nothing
    written) when the settings are not valid training settings. Call `schedule()` to start it."""
    config = TrainConfig.from_dict(settings).validate()
    path = rundir.new_run_dir(runs_root(instance))
    payload = config.to_dict()
    payload["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    payload["snapshot_id"] = snapshot.id if snapshot else None
    if class_names:
        payload["class_names"] = list(class_names)
    rundir.write_json_atomic(path / "config.json", payload)
    rundir.write_status(path, state="queued", queued_at=time.time(), epochs=config.epochs, minutes=config.minutes,
                        step=0, epoch=0)
    row = Run(id=path.name, snapshot_id=snapshot.id if snapshot else None, device=device_key(config.device),
              name=derived_name(path.name, payload))
    session.add(row)
    session.commit()
    return row


def cancel(session: Session, instance: Path, row: Run) -> str:
    """Stop a run cleanly (the trainer saves a checkpoint and ends "cancelled"); a queued one never starts."""
    with scheduler_lock(instance):
        view = refresh(view_run(instance, row.id, row))
        if view.state == "queued":
            rundir.write_status(view.path, state="cancelled", ended=time.time())
            return "Removed from the queue; it never started."
        if view.state not in ACTIVE:
            raise RunError(f"run {row.id} is already {view.state}; nothing to cancel")
        (view.path / CANCEL_MARK).write_text(f"{time.time()}\n")
        rundir.request_cancel(view.path)
        if view.state == "starting" and row.pid:
            # Still loading: the trainer may clear the request file when it starts, so ask by signal as well.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(row.pid, signal.SIGTERM)
        return "Cancel requested: the run stops after the current step and saves a checkpoint."


def _requeue(session: Session, view: RunView) -> None:
    rundir.clear_cancel(view.path)
    (view.path / CANCEL_MARK).unlink(missing_ok=True)
    rundir.write_status(view.path, state="queued", queued_at=time.time(), error=None, eta_seconds=None,
                        epochs=view.config.get("epochs"), minutes=view.config.get("minutes"))
    view.row.launched, view.row.pid = None, None
    session.commit()


def resume(session: Session, instance: Path, row: Run) -> str:
    """Queue a cancelled or failed run again; it continues from its last checkpoint (or starts over without one)."""
    with scheduler_lock(instance):
        view = refresh(view_run(instance, row.id, row))
        if view.state == "completed":
            raise RunError(f"run {row.id} has completed; extend it to train more epochs")
        if not view.can_resume:
            raise RunError(f"run {row.id} is {view.state}; only a cancelled or failed run can be resumed")
        _requeue(session, view)
    return ("Queued to continue from its last checkpoint." if view.has_checkpoint
            else "Queued to start again (it had no checkpoint yet).")


def extend(session: Session, instance: Path, row: Run, *, epochs: int | None = None,
           minutes: float | None = None) -> str:
    """Add epochs (or minutes, for a time-budget run) to a finished run and queue it to continue."""
    if epochs is None and minutes is None:
        raise RunError("give a number of epochs (or minutes) to add")
    if epochs is not None and (not isinstance(epochs, int) or not 1 <= epochs <= 100_000):
        raise RunError(f"epochs to add must be a whole number from 1 to 100000, got {epochs!r}")
    if minutes is not None and not 0 < minutes <= 10_000:
        raise RunError(f"minutes to add must be a number above 0 and at most 10000, got {minutes!r}")
    with scheduler_lock(instance):
        view = refresh(view_run(instance, row.id, row))
        if not view.can_extend:
            raise RunError(f"run {row.id} is {view.state}" + ("" if view.has_checkpoint else " without a checkpoint")
                           + "; only a finished run with a checkpoint can be extended (cancel a running one first)")
        config = dict(view.config)
        done_epochs = int(view.status.get("epoch") or 0)
        changes = []
        if epochs is not None:
            if config.get("epochs") is None:
                raise RunError("this run trains for a time budget, not epochs: add minutes instead")
            config["epochs"] = max(int(config["epochs"]), done_epochs) + epochs
            changes.append(f"{config['epochs']} epochs")
        if minutes is not None:
            if config.get("minutes") is None:
                raise RunError("this run trains for a number of epochs, not a time budget: add epochs instead")
            config["minutes"] = round(float(config["minutes"]) + minutes, 4)
            changes.append(f"{config['minutes']:g} minutes")
        rundir.write_json_atomic(view.path / "config.json", config)
        view.config = config
        _requeue(session, view)
    return f"Extended to {' and '.join(changes)}; queued to continue from its last checkpoint."


# --- metrics for the pages ----------------------------------------------------------------------------------

@dataclass
class Chart:
    """A line chart as SVG coordinates (no JavaScript chart library)."""
    points: str
    width: int
    height: int
    y_min: float
    y_max: float
    x_max: int
    count: int


def loss_chart(metrics: list[dict], width: int = 560, height: int = 160, max_points: int = 400) -> Chart | None:
    """Training loss against step, thinned to at most `max_points` points."""
    train = [(m["step"], m["loss"]) for m in metrics
             if m.get("kind") == "train" and isinstance(m.get("loss"), (int, float))
             and isinstance(m.get("step"), (int, float))]
    if not train:
        return None
    stride = max(1, len(train) // max_points)
    train = train[::stride] + ([train[-1]] if (len(train) - 1) % stride else [])
    xs, ys = [s for s, _ in train], [loss for _, loss in train]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    pad = 6
    x_span, y_span = (x_hi - x_lo) or 1, (y_hi - y_lo) or 1
    pts = " ".join(f"{pad + (x - x_lo) / x_span * (width - 2 * pad):.1f},"
                   f"{height - pad - (y - y_lo) / y_span * (height - 2 * pad):.1f}" for x, y in zip(xs, ys))
    return Chart(pts, width, height, y_lo, y_hi, int(x_hi), len(train))


def read_guidance_sweep(view: RunView) -> dict | None:
    """The end-of-run guidance sweep (`guidance.json`, written by diffusion.guidance): its rows, the chosen setting
    and why; None when the run has none (still training, evaluation off, or an older run)."""
    sweep = rundir.read_json(view.path / "guidance.json", default=None)
    return sweep if isinstance(sweep, dict) and isinstance(sweep.get("rows"), list) else None


def time_spent(status: dict) -> dict | None:
    """Where the run's time went, from status.json: training (what the budget counts), previews and evaluation (and
    with the guidance sweep, their share of training), and the evaluator's fitting (outside the budget)."""
    train_s = status.get("train_s")
    if not isinstance(train_s, (int, float)):
        return None
    spent = {"train_s": train_s}
    for key in ("preview_s", "evaluator_fit_s", "sweep_s"):
        if isinstance(status.get(key), (int, float)):
            spent[key] = status[key]
    if "preview_s" in spent and train_s > 0:  # the guidance sweep shares the run's bound with previews
        spent["preview_share"] = (spent["preview_s"] + spent.get("sweep_s", 0.0)) / train_s
    return spent


def latest_eval(metrics: list[dict]) -> dict | None:
    evals = [m for m in metrics if m.get("kind") == "eval"]
    return evals[-1] if evals else None


FIGURE_KEYS = ("accuracy", "fid", "kid", "memorised_share")


def figures_at(metrics: list[dict], epoch: int) -> dict:
    """A run's figures for one epoch's samples: the mean training loss over that epoch (train records carry the
    epoch in progress, counted from 0) and the evaluation of that epoch's grid when it was scored."""
    figures: dict = {}
    losses = [m["loss"] for m in metrics if m.get("kind") == "train" and m.get("epoch") == epoch - 1
              and isinstance(m.get("loss"), (int, float))]
    if losses:
        figures["loss"] = sum(losses) / len(losses)
    evals = [m for m in metrics if m.get("kind") == "eval" and m.get("epoch") == epoch]
    if evals:
        figures.update({k: evals[-1][k] for k in FIGURE_KEYS if isinstance(evals[-1].get(k), (int, float))})
    return figures


# --- galleries ----------------------------------------------------------------------------------------------

MIN_TILE_PX = 96  # 3x a 32 px sample: smaller is too small to judge


def tile_px(image_size: int | None, per_row: int, width: int = 1080, largest: int = 192, gap: int = 8) -> int:
    """CSS pixels for one sample: a whole multiple of its size (crisp when pixelated), at least MIN_TILE_PX, and
    as large as `per_row` samples with their gaps allow within `width` (never above `largest`, unless the sample
    itself is larger). The default width is the page's, less the row labels."""
    if not image_size:
        return MIN_TILE_PX
    per_row = max(1, per_row)
    least = max(1, math.ceil(MIN_TILE_PX / image_size))
    fits = min((width - gap * (per_row - 1)) // per_row, largest) // image_size
    return image_size * max(least, fits)


def film_epochs(epochs: list[int], most: int = 12) -> list[int]:
    """At most `most` epochs spread evenly from the first to the last (both kept): a film strip that shows the
    whole course of training without a hundred rows."""
    if len(epochs) <= most:
        return list(epochs)
    picks = {epochs[round(i * (len(epochs) - 1) / (most - 1))] for i in range(most)}
    return sorted(picks)


@dataclass
class Neighbour:
    sha256: str  # "" when unknown
    distance: float | None
    path: str


@dataclass
class Nearest:
    """What nearest.json says about one picture; `found` False when there is no record (older runs)."""
    found: bool
    memorised: bool = False
    threshold: float | None = None
    neighbours: list[Neighbour] = field(default_factory=list)
    problem: str = ""


def read_nearest(picture: Path) -> Nearest:
    """The nearest training images of one run picture, from the `nearest.json` beside it (diffusion.rundir
    contract). A missing, unreadable or malformed record is "not found" with a reason, never an error."""
    path = rundir.nearest_path(picture.parent)
    try:
        record = rundir.read_json(path, default=None)
    except (OSError, ValueError):
        return Nearest(False, problem=f"{path.name} beside this picture cannot be read")
    if not isinstance(record, dict):
        return Nearest(False, problem=f"no {rundir.NEAREST} beside this picture: it was made before the "
                                      "nearest-image check was recorded")
    entry = (record.get("pictures") or {}).get(picture.name) if isinstance(record.get("pictures"), dict) else None
    if not isinstance(entry, dict):
        return Nearest(False, problem=f"{rundir.NEAREST} has no entry for {picture.name}")
    neighbours = []
    for item in entry.get("nearest") or []:
        if isinstance(item, dict):  # sha256 is None for training files the curator never had (an ImageFolder)
            distance = item.get("distance")
            sha = item.get("sha256") if isinstance(item.get("sha256"), str) else ""
            neighbours.append(Neighbour(sha, float(distance) if isinstance(distance, (int, float)) else None,
                                        str(item.get("path") or "")))
    threshold = record.get("threshold")
    return Nearest(True, memorised=entry.get("memorised") is True,
                   threshold=float(threshold) if isinstance(threshold, (int, float)) else None,
                   neighbours=neighbours)
