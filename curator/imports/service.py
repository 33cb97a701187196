"""Import a set of candidate files as one batch: store them (curator.imports.storing), index them, report.

The ways in are paths (the command line and the server-folder form), browser uploads and the bundled demo
dataset; each becomes candidates (curator.imports.sources). All rows of a batch are committed in one transaction,
so an interrupted import leaves the index as it was.
"""
from __future__ import annotations

import tempfile
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable

from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage

from core.history import image_changes, record
from core.models import ACTIVE, REJECTED, STAGED, Batch, BatchItem, Decision, Image, ImageClass, utcnow
from curator.imports.sources import Candidate, iter_paths, iter_zip
from curator.imports.storage import ImageStore
from curator.imports.storing import Stored, normalise_class_name, stored_files
from curator.imports.validation import Limits, Rejected

CHUNK = 128  # rows indexed per database round (one duplicate look-up query, one multi-row insert each)


class ClassCache:
    """Get-or-create classes by normalised name within one transaction."""

    def __init__(self, session: Session):
        self.session = session
        self.by_name = {c.name: c for c in session.scalars(select(ImageClass))}

    def get(self, name: str | None) -> ImageClass | None:
        if name is None:
            return None
        clean = normalise_class_name(name)
        if clean not in self.by_name:
            cls = ImageClass(name=clean)
            self.session.add(cls)
            self.by_name[clean] = cls
        return self.by_name[clean]


def import_candidates(session: Session, store: ImageStore, candidates: Iterable[Candidate], *, kind: str,
                      source: str, limits: Limits = Limits(), staged: bool = False, workers: int = 1,
                      progress: Callable[[int], None] | None = None) -> Batch:
    """Import everything as one batch and commit once. Returns the batch (its items load from the database).

    `workers` > 1 stores files on that many forked processes where that is safe (see stored_files): the command
    line passes 2; the web server stores in its request thread.

    With `staged=True` new images get status `staged` and no class (each item keeps its source folder in
    `source_class`), and the batch state is `staged` (a merge preview); they join the dataset only when the merge is
    committed with a class mapping.
    """
    candidates = list(candidates)
    batch = Batch(kind=kind, source=source, state="staged" if staged else "committed",
                  committed=None if staged else utcnow(), added=0, duplicates=0, rejected=0)
    pairs = zip(candidates, stored_files(candidates, limits, store.root, workers))
    try:
        session.add(batch)
        session.flush()  # the batch id, for the rows below
        indexer = _Indexer(session, batch, staged)
        while chunk := list(islice(pairs, CHUNK)):
            indexer.index_chunk(chunk)
            if progress:
                progress(len(chunk))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return batch


class _Indexer:
    """Writes a batch's rows chunk by chunk with multi-row Core inserts (the ORM's per-object bookkeeping cost more
    than everything else of a small image's import); one query per chunk finds the images that exist already."""

    def __init__(self, session: Session, batch: Batch, staged: bool):
        self.session, self.batch, self.staged = session, batch, staged
        self.classes = ClassCache(session)
        self.in_batch: dict[str, int | None] = {}  # sha256 -> id of the image this batch added (None: not yet)

    def index_chunk(self, chunk: list[tuple[Candidate, Stored | Rejected]]) -> None:
        shas = [r.sha256 for _c, r in chunk if isinstance(r, Stored)]
        existing = dict(self.session.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(shas))).all())
        items, new_rows = [], []
        for candidate, result in chunk:
            item = self.item_for(candidate, result, existing, new_rows)
            items.append(item)
        if new_rows:  # one executemany, then the ids by sha256 (RETURNING in parameter order runs row by row)
            self.session.execute(insert(Image), new_rows)
            new_shas = [row["sha256"] for row in new_rows]
            self.in_batch.update(self.session.execute(select(Image.sha256, Image.id)
                                                      .where(Image.sha256.in_(new_shas))).all())
        for item in items:  # images of this chunk have ids now
            for key in ("image_id", "existing_id"):
                if isinstance(item[key], str):
                    item[key] = self.in_batch[item[key]]
        self.session.execute(insert(BatchItem), items)

    def item_for(self, candidate: Candidate, result: Stored | Rejected, existing: dict[str, int],
                 new_rows: list[dict]) -> dict:
        """The BatchItem row for one file; appends the Image row to `new_rows` if the file is a new image.
        `image_id` / `existing_id` hold a sha256 where the image is added by this batch and has no id yet."""
        batch = self.batch
        item = {"batch_id": batch.id, "filename": candidate.name, "outcome": "rejected", "reason": "",
                "source_class": candidate.class_name or "", "image_id": None, "existing_id": None}
        if isinstance(result, Rejected):
            item["reason"] = result.reason
            batch.rejected += 1
            return item
        try:
            class_id = None if self.staged else self.class_id(candidate.class_name)
        except ValueError as exc:
            item["reason"] = str(exc)
            batch.rejected += 1
            return item
        sha = result.sha256
        if sha in existing:
            item.update(outcome="duplicate", existing_id=existing[sha],
                        reason="exact duplicate of an image already in the index")
            batch.duplicates += 1
        elif sha in self.in_batch:
            item.update(outcome="duplicate", existing_id=self.in_batch[sha] or sha,
                        reason="exact duplicate of another file in this batch")
            batch.duplicates += 1
        else:
            new_rows.append({"sha256": sha, "pixel_hash": result.pixel_hash, "phash": result.phash,
                             "dhash": result.dhash, "fingerprint": result.fingerprint, "path": result.path,
                             "format": result.format, "width": result.width, "height": result.height,
                             "has_alpha": result.has_alpha, "file_size": result.file_size, "class_id": class_id,
                             "status": STAGED if self.staged else ACTIVE, "original_filename": candidate.name,
                             "batch_id": batch.id})
            self.in_batch[sha] = None  # id unknown until the chunk's insert
            item.update(outcome="new" if self.staged else "added", image_id=sha, reason="; ".join(result.notes))
            batch.added += 1
        return item

    def class_id(self, name: str | None) -> int | None:
        """Id of the named class, created (and flushed, for its id) on first use; ValueError for a bad name."""
        image_class = self.classes.get(name)
        if image_class is None:
            return None
        if image_class.id is None:
            self.session.flush()
        return image_class.id


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


def class_names(session: Session) -> list[str]:
    return list(session.scalars(select(ImageClass.name).order_by(ImageClass.name)))


def recent_batches(session: Session, limit: int = 50) -> list[Batch]:
    return list(session.scalars(select(Batch).order_by(Batch.id.desc()).limit(limit)))


def batch_undo_decision(session: Session, batch: Batch) -> Decision | None:
    """The live decision that set this batch aside, if any (its undo brings the images back)."""
    return session.scalar(select(Decision).where(Decision.batch_id == batch.id, Decision.kind == "batch-undo",
                                                 Decision.undone_by_id.is_(None)))


def undo_batch(session: Session, batch: Batch, *, actor: str = "") -> int:
    """Take a whole committed batch back out of the dataset in one transaction: its images become rejected (never
    deleted), undoable as one decision. Returns how many images were set aside; raises ValueError otherwise."""
    if batch.state != "committed":
        raise ValueError(f"Batch #{batch.id} is {batch.state}; only a committed batch can be undone.")
    images = list(session.scalars(select(Image).where(Image.batch_id == batch.id)))
    changes = image_changes(images, status=REJECTED, status_reason=f"batch #{batch.id} undone", duplicate_of_id=None)
    record(session, "batch-undo", changes + [(batch, {"state": "undone"})], batch_id=batch.id, actor=actor)
    session.commit()
    return len(changes)
