"""Import a set of candidate files as one batch: store them (curator.imports.storing), index them, report.

The ways in are paths (the command line and the server-folder form), browser uploads and the bundled demo
dataset; each becomes candidates (curator.imports.sources).

Writes that never starve others: the files of a chunk (COMMIT_EVERY) are decoded, hashed and stored first, outside
any transaction, then the chunk's rows are written in one short transaction. So the index's write lock is held for
one chunk at a time (0.2-1.3 s for 512 stickers with their 12 KiB fingerprints on the loaded 2-core test machine,
where it used to be held for a whole 28.7 s import), and answers, decisions and a second import get their turn in
between: during a 6,000-file import another writer waited 0.1 ms at the 95th percentile and 1.3 s at most. The batch is still
one batch: its images are written `staged` (out of every page) while it is `importing`, and one last transaction
makes them all active and the batch `committed`, so the batch joins the dataset at once and is undone as one.

An import that dies half way (killed, out of memory, a power cut) leaves its batch `importing` with a process that
is gone: the next import (or `manage.py sweep`) marks it `interrupted` and says so; its staged images stay out of
the dataset, and importing the same files again takes them in (the new batch adopts them) instead of calling them
exact duplicates of images nobody can see.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shutil
import socket
import time
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage

from core.history import image_changes, record
from core.models import ACTIVE, REJECTED, STAGED, Batch, BatchItem, Decision, Image, ImageClass, utcnow
from core.processes import process_alive
from curator.imports.sources import Candidate, iter_paths, iter_zip, read_limited
from curator.imports.storage import ImageStore
from curator.imports.storing import Stored, normalise_class_name, stored_files
from curator.imports.validation import Limits, Rejected

HELD_NAME = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")  # a spool folder's name (core.files.new_dated_folder)
CHUNK = 128  # rows indexed per database round (one duplicate look-up query, one multi-row insert each)
COMMIT_EVERY = 512  # rows per transaction: each holds the write lock for one chunk's rows, never the whole import
IMPORTING, INTERRUPTED = "importing", "interrupted"  # batch states while it runs, and after its process died
WRITE_TRIES = 4  # a chunk whose write meets a locked index (busy_timeout spent) or a concurrent import's row


class ImportBusy(Exception):
    """The index stayed locked by other writers through every try: the import stops and says so."""


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


# --- who is importing ----------------------------------------------------------------------------------------

def _owner(origin: str) -> dict:
    """What a batch notes about the process writing it, so a later run can tell whether that process is gone."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "origin": origin, "started": time.time()}


def batch_note(batch: Batch) -> dict:
    try:
        note = json.loads(batch.note or "{}")
    except ValueError:
        return {}
    return note if isinstance(note, dict) else {}


def writer_alive(batch: Batch) -> bool:
    """Is the process that wrote this batch still running? (Another host's process: assumed so.)"""
    note = batch_note(batch)
    if note.get("host") not in (None, socket.gethostname()):
        return True
    return process_alive(note.get("pid"))


def find_interrupted(session: Session) -> list[Batch]:
    """Mark `importing` batches whose process is gone as `interrupted` (one transaction); returns those, and the
    interrupted batches still holding staged images (not taken in by a later import), oldest first."""
    found = set()
    for batch in session.scalars(select(Batch).where(Batch.state == IMPORTING)):
        if not writer_alive(batch):
            batch.state = INTERRUPTED
            staged = session.scalar(select(func.count(Image.id)).where(Image.batch_id == batch.id,
                                                                       Image.status == STAGED))
            batch.note = json.dumps({**batch_note(batch), "interrupted": time.time(), "indexed": staged})
            found.add(batch.id)
    session.commit()
    holding = select(Image.batch_id).where(Image.status == STAGED).distinct()
    return list(session.scalars(select(Batch).where(Batch.state == INTERRUPTED,
                                                    Batch.id.in_(holding) | Batch.id.in_(found))
                                .order_by(Batch.id)))


def interrupted_sentence(batch: Batch) -> str:
    note = batch_note(batch)
    held = note.get("indexed", 0)
    return (f"Batch #{batch.id} ({batch.kind} of {batch.source[:80]}) was interrupted before it finished: "
            f"{held} image(s) it had indexed are held back (not in the dataset); importing the same files again "
            f"takes them in.")


# --- importing -----------------------------------------------------------------------------------------------

