"""Run a function over many items on forked worker processes, results in input order, memory bounded.

Why processes, and forked ones: decoding and hashing an image is a chain of short C calls, and threads hand the GIL
back and forth between them (two threads were slower than one on 128 px stickers); a forked worker starts in
milliseconds with everything already imported. Why concurrent.futures: a worker that dies (killed, out of memory)
raises BrokenProcessPool in the caller instead of leaving it waiting forever for the lost task.
"""
from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def forking_is_safe() -> bool:
    """A forked child inherits only the forking thread, so a lock another thread held at that moment stays locked in
    it forever: fork only from a single-threaded process (the command line; never the threaded web server)."""
    return "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """Run first in each worker: the kernel sends it SIGKILL when its parent dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG); a parent already gone by then (the race before prctl) means exit at once. Without this a
    killed import left its workers running for good, holding its stdout. Elsewhere the workers end when the pool's
    pipe to them closes, as before. SIGTERM gets its default action back (the parent may have made it an exception,
    which would leave a worker the pool terminates half alive)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _run_task(fn: Callable[[T], R], items: list[T]) -> list[R]:
    return [fn(item) for item in items]


def map_in_forks(fn: Callable[[T], R], items: Iterable[T], workers: int, task_size: int, *, tasks_ahead: int = 32,
                 bytes_ahead: int = 256 << 20) -> Iterator[R]:
    """``fn(item)`` for each item, in order, on ``workers`` forked processes (``fn`` must be picklable: a module-level
    function or a functools.partial of one). Items are drawn here, ``task_size`` per task. Up to ``tasks_ahead`` tasks
    (and ``bytes_ahead`` bytes of ``bytes`` items) are queued beyond the results taken, so the workers keep busy
    while the caller works through a batch of results (the import indexes 128 at a time), and a huge input is never
    all in memory. The caller checks ``forking_is_safe``."""
    items = iter(items)
    freeze = gc.get_freeze_count() == 0  # (a caller's own freeze is left as it was)
    if freeze:
        gc.freeze()  # the workers' garbage collections then leave the inherited objects (and their pages) untouched
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        pending: deque = deque()  # (future, bytes it carries)
        queued_bytes = 0
        while True:
            while len(pending) < tasks_ahead and queued_bytes < bytes_ahead \
                    and (task := list(islice(items, task_size))):
                size = sum(len(item) for item in task if isinstance(item, (bytes, bytearray)))
                pending.append((pool.submit(_run_task, fn, task), size))
                queued_bytes += size
            if not pending:
                break
            future, size = pending.popleft()
            queued_bytes -= size
            yield from future.result()
    except BaseException:  # an error, or the caller stopped early (GeneratorExit): drop the queued tasks unstarted
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        if freeze:
            gc.unfreeze()
