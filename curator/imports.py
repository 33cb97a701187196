"""The ways in: paths (CLI and the server-folder form), browser uploads, and the bundled demo dataset.

Each turns its input into candidates (curator.sources) and hands them to curator.ingest as one batch.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage

from .ingest import import_candidates, normalise_class_name
from .models import Batch
from .sources import Candidate, iter_paths, iter_zip
from .storage import ImageStore
from .validation import Limits, Rejected


def import_paths(session: Session, store: ImageStore, paths: list[Path], *, class_name: str | None = None,
                 limits: Limits = Limits(), roots: list[Path] | None = None, kind: str = "import",
                 staged: bool = False, workers: int = 1,
                 progress_factory: Callable[[int], Callable[[int], None]] | None = None) -> Batch:
    """Import files, class folders and zips as one batch. Raises SourceError/ValueError before anything is stored."""
    default = normalise_class_name(class_name) if class_name else None
    candidates = list(iter_paths(paths, default, limits, roots))
    progress = progress_factory(len(candidates)) if progress_factory else None
    source = ", ".join(str(p) for p in paths)
    return import_candidates(session, store, candidates, kind=kind, source=source, limits=limits, staged=staged,
                             workers=workers, progress=progress)


def upload_candidates(files: list[FileStorage], class_name: str | None, limits: Limits,
                      spool_dir: Path) -> list[Candidate]:
    """Browser uploads as candidates; a .zip upload is spooled to disk and opened as an archive."""
    candidates: list[Candidate] = []
    for upload in files:
        name = Path(upload.filename or "upload").name
        if name.lower().endswith(".zip"):
            spooled = Path(tempfile.mkstemp(dir=spool_dir, suffix=".zip")[1])
            upload.save(spooled)
            candidates.extend(iter_zip(spooled, class_name, limits, display=name))
        else:
            data = upload.read(limits.max_file_bytes + 1)
            candidates.append(Candidate(name, class_name, _upload_reader(data, limits)))
    return candidates


def _upload_reader(data: bytes, limits: Limits) -> Callable[[], bytes]:
    def read() -> bytes:
        if len(data) > limits.max_file_bytes:
            raise Rejected(f"file too large: exceeds the {limits.max_file_bytes / 2**20:.0f} MiB limit")
        return data
    return read


def import_demo(session: Session, store: ImageStore, demo_dir: Path, workers: int = 1,
                progress_factory: Callable[[int], Callable[[int], None]] | None = None) -> Batch | None:
    """Import the bundled demo dataset once; None if it was imported already."""
    if session.scalar(select(Batch.id).where(Batch.kind == "demo")):
        return None
    return import_paths(session, store, [demo_dir / "images"], kind="demo", workers=workers,
                        progress_factory=progress_factory)
