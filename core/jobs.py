"""Long work outside the request: a job is a process with a folder, like a training run.

`instance/jobs/<id>/` holds `request.json` (kind, the function to run as "module:function", its arguments),
`status.json` (id, kind, state, done/total, message, result, error, pid, heartbeat; written atomically, one writer:
the job's process once it has started) and `job.log` (its stdout and stderr). A job runs as
`python -m core.jobs JOB_DIR` in its own session, so it outlives the request, the server worker and a server
restart; any worker reads its state from the files. A job whose process is gone without a final status reads as
"failed", with the reason and the end of its log. Stdlib only: the web process reads jobs without loading anything
else, and the job's function (in a feature's service) loads what it needs in the job's process (`Job.session`, the
database session every such function opens, loads core.db only when called).
"""
from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from core.files import new_dated_folder, write_atomic
from core.processes import log_tail, process_alive, reap, spawn_detached

TERMINAL = ("done", "failed")
JOB_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")
BEAT_EVERY_S = 0.5  # progress is written at most this often (and always at the end)
DATABASE_ENV = "MENAGERIE_DATABASE_URL"

class JobError(Exception):
    """An expected refusal inside a job (bad source, nothing to do): its message is shown as the job's error."""


def jobs_root(instance: Path | str) -> Path:
    return Path(instance) / "jobs"


def job_dir(instance: Path | str, job_id: str) -> Path | None:
    """The job's folder, or None for a string that cannot be a job id (never a path outside jobs/)."""
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        return None
    return jobs_root(instance) / job_id


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, default=str, sort_keys=True), durable=False)


# --- starting ----------------------------------------------------------------------------------------------------

def start(instance: Path | str, kind: str, target: str, args: dict, *, database_url: str | None = None,
          next_page: dict | None = None) -> str:
    """Start `target` ("package.module:function", called with a `Job`) in a new process; returns the job id.

    `database_url` goes to the process in its environment (never into a file: it may hold a password).
    `next_page` ({"endpoint", "values", "from_result"}) tells the web page where to go once the job is done.
    """
    reap()
    folder = new_dated_folder(jobs_root(instance))
    _write_json(folder / "request.json", {"kind": kind, "target": target, "args": args, "next": next_page or {},
                                          "created": time.time()})
    _write_json(folder / "status.json", {"id": folder.name, "kind": kind, "state": "queued", "done": 0,
                                         "total": None, "message": "starting", "created": time.time()})
    env = {DATABASE_ENV: database_url} if database_url else {}
    proc = spawn_detached([sys.executable, "-m", "core.jobs", str(folder)], folder / "job.log", env)
    write_atomic(folder / "pid", str(proc.pid), durable=False)
    return folder.name


# --- reading -----------------------------------------------------------------------------------------------------

@dataclass
class JobView:
    """A job as a page shows it."""
    id: str
    path: Path
    status: dict
    request: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.status.get("kind") or self.request.get("kind") or ""

    @property
    def state(self) -> str:
        return self.status.get("state") or "queued"

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    @property
    def done(self) -> int:
        return int(self.status.get("done") or 0)

    @property
    def total(self) -> int | None:
        total = self.status.get("total")
        return int(total) if isinstance(total, int) else None

    @property
    def percent(self) -> int | None:
        if self.state == "done":
            return 100
        if self.total:
            return min(100, int(100 * self.done / self.total))
        return None

    @property
    def message(self) -> str:
        return self.status.get("message") or ""

    @property
    def result(self) -> dict:
        return self.status.get("result") or {}

    @property
    def error(self) -> str:
        return self.status.get("error") or ""

    @property
    def args(self) -> dict:
        return self.request.get("args") or {}

    @property
    def next_page(self) -> dict:
        return self.request.get("next") or {}


def read(instance: Path | str, job_id: str) -> JobView | None:
    """The job's state from its files (None if there is no such job). A job whose process is gone without a final
    status is recorded as failed here, with the reason and the end of its log."""
    folder = job_dir(instance, job_id)
    if folder is None or not (folder / "status.json").exists():
        return None
    reap()
    view = JobView(job_id, folder, _read_json(folder / "status.json"), _read_json(folder / "request.json"))
    if not view.finished:
        pid = view.status.get("pid") or _read_pid(folder)
        if pid is not None and not process_alive(pid, expect=job_id):
            status = _read_json(folder / "status.json")  # re-read: it may have ended a moment ago
            if status.get("state") not in TERMINAL:
                last = log_tail(folder / "job.log")
                status.update(state="failed", ended=time.time(),
                              error=f"the job's process (pid {pid}) stopped without reporting an end: it was killed "
                                    "or crashed." + (f" Last output:\n{last}" if last else ""))
                _write_json(folder / "status.json", status)
            view.status = status
    return view


