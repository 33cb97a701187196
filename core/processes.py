"""Detached worker processes, as training runs, jobs, upscaler runs and exports use them: start one that outlives
the request (and a server restart), tell whether it still runs, and read the end of its log.

One registry of the children this process started, so that `poll()` reaps them: a finished child that nobody asks
about would otherwise linger as a zombie, and a zombie's pid still answers `kill(pid, 0)`.

`python -m core.processes FOLDER CMD...` runs CMD and then records its exit status in FOLDER/exit_code
(`spawn_recording_exit`).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.files import write_atomic

ROOT = Path(__file__).resolve().parent.parent  # the project: children run from here and import it
EXIT_CODE = "exit_code"

_children: dict[int, subprocess.Popen] = {}


def spawn_detached(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `cmd` in its own session (a server restart or Ctrl-C does not take it down), stdout and stderr appended
    to `log_path`. `env` adds to this process's environment; OpenMP threads are told not to spin (shared cores)."""
    full_env = {**os.environ, **(env or {})}
    full_env["OMP_WAIT_POLICY"] = "PASSIVE"
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    _children[proc.pid] = proc
    return proc


def spawn_recording_exit(cmd: list[str], folder: Path, log_path: Path,
                         env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `cmd` as `spawn_detached` does, under a small watcher that writes its exit status to `folder/exit_code`
    when it ends (see `recorded_exit`), so any server worker, or a server restarted meanwhile, tells done from
    failed. The file is written through core.files, durably: it is the only record of how the command ended. The
    process returned is the watcher; it lives as long as `cmd` and leads the process group of both."""
    return spawn_detached([sys.executable, "-m", "core.processes", str(folder), *cmd], log_path, env)


def recorded_exit(folder: Path) -> int | None:
    """The exit status `spawn_recording_exit` wrote for the command of `folder` (a signal N reads as 128 + N, as a
    shell reports it); None while the command runs, or when its watcher was killed before it could write one."""
    try:
        return int((Path(folder) / EXIT_CODE).read_text().strip())
    except (OSError, ValueError):
        return None


def _run_and_record(folder: Path, cmd: list[str]) -> int:
    """The watcher's work: run `cmd` (same output, session and environment) and record how it ended."""
    code = subprocess.call(cmd)
    code = 128 - code if code < 0 else code  # killed by signal N: 128 + N
    write_atomic(Path(folder) / EXIT_CODE, f"{code}\n")
    return code


def reap() -> None:
    """Collect the exit status of every finished child, so none lingers as a zombie."""
    for pid, child in list(_children.items()):
        if child.poll() is not None:
            _children.pop(pid, None)


def process_alive(pid: Any, expect: str | None = None) -> bool:
    """Is this process still running? Our own children are asked directly (and reaped); otherwise a zombie counts as
    gone, and with `expect` so does a pid whose command line lacks it (reused by another program after a restart).
    Where /proc is missing, the pid is trusted."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    child = _children.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        _children.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        if expect is not None:
            return expect in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, IndexError):
        pass
    return True


def log_tail(path: Path, lines: int = 12, max_bytes: int = 16384) -> str:
    """The last `lines` lines of a text file ("" when there is none), reading only its end."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


if __name__ == "__main__":
    sys.exit(_run_and_record(Path(sys.argv[1]), sys.argv[2:]))
