"""The one safe-write helper: write to a temporary file beside the target, then rename it over the target, so a
reader (or a crash) sees the old file or the new one, never half of one.

One fsync policy. `durable=True` (the default) fsyncs the file before the rename and the folder after it: for
files that are the only record of something (manifests, run settings and status, checkpoints). Content-addressed
image files and their thumbnails pass `durable=False`: they can be recreated from their source and the index's
own commits do not wait for fsync either (core.db: SQLite synchronous=NORMAL), so a power cut can lose the newest
of both together and nothing else. Stdlib only: the pure-PyTorch `diffusion` package uses it too.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Callable


def write_with(path: Path | str, write: Callable[[BinaryIO], object], *, durable: bool = True,
               mode: int | None = None) -> None:
    """Call `write(f)` on a temporary binary file in the target's folder, then rename it to `path`.
    `mode`: permission bits for the new file (e.g. 0o444 for a file that never changes)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_folder(path.parent)


def write_atomic(path: Path | str, data: bytes | str, *, durable: bool = True, mode: int | None = None) -> None:
    """Write bytes (or text, as UTF-8) to `path` atomically; see the module for `durable`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    write_with(path, lambda f: f.write(payload), durable=durable, mode=mode)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def new_dated_folder(parent: Path | str) -> Path:
    """Create and return a fresh folder under `parent` named like `20261122-071500-ab12`: sortable by time, unique
    even when several are made in the same second (runs, snapshots)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        folder = parent / f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise OSError(f"could not create a new folder under {parent}")
