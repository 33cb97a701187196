"""Import a set of candidate files as one batch: validate, fingerprint, store once, index, report.

The expensive, pure part (decode, hash, thumbnail) runs in `analyse`, on both cores for large batches. Files are
written before rows; all rows of a batch are committed in one transaction, so an interrupted import leaves the
index as it was (a stored file without a row is harmless: content-addressed, reused by the next import).
"""
from __future__ import annotations

import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ACTIVE, STAGED, Batch, BatchItem, Image, ImageClass, utcnow
from .sources import Candidate
from .storage import THUMB_SIZE, ImageStore, make_thumbnail_bytes, write_atomic
from .validation import Limits, Rejected, validate_image_bytes

CLASS_NAME = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,63}$")
PARALLEL_FROM = 24  # below this many files a process pool costs more than it saves


def normalise_class_name(name: str) -> str:
    """Class names are folder-friendly lowercase words; raise ValueError with the rule otherwise."""
    clean = name.strip().lower()
    if not CLASS_NAME.match(clean):
        raise ValueError(f"invalid class name {name!r}: use 1–64 letters, digits, spaces, '-' or '_', "
                         "starting with a letter or digit")
    return clean


@dataclass
class Analysis:
    """Everything the index needs about one valid file, computed without touching the database."""
    data: bytes
    sha256: str
    format: str
    width: int
    height: int
    has_alpha: bool
    pixel_hash: str
    phash: int
    dhash: int
    fingerprint: bytes
    thumbnail: bytes | None  # only for images larger than a thumbnail
    notes: list[str] = field(default_factory=list)


def analyse(data: bytes, limits: Limits) -> Analysis:
    """Validate and fingerprint one file's bytes; raises Rejected."""
    import hashlib
    valid = validate_image_bytes(data, limits)
    thumb = make_thumbnail_bytes(valid.image) if max(valid.width, valid.height) > THUMB_SIZE else None
    return Analysis(data=data, sha256=hashlib.sha256(data).hexdigest(), format=valid.format, width=valid.width,
                    height=valid.height, has_alpha=valid.has_alpha, pixel_hash=None, phash=None,
                    dhash=None, fingerprint=None, thumbnail=thumb, notes=valid.notes)


def _read_and_analyse(args: tuple[Candidate, Limits]) -> Analysis | Rejected:
    candidate, limits = args
    try:
        return analyse(candidate.read(), limits)
    except Rejected as rejection:
        return rejection


def _analysed(candidates: list[Candidate], limits: Limits, workers: int) -> Iterator[Analysis | Rejected]:
    """Analyses in input order; reading stays in this process (zip handles do not pickle), analysis is parallel."""
    if workers <= 1 or len(candidates) < PARALLEL_FROM:
        for c in candidates:
            yield _read_and_analyse((c, limits))
        return

    def read(c: Candidate) -> bytes | Rejected:
        try:
            return c.read()
        except Rejected as rejection:
            return rejection

    with ProcessPoolExecutor(max_workers=workers) as pool:
        datas = (read(c) for c in candidates)
        futures = []
        for data in datas:
            futures.append(data if isinstance(data, Rejected) else pool.submit(_analyse_or_reject, data, limits))
            if len(futures) >= 4 * workers:
                f = futures.pop(0)
                yield f if isinstance(f, Rejected) else f.result()
        for f in futures:
            yield f if isinstance(f, Rejected) else f.result()


def _analyse_or_reject(data: bytes, limits: Limits) -> Analysis | Rejected:
    try:
        return analyse(data, limits)
    except Rejected as rejection:
        return rejection


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
    classes = ClassCache(session)
    seen: dict[str, Image] = {}
    try:
        for candidate, result in zip(candidates, _analysed(candidates, limits, workers)):
            item = _index_one(session, store, classes, seen, batch, candidate, result, staged)
            batch.items.append(item)
            if progress:
                progress(1)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return batch


def _index_one(session: Session, store: ImageStore, classes: ClassCache, seen: dict[str, Image], batch: Batch,
               candidate: Candidate, result: Analysis | Rejected, staged: bool) -> BatchItem:
    item = BatchItem(filename=candidate.name, outcome="rejected", source_class=candidate.class_name or "")
    if isinstance(result, Rejected):
        item.reason = result.reason
        batch.rejected += 1
        return item
    try:
        image_class = classes.get(candidate.class_name)
    except ValueError as exc:
        item.reason = str(exc)
        batch.rejected += 1
        return item
    existing = seen.get(result.sha256) or session.scalar(select(Image).where(Image.sha256 == result.sha256))
    if existing is not None:
        item.outcome, item.existing = "duplicate", existing
        item.reason = "exact duplicate of an image already in the index" if existing.id else \
            "exact duplicate of another file in this batch"
        batch.duplicates += 1
        return item
    rel = store.put(result.sha256, result.format, result.data)
    if result.thumbnail is not None:
        write_atomic(store.thumb_path(result.sha256), result.thumbnail)
    image = Image(sha256=result.sha256, pixel_hash=result.pixel_hash, phash=result.phash, dhash=result.dhash,
                  fingerprint=result.fingerprint, path=rel, format=result.format, width=result.width,
                  height=result.height, has_alpha=result.has_alpha, file_size=len(result.data),
                  image_class=image_class, status=STAGED if staged else ACTIVE,
                  original_filename=candidate.name, batch=batch)
    session.add(image)
    seen[result.sha256] = image
    item.outcome, item.image = ("new" if staged else "added"), image
    item.reason = "; ".join(result.notes)
    batch.added += 1
    return item
