"""curator.imports.forking: results in order, errors passed on, and a caller that stops early does not wait for queued work.

Each case runs in a clean single-threaded interpreter: forking is only allowed there (as in the command line).
"""
from __future__ import annotations

import subprocess
import sys

from app import ROOT

SCRIPT = r"""
import gc, os, sys, time
from functools import partial
from pathlib import Path
from curator.imports.forking import forking_is_safe, map_in_forks

def mark(folder, item):
    (Path(folder) / str(item)).touch()
    time.sleep(0.002)
    if item == 77:
        raise ValueError("item 77 is bad")
    return item * item

folder = Path(sys.argv[1])
assert forking_is_safe()
# in order, across tasks and workers
assert list(map_in_forks(partial(mark, folder / "all"), range(60), 2, task_size=4)) == [i * i for i in range(60)]
# an error in a worker reaches the caller with its type and message
try:
    list(map_in_forks(partial(mark, folder / "error"), range(70, 90), 2, task_size=4))
except ValueError as exc:
    assert str(exc) == "item 77 is bad", exc
else:
    raise AssertionError("no error")
# the caller takes one result and stops: the tasks still queued are dropped, not run
results = map_in_forks(partial(mark, folder / "early"), range(400), 2, task_size=4, tasks_ahead=32)
assert next(results) == 0
results.close()
print(len(os.listdir(folder / "early")))
# a caller's own gc.freeze is left as it was
gc.freeze()
frozen = gc.get_freeze_count()
list(map_in_forks(partial(mark, folder / "all"), range(8), 2, task_size=2))
assert gc.get_freeze_count() == frozen > 0
"""


def test_order_errors_early_stop_and_freeze(tmp_path):
    """Tried: 60 items on 2 workers (order kept), an item whose function raises (the caller gets that error), a
    caller that takes one of 400 results and closes the generator (128 items were queued; only the tasks already
    handed to a worker finish, 28 items when written), and a caller that had frozen the garbage collector itself (still frozen after)."""
    for name in ("all", "error", "early"):
        (tmp_path / name).mkdir()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    ran = int(done.stdout.strip())
    assert 1 <= ran < 64, ran  # 32 tasks of 4 (128 items) were queued; only those already started run
