"""Import a set of candidate files as one batch: validate, fingerprint, store once, index, report.

The expensive part that needs no database (decode, hash, write the file, thumbnail) runs in `store_one`, on both
cores for large batches. Files are written before rows; all rows of a batch are committed in one transaction, so an
interrupted import leaves the index as it was (a stored file without a row is harmless: content-addressed, and
reused by the next import of the same bytes).
"""
from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ACTIVE, STAGED, Batch, BatchItem, Image, ImageClass, utcnow
from .sources import Candidate
from .storage import THUMB_SIZE, ImageStore, make_thumbnail_bytes, write_atomic
from .validation import Limits, Rejected, validate_image_bytes

CLASS_NAME = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,63}$")
PARALLEL_FROM = 1500  # below this many files, starting worker processes (~1 s) costs more than it saves
TASK_SIZE = 64  # files per worker task
CHUNK = 256  # rows indexed per database round (one duplicate look-up query per chunk)


def normalise_class_name(name: str) -> str:
    """Class names are folder-friendly lowercase words; raise ValueError with the rule otherwise."""
    clean = name.strip().lower()
    if not CLASS_NAME.match(clean):
        raise ValueError(f"invalid class name {name!r}: use 1–64 letters, digits, spaces, '-' or '_', "
                         "starting with a letter or digit")
    return clean


@dataclass
class Stored:
    """Everything the index needs about one valid file, whose bytes are already in the store."""
    sha256: str
    path: str
    file_size: int
    format: str
    width: int
    height: int
    has_alpha: bool
    pixel_hash: str
    phash: int
    dhash: int
    fingerprint: bytes
    notes: list[str] = field(default_factory=list)


def store_one(data: bytes, limits: Limits, instance: Path) -> Stored:
    """Validate, fingerprint and store one file's bytes (and its thumbnail if it is large); raises Rejected."""
    from . import hashing
    valid = validate_image_bytes(data, limits)
    fp = hashing.fingerprint_image(valid.image, data)
    store = ImageStore(instance)
    rel = store.put(fp.sha256, valid.format, data)
    if max(valid.width, valid.height) > THUMB_SIZE and not store.thumb_path(fp.sha256).exists():
        write_atomic(store.thumb_path(fp.sha256), make_thumbnail_bytes(valid.image))
    return Stored(sha256=fp.sha256, path=rel, file_size=len(data), format=valid.format, width=valid.width,
                  height=valid.height, has_alpha=valid.has_alpha, pixel_hash=fp.pixel_hash, phash=fp.phash,
                  dhash=fp.dhash, fingerprint=fp.thumb, notes=valid.notes)


def _store_or_reject(data: bytes | Rejected, limits: Limits, instance: Path) -> Stored | Rejected:
    if isinstance(data, Rejected):
        return data
    try:
        return store_one(data, limits, instance)
    except Rejected as rejection:
        return rejection


def _store_chunk(datas: list[bytes | Rejected], limits: Limits, instance: Path) -> list[Stored | Rejected]:
    return [_store_or_reject(d, limits, instance) for d in datas]


def _read(candidate: Candidate) -> bytes | Rejected:
    try:
        return candidate.read()
    except Rejected as rejection:
        return rejection


def stored_files(candidates: list[Candidate], limits: Limits, instance: Path,
                 workers: int) -> Iterator[Stored | Rejected]:
    """Results in input order. Small batches run here: starting worker processes costs about a second. Large ones
    go to a 'forkserver' pool (safe to start from a multi-threaded web server, unlike a plain fork) in chunks, so
    the per-task overhead is shared by many files; reading stays here (open zip handles do not pickle)."""
    if workers <= 1 or len(candidates) < PARALLEL_FROM:
        for c in candidates:
            yield _store_or_reject(_read(c), limits, instance)
        return
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["curator.ingest", "curator.hashing"])  # workers start with the heavy imports done
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending = []
        for start in range(0, len(candidates), TASK_SIZE):
            datas = [_read(c) for c in candidates[start:start + TASK_SIZE]]
            pending.append(pool.submit(_store_chunk, datas, limits, instance))
            if len(pending) >= 2 * workers:
                yield from pending.pop(0).result()
        for f in pending:
            yield from f.result()


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
                      source: str, limits: Limits = Limits(), staged: bool = False, workers: int = 2,
                      progress: Callable[[int], None] | None = None) -> Batch:
    """Import everything as one batch and commit once. Returns the batch (with its items for the report).

    With `staged=True` new images get status `staged` and the batch state `staged` (a merge preview); they join the
    dataset only when the merge is committed.
    """
    candidates = list(candidates)
    batch = Batch(kind=kind, source=source, state="staged" if staged else "committed",
                  committed=None if staged else utcnow())
    session.add(batch)
    indexer = _Indexer(session, batch, staged)
    pairs = zip(candidates, stored_files(candidates, limits, store.root, workers))
    try:
        with session.no_autoflush:
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
    """Adds a batch's rows chunk by chunk: one query per chunk finds the images that exist already."""

    def __init__(self, session: Session, batch: Batch, staged: bool):
        self.session, self.batch, self.staged = session, batch, staged
        self.classes = ClassCache(session)
        self.in_batch: dict[str, Image] = {}

    def index_chunk(self, chunk: list[tuple[Candidate, Stored | Rejected]]) -> None:
        shas = [r.sha256 for _c, r in chunk if isinstance(r, Stored)]
        existing = {i.sha256: i for i in self.session.scalars(select(Image).where(Image.sha256.in_(shas)))}
        for candidate, result in chunk:
            self.batch.items.append(self.index_one(candidate, result, existing))

    def index_one(self, candidate: Candidate, result: Stored | Rejected, existing: dict[str, Image]) -> BatchItem:
        batch = self.batch
        item = BatchItem(filename=candidate.name, outcome="rejected", source_class=candidate.class_name or "")
        if isinstance(result, Rejected):
            item.reason = result.reason
            batch.rejected += 1
            return item
        try:
            image_class = self.classes.get(candidate.class_name)
        except ValueError as exc:
            item.reason = str(exc)
            batch.rejected += 1
            return item
        if result.sha256 in existing or result.sha256 in self.in_batch:
            item.outcome = "duplicate"
            if result.sha256 in existing:
                item.existing, item.reason = existing[result.sha256], "exact duplicate of an image already in the index"
            else:
                item.existing, item.reason = self.in_batch[result.sha256], "exact duplicate of another file in this batch"
            batch.duplicates += 1
            return item
        image = Image(sha256=result.sha256, pixel_hash=result.pixel_hash, phash=result.phash, dhash=result.dhash,
                      fingerprint=result.fingerprint, path=result.path, format=result.format, width=result.width,
                      height=result.height, has_alpha=result.has_alpha, file_size=result.file_size,
                      image_class=image_class, status=STAGED if self.staged else ACTIVE,
                      original_filename=candidate.name, batch=batch)
        self.session.add(image)
        self.in_batch[result.sha256] = image
        item.outcome, item.image = ("new" if self.staged else "added"), image
        item.reason = "; ".join(result.notes)
        batch.added += 1
        return item