def _retrying(session: Session, write: Callable[[], None], restore: Callable[[], None]) -> None:
    """Run `write` as one transaction; on a unique clash (a concurrent import stored the same picture or class a
    moment ago) or a lock that outlasted busy_timeout, roll back, `restore` the caller's state and try again."""
    for attempt in range(WRITE_TRIES):
        try:
            write()
            session.commit()
            return
        except (IntegrityError, OperationalError) as exc:
            session.rollback()
            restore()
            locked = isinstance(exc, OperationalError)
            if locked and "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if attempt == WRITE_TRIES - 1:
                if locked:
                    raise ImportBusy("the index stayed locked by other writers through "
                                     f"{WRITE_TRIES} tries; this import stopped (what it indexed so far is held "
                                     "back): run it again") from None
                raise
            time.sleep(0.2 * (attempt + 1))


def import_candidates(session: Session, store: ImageStore, candidates: Iterable[Candidate], *, kind: str,
                      source: str, limits: Limits = Limits(), staged: bool = False, workers: int = 1,
                      progress: Callable[[int], None] | None = None, origin: str = "") -> Batch:
    """Import everything as one batch, committing every COMMIT_EVERY rows (see the module). Returns the batch.

    `workers` > 1 stores files on that many forked processes where that is safe (see stored_files): the command
    line and jobs pass 2; the web server stores in its request thread.

    With `staged=True` new images get status `staged` and no class (each item keeps its source folder in
    `source_class`), and the batch state is `staged` (a merge preview); they join the dataset only when the merge is
    committed with a class mapping.
    """
    candidates = list(candidates)
    find_interrupted(session)
    batch = Batch(kind=kind, source=source, state=IMPORTING, committed=None, added=0, duplicates=0, rejected=0,
                  note=json.dumps(_owner(origin or kind)))
    _retrying(session, lambda: session.add(batch), lambda: None)
    batch_id = batch.id
    results = zip(candidates, stored_files(candidates, limits, store.root, workers))
    indexer = _Indexer(session, batch_id, staged)
    try:
        while True:
            chunk: list = []
            while len(chunk) < COMMIT_EVERY and (piece := list(islice(results, CHUNK))):
                chunk += piece  # decoded, hashed and stored before the transaction that writes their rows
                if progress:
                    progress(len(piece))
            if not chunk:
                break
            saved = indexer.save()
            _retrying(session, lambda: indexer.index_rows(chunk), lambda: indexer.restore(saved))
        _retrying(session, lambda: _finish(session, batch_id, staged), lambda: None)
    except BaseException:
        session.rollback()
        _mark_interrupted(session, batch_id)
        raise
    return session.get(Batch, batch_id)


def _finish(session: Session, batch_id: int, staged: bool) -> None:
    """The batch joins the dataset at once: its images active (an import) or left staged (a merge preview)."""
    batch = session.get(Batch, batch_id)
    if staged:
        batch.state = "staged"
    else:
        session.execute(update(Image).where(Image.batch_id == batch_id, Image.status == STAGED)
                        .values(status=ACTIVE))
        batch.state, batch.committed = "committed", utcnow()


def _mark_interrupted(session: Session, batch_id: int) -> None:
    """The import stopped here (an error, Ctrl-C, SIGTERM): say so on the batch now, not at the next run."""
    try:
        batch = session.get(Batch, batch_id)
        if batch is not None and batch.state == IMPORTING:
            held = session.scalar(select(func.count(Image.id)).where(Image.batch_id == batch_id, Image.status == STAGED))
            batch.state = INTERRUPTED
            batch.note = json.dumps({**batch_note(batch), "interrupted": time.time(), "indexed": held})
            session.commit()
    except Exception:  # the index itself failed: the next run finds the batch by its dead process instead
        session.rollback()


