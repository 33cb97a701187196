"""Import a set of candidate files as one batch: validate, fingerprint, store once, index, report.

The expensive part that needs no database (decode, hash, write the file, thumbnail) runs in `store_one`. Files are
written before rows; all rows of a batch are committed in one transaction, so an interrupted import leaves the index
as it was (a stored file without a row is harmless: content-addressed, and reused by the next import of the same
bytes).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from .forking import forking_is_safe, map_in_forks
from .models import ACTIVE, STAGED, Batch, BatchItem, Image, ImageClass, utcnow
from .sources import Candidate, read_limited
from .storage import THUMB_SIZE, ImageStore, make_thumbnail_bytes, write_atomic
from .validation import Limits, Rejected, validate_image_bytes

CLASS_NAME = re.compile(r"^[a-z0-9][a-z0-9 _-]{0,63}$")
CHUNK = 128  # rows indexed per database round (one duplicate look-up query, one multi-row insert each)
FORK_FROM = 32  # smaller batches are stored in this process
CLI_WORKERS = 2  # worker processes the command line stores files on: both cores
WORKER_DIED = ("a worker process storing the files died (killed, or out of memory); nothing was imported: run it "
               "again")
TASK_SIZE = 16  # files per task sent to a worker process


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


def fingerprint_valid(data: bytes, limits: Limits):
    """(ValidImage, ImageFingerprint) of a file's bytes, decoded as the import decodes them; raises Rejected."""
    from .hashing import fingerprint_image  # numpy/scipy: loaded only by what imports files
    valid = validate_image_bytes(data, limits, reduced=True)
    return valid, fingerprint_image(valid.image, data, full_size=valid.full_size)


def store_one(data: bytes, limits: Limits, instance: Path) -> Stored:
    """Validate, fingerprint and store one file's bytes (and its thumbnail if it is large); raises Rejected.

    JPEGs are decoded at reduced size (all that the thumbnail and the fingerprints need): their pixel hash is filled
    in later, only if the duplicate search needs it (curator.same_pixels).
    """
    valid, fp = fingerprint_valid(data, limits)
    store = ImageStore(instance)
    rel = store.put(fp.sha256, valid.format, data)
    thumb = store.thumb_path(fp.sha256, valid.has_alpha)
    if max(valid.width, valid.height) > THUMB_SIZE and not thumb.exists():
        write_atomic(thumb, make_thumbnail_bytes(valid.image, valid.has_alpha))
    return Stored(sha256=fp.sha256, path=rel, file_size=len(data), format=valid.format, width=valid.width,
                  height=valid.height, has_alpha=valid.has_alpha, pixel_hash=fp.pixel_hash, phash=fp.phash,
                  dhash=fp.dhash, fingerprint=fp.thumb, notes=valid.notes)


def _store_or_reject(source: bytes | Path | Rejected, limits: Limits, instance: Path) -> Stored | Rejected:
    """Store one file given as its bytes, or as the path of a plain file to read here; or pass its rejection on."""
    if isinstance(source, Rejected):
        return source
    try:
        return store_one(read_limited(source, limits) if isinstance(source, Path) else source, limits, instance)
    except Rejected as rejection:
        return rejection


def _read(candidate: Candidate) -> bytes | Rejected:
    try:
        return candidate.read()
    except Rejected as rejection:
        return rejection


def stored_files(candidates: list[Candidate], limits: Limits, instance: Path,
                 workers: int = 1) -> Iterator[Stored | Rejected]:
    """Each candidate stored (or rejected), in input order.

    With `workers` > 1, at least FORK_FROM files and a single-threaded process, on `workers` forked processes
    (curator.forking); otherwise here. Not threads, by measurement (bench/import_speed.py sets on the 2-vCPU test
    machine): two threads made 600 stickers take 0.89 s instead of 0.57 s in one thread, while two forked processes
    took 0.57 s down to 0.33 s.
    """
    store = partial(_store_or_reject, limits=limits, instance=instance)
    if workers <= 1 or len(candidates) < FORK_FROM or not forking_is_safe():
        yield from map(store, map(_read, candidates))
        return
    from . import hashing  # noqa: F401  imported before forking, so no child imports it again
    # plain files are read by the workers; zip members and uploads here, in order (a zip's members share one handle)
    sources = (c.path if c.path is not None else _read(c) for c in candidates)
    yield from map_in_forks(store, sources, workers, TASK_SIZE)


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