def _read_pid(folder: Path) -> int | None:
    try:
        return int((folder / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def find_unfinished(instance: Path | str, kind: str, args: dict, newest: int = 50) -> JobView | None:
    """A job of this kind with these arguments that is still running (so a second request joins it)."""
    root = jobs_root(instance)
    if not root.is_dir():
        return None
    for name in sorted((p.name for p in root.iterdir() if JOB_ID.match(p.name)), reverse=True)[:newest]:
        view = read(instance, name)
        if view is not None and not view.finished and view.kind == kind and view.args == args:
            return view
    return None


def all_jobs(instance: Path | str) -> list[JobView]:
    root = jobs_root(instance)
    if not root.is_dir():
        return []
    names = sorted((p.name for p in root.iterdir() if JOB_ID.match(p.name)), reverse=True)
    return [v for n in names if (v := read(instance, n)) is not None]


# --- inside the job's process ------------------------------------------------------------------------------------

class Job:
    """What a job's function gets: its arguments, its instance folder, the index's URL, and progress reporting."""

    def __init__(self, folder: Path):
        self.path = folder
        self.id = folder.name
        self.request = _read_json(folder / "request.json")
        self.args: dict = self.request.get("args") or {}
        self.kind: str = self.request.get("kind") or ""
        self.instance = folder.parent.parent
        self.database_url = os.environ.get(DATABASE_ENV) or f"sqlite:///{self.instance / 'menagerie.sqlite3'}"
        self.status = _read_json(folder / "status.json")
        self._last_write = 0.0

    def update(self, force: bool = False, **fields) -> None:
        """Merge fields into status.json and beat; written at most every BEAT_EVERY_S unless `force`."""
        self.status.update(fields)
        now = time.time()
        if force or now - self._last_write >= BEAT_EVERY_S:
            self.status["heartbeat"] = now
            _write_json(self.path / "status.json", self.status)
            self._last_write = now

    def progress(self, done: int | None = None, total: int | None = None, message: str | None = None,
                 add: int = 0) -> None:
        """Report progress: an absolute `done`, or `add` to it; `total` and a `message` when they change."""
        fields: dict = {"done": (self.status.get("done") or 0) + add if done is None else done}
        if total is not None:
            fields["total"] = total
        if message is not None:
            fields["message"] = message
        self.update(**fields)

    @contextmanager
    def session(self, *, spool: Path | str | None = None) -> Iterator:
        """A database session on the job's index (core.db.standalone_session, loaded only here), closed and its
        connections ended however the job ends; `spool`, a folder only this job uses (uploads held for it), is
        removed then too."""
        from core.db import standalone_session
        session = standalone_session(self.database_url)
        try:
            yield session
        finally:
            session.close()
            session.get_bind().dispose()
            if spool:
                shutil.rmtree(spool, ignore_errors=True)

    def counter(self, message: str) -> Callable[[int], Callable[[int], None]]:
        """A `progress_factory(total) -> update(n)` for library calls that report that way."""
        def factory(total: int) -> Callable[[int], None]:
            self.progress(done=0, total=total, message=message)
            return lambda n: self.progress(add=n)
        return factory


def _stop_on_sigterm(_signum, _frame) -> None:
    raise SystemExit(143)  # unwinds, so the job's own clean-up runs and its status says it was stopped


def run(folder: Path) -> int:
    """Run the job in `folder` (this process is the job's): status running, the function, then done or failed."""
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    job = Job(folder)
    try:  # "running" is written inside: a SIGTERM sent as soon as it is read still ends in a written "failed"
        job.update(force=True, state="running", pid=os.getpid(), started=time.time(), message="started")
        module, _, function = (job.request.get("target") or "").partition(":")
        result = getattr(importlib.import_module(module), function)(job)
    except JobError as exc:
        job.update(force=True, state="failed", error=str(exc), ended=time.time())
        return 1
    except SystemExit as exc:
        job.update(force=True, state="failed", ended=time.time(),
                   error="the job was stopped (SIGTERM) before it finished" if exc.code == 143 else
                   f"the job exited early (code {exc.code})")
        return 1
    except BaseException as exc:  # the traceback goes to job.log; the page says what went wrong in one line
        traceback.print_exc()
        job.update(force=True, state="failed", ended=time.time(), error=f"{type(exc).__name__}: {exc}")
        return 1
    job.update(force=True, state="done", result=result or {}, ended=time.time(), message="done")
    return 0


if __name__ == "__main__":
    from core import jobs as _jobs  # the module job functions import, not this __main__ copy: one JobError class
    sys.exit(_jobs.run(Path(sys.argv[1])))