class _Indexer:
    """Writes a batch's rows chunk by chunk with multi-row Core inserts (the ORM's per-object bookkeeping cost more
    than everything else of a small image's import); one query per chunk finds the images that exist already.
    Its state (counts, the pictures this batch added) can be saved and restored, for a chunk that is written
    again after a rollback."""

    def __init__(self, session: Session, batch_id: int, staged: bool):
        self.session, self.batch_id, self.staged = session, batch_id, staged
        self.classes: ClassCache | None = None
        self.in_batch: dict[str, int | None] = {}  # sha256 -> id of the image this batch added (None: not yet)
        self.counts = {"added": 0, "duplicates": 0, "rejected": 0}

    def save(self) -> tuple:
        return dict(self.in_batch), dict(self.counts)

    def restore(self, saved: tuple) -> None:
        self.in_batch, self.counts = dict(saved[0]), dict(saved[1])
        self.classes = None  # classes made in the rolled-back transaction are gone

    def index_rows(self, rows: list[tuple[Candidate, Stored | Rejected]]) -> None:
        """Index a committed chunk's rows (the caller commits), CHUNK at a time, and the batch's counts."""
        if self.classes is None:
            self.classes = ClassCache(self.session)
        for lo in range(0, len(rows), CHUNK):
            self.index_chunk(rows[lo:lo + CHUNK])
        self.session.execute(update(Batch).where(Batch.id == self.batch_id).values(**self.counts))

    def index_chunk(self, chunk: list[tuple[Candidate, Stored | Rejected]]) -> None:
        shas = [r.sha256 for _c, r in chunk if isinstance(r, Stored)]
        existing = {sha: (image_id, status, batch_id) for sha, image_id, status, batch_id in self.session.execute(
            select(Image.sha256, Image.id, Image.status, Image.batch_id).where(Image.sha256.in_(shas))).all()}
        held = self._held_back({b for _i, st, b in existing.values() if st == STAGED and b is not None})
        items, new_rows = [], []
        for candidate, result in chunk:
            items.append(self.item_for(candidate, result, existing, held, new_rows))
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

    def _held_back(self, batch_ids: set[int]) -> set[int]:
        """Of these batches, those interrupted: their staged images are taken in by this import."""
        if not batch_ids:
            return set()
        return set(self.session.scalars(select(Batch.id).where(Batch.id.in_(batch_ids),
                                                               Batch.state == INTERRUPTED)))

    def item_for(self, candidate: Candidate, result: Stored | Rejected, existing: dict[str, tuple],
                 held: set[int], new_rows: list[dict]) -> dict:
        """The BatchItem row for one file; appends the Image row to `new_rows` if the file is a new image.
        `image_id` / `existing_id` hold a sha256 where the image is added by this batch and has no id yet."""
        counts = self.counts
        item = {"batch_id": self.batch_id, "filename": candidate.name, "outcome": "rejected", "reason": "",
                "source_class": candidate.class_name or "", "image_id": None, "existing_id": None}
        if isinstance(result, Rejected):
            item["reason"] = result.reason
            counts["rejected"] += 1
            return item
        try:
            class_id = None if self.staged else self.class_id(candidate.class_name)
        except ValueError as exc:
            item["reason"] = str(exc)
            counts["rejected"] += 1
            return item
        sha = result.sha256
        if sha in self.in_batch:
            item.update(outcome="duplicate", existing_id=self.in_batch[sha] or sha,
                        reason="exact duplicate of another file in this batch")
            counts["duplicates"] += 1
        elif sha in existing and existing[sha][1] == STAGED and existing[sha][2] in held:
            image_id, _status, old_batch = existing[sha]  # indexed by an import that died: this one takes it in
            self.session.execute(update(Image).where(Image.id == image_id).values(
                batch_id=self.batch_id, class_id=class_id, original_filename=candidate.name))
            self.in_batch[sha] = image_id
            item.update(outcome="new" if self.staged else "added", image_id=image_id,
                        reason="; ".join([*result.notes, f"indexed by interrupted batch #{old_batch}"]))
            counts["added"] += 1
        elif sha in existing:
            item.update(outcome="duplicate", existing_id=existing[sha][0],
                        reason="exact duplicate of an image already in the index")
            counts["duplicates"] += 1
        else:
            new_rows.append({"sha256": sha, "pixel_hash": result.pixel_hash, "phash": result.phash,
                             "dhash": result.dhash, "fingerprint": result.fingerprint, "path": result.path,
                             "format": result.format, "width": result.width, "height": result.height,
                             "has_alpha": result.has_alpha, "file_size": result.file_size, "class_id": class_id,
                             "status": STAGED, "original_filename": candidate.name, "batch_id": self.batch_id})
            self.in_batch[sha] = None  # id unknown until the chunk's insert
            item.update(outcome="new" if self.staged else "added", image_id=sha, reason="; ".join(result.notes))
            counts["added"] += 1
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


SPOOL_CHUNK = 1 << 20  # uploads are copied to the spool this much at a time: never a whole file in memory


