"""core.processes: a detached command whose exit status is recorded in its folder, whoever asks later."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from core.processes import process_alive, recorded_exit, spawn_recording_exit


def wait_for_end(proc, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while process_alive(proc.pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not process_alive(proc.pid)


@pytest.mark.parametrize("code", [0, 3])
def test_the_exit_status_and_the_output_are_recorded(tmp_path, code):
    """Tried: a command that prints and exits 0, and one that exits 3. Its output is in the log; once it has ended,
    exit_code holds its status (no temporary file left beside it)."""
    proc = spawn_recording_exit([sys.executable, "-c", f"print('hello'); raise SystemExit({code})"], tmp_path,
                                tmp_path / "output.log")
    wait_for_end(proc)
    assert recorded_exit(tmp_path) == code
    assert (tmp_path / "output.log").read_text().strip() == "hello"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exit_code", "output.log"]


def test_a_killed_command_reads_as_a_shell_reports_it_and_a_killed_watcher_as_none(tmp_path):
    """Tried: the command killed with SIGKILL (its watcher records 128 + 9, as a shell would), then a command whose
    watcher and all is killed (the process group, as a test's clean-up does): nothing recorded, so readers fall
    back to asking whether the process is alive."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    sleeper = [sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(60)"]
    proc = spawn_recording_exit(sleeper, first, first / "output.log")
    deadline = time.time() + 20
    while not (first / "output.log").read_text().strip() and time.time() < deadline:
        time.sleep(0.05)
    assert recorded_exit(first) is None  # still running
    os.kill(int((first / "output.log").read_text()), signal.SIGKILL)
    wait_for_end(proc)
    assert recorded_exit(first) == 128 + signal.SIGKILL
    proc = spawn_recording_exit(sleeper, second, second / "output.log")
    os.killpg(proc.pid, signal.SIGKILL)
    wait_for_end(proc)
    assert recorded_exit(second) is None and not (second / "exit_code").exists()