def spool_uploads(files: list[FileStorage], spool_dir: Path, limits: Limits) -> list[dict]:
    """Copy each upload to `spool_dir` in SPOOL_CHUNK pieces (a file over the size limit stops at the limit and is
    refused later, by name); returns what `spooled_candidates` needs, plain data a job can be given."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for n, upload in enumerate(files):
        name = Path(upload.filename or "upload").name
        is_zip = name.lower().endswith(".zip")
        target = spool_dir / f"{n:05d}{'.zip' if is_zip else ''}"
        limit = None if is_zip else limits.max_file_bytes + 1
        written = 0
        with open(target, "wb") as f:
            while limit is None or written < limit:
                piece = upload.stream.read(SPOOL_CHUNK if limit is None else min(SPOOL_CHUNK, limit - written))
                if not piece:
                    break
                f.write(piece)
                written += len(piece)
        out.append({"name": name, "path": str(target), "zip": is_zip,
                    "too_large": limit is not None and written >= limit})
    return out


def spooled_candidates(spooled: list[dict], class_name: str | None, limits: Limits) -> list[Candidate]:
    """Candidates from spooled uploads: a zip is opened as an archive, a file is read from the spool when it is
    stored (by a worker process where there are many). Raises SourceError for an unreadable zip."""
    candidates: list[Candidate] = []
    for entry in spooled:
        path = Path(entry["path"])
        if entry["zip"]:
            candidates.extend(iter_zip(path, class_name, limits, display=entry["name"]))
        elif entry["too_large"]:
            reason = f"file too large: exceeds the {limits.max_file_bytes / 2**20:.0f} MiB limit"
            candidates.append(Candidate(entry["name"], class_name, _refuse(reason)))
        else:
            candidates.append(Candidate(entry["name"], class_name, lambda p=path: read_limited(p, limits), path))
    return candidates


def upload_candidates(files: list[FileStorage], class_name: str | None, limits: Limits,
                      spool_dir: Path) -> list[Candidate]:
    """Browser uploads as candidates, spooled to disk first (spool_uploads)."""
    return spooled_candidates(spool_uploads(files, spool_dir, limits), class_name, limits)


def _refuse(reason: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise Rejected(reason)
    return read


def import_demo(session: Session, store: ImageStore, demo_dir: Path, workers: int = 1,
                progress_factory: Callable[[int], Callable[[int], None]] | None = None) -> Batch | None:
    """Import the bundled demo dataset once; None if it was imported already."""
    if session.scalar(select(Batch.id).where(Batch.kind == "demo", Batch.state != INTERRUPTED)):
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


def unlabelled_duplicates(batch: Batch) -> list[BatchItem]:
    """Files of this batch that were already in the dataset without a class, while this import named one: the
    report offers to give those images the class (set_duplicate_classes)."""
    return [i for i in batch.items if i.outcome == "duplicate" and i.existing is not None and i.source_class
            and i.existing.class_id is None]


def set_duplicate_classes(session: Session, batch: Batch, item_id: int | None = None) -> int:
    """Give the unlabelled images this batch met again (one item, or all of them) the class the import named, as one
    undoable decision. Returns how many images changed; raises ValueError when there is nothing to change."""
    items = [i for i in unlabelled_duplicates(batch) if item_id is None or i.id == item_id]
    classes = ClassCache(session)
    changes, seen = [], set()
    for item in items:
        if item.existing_id in seen:
            continue
        seen.add(item.existing_id)
        target = classes.get(item.source_class)
        session.flush()
        changes.append((item.existing, {"class_id": target.id}))
    if not changes:
        raise ValueError("Nothing to set: those images have a class already.")
    record(session, "relabel", changes, image_id=changes[0][0].id if len(changes) == 1 else None, batch_id=batch.id)
    session.commit()
    return len(changes)


# --- uploads held while the form asks for their class ---------------------------------------------------------

HELD_FILE = "held.json"  # in a spool folder: the spooled files and the token that lets the form take them up again


def hold_upload(spool: Path, spooled: list[dict]) -> str:
    """Keep spooled uploads for the form's second try (the class was missing); returns the token it must carry.
    `manage.py sweep` removes a held spool nobody took up again after SWEEP_MIN_AGE_S."""
    token = secrets.token_urlsafe(18)
    (spool / HELD_FILE).write_text(json.dumps({"token": token, "spooled": spooled}))
    return token


def held_upload(instance: Path | str, name: str, token: str) -> tuple[Path, list[dict]]:
    """The spool folder and files held by hold_upload, given the folder's name and its token; ValueError if the
    name or token is wrong or the files are gone."""
    spool_root = Path(instance) / "spool"
    folder = spool_root / name
    if not HELD_NAME.fullmatch(name or "") or not (folder / HELD_FILE).is_file():
        raise ValueError("The files you chose are no longer held: choose them again.")
    held = json.loads((folder / HELD_FILE).read_text())
    if not secrets.compare_digest(str(held.get("token", "")), token or ""):
        raise ValueError("The files you chose are no longer held: choose them again.")
    return folder, held["spooled"]


# --- as a job (core.jobs) ------------------------------------------------------------------------------------

def limits_dict(limits: Limits) -> dict:
    """Limits as plain data, for a job's arguments."""
    return dataclasses.asdict(limits)


def run_import_job(job) -> dict:
    """A web folder import or an upload's import step in its own process (core.jobs target).

    `job.args`: kind, source, limits, class_name, and either paths (+ roots) or spooled (spool_uploads' entries,
    under `spool`, which is removed at the end, however the job ends)."""
    from core.jobs import JobError
    from curator.imports.sources import SourceError
    from curator.imports.storing import CLI_WORKERS
    args = job.args
    limits = Limits(**args["limits"])
    with job.session(spool=args.get("spool")) as session:
        try:
            job.progress(0, None, "listing the files")
            if args.get("spooled") is not None:
                candidates = spooled_candidates(args["spooled"], args.get("class_name"), limits)
            else:
                roots = [Path(r) for r in args["roots"]] if args.get("roots") is not None else None
                candidates = list(iter_paths([Path(p) for p in args["paths"]], args.get("class_name"), limits,
                                             roots))
            job.progress(0, len(candidates), f"storing and indexing {len(candidates)} file(s)")
            batch = import_candidates(session, ImageStore(job.instance), candidates, kind=args["kind"],
                                      source=args["source"], limits=limits, workers=CLI_WORKERS,
                                      progress=lambda n: job.progress(add=n), origin="job")
            return {"batch": batch.id, "added": batch.added, "duplicates": batch.duplicates,
                    "rejected": batch.rejected}
        except (SourceError, ValueError, ImportBusy) as exc:
            raise JobError(str(exc)) from None


# --- sweeping what killed imports left -------------------------------------------------------------------------

SWEEP_MIN_AGE_S = 3600.0


def sweep(session: Session, instance: Path, *, min_age_s: float = SWEEP_MIN_AGE_S, dry_run: bool = False) -> dict:
    """Mark dead imports interrupted; remove abandoned upload spool folders and stored files (and thumbnails) that
    no row of the index references, older than `min_age_s`. Never a file a row names, whatever its image's status.
    While an import or job is running, stored files are all kept (its files are written before its rows)."""
    from core import jobs
    from curator.imports.orphans import find_orphans
    interrupted = find_interrupted(session)
    running = [b.id for b in session.scalars(select(Batch).where(Batch.state == IMPORTING))]
    unfinished = [j for j in jobs.all_jobs(instance) if not j.finished]
    paths = set(session.scalars(select(Image.path)))
    shas = set(session.scalars(select(Image.sha256)))
    session.rollback()  # (ends the read transaction)
    spools_in_use = {str(j.args.get("spool")) for j in unfinished if j.args.get("spool")}
    found = find_orphans(Path(instance), paths, shas, spools_in_use, min_age_s)
    files = [] if running or unfinished else found.files
    spool_bytes = sum(f.stat().st_size for d in found.spools for f in d.rglob("*") if f.is_file())
    freed = sum(p.stat().st_size for p in files if p.exists()) + spool_bytes
    if not dry_run:
        for path in files:
            path.unlink(missing_ok=True)
        for folder in found.spools:
            shutil.rmtree(folder, ignore_errors=True)
    return {"dry_run": dry_run, "files": [str(p) for p in files], "spools": [str(p) for p in found.spools],
            "bytes": freed, "kept_because_running": bool(found.files) and bool(running or unfinished),
            "running_batches": running, "unfinished_jobs": [j.id for j in unfinished],
            "interrupted": [{"batch": b.id, "sentence": interrupted_sentence(b)} for b in interrupted],
            "referenced_files": len(paths), "min_age_s": min_age_s}
