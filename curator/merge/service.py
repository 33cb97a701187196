"""Merge a new batch into the dataset: stage it, preview it against what is there, map classes, commit or discard.

Staging stores the files and creates `staged` images in a `staged` batch (curator.imports.service), without a class: the
source folder's name is kept in `BatchItem.source_class` until the user maps it to an existing or new class, so
nothing of an uncommitted merge shows in galleries, rankings or the class list. The preview sorts each file into
new, exact duplicate (same bytes or same pixels), near duplicate (beside the nearest existing image) or invalid
(with the reason). The commit is one transaction logged as one decision; a committed merge is undone as a whole by
the batch undo (its images set aside, never deleted), and a discard sets the staged images aside the same way.

Another Menagerie instance is a source too: its index is opened read-only and its active images are taken with
their classes and files.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from sqlalchemy import create_engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.db import transactional
from core.history import record
from core.models import ACTIVE, DUPLICATE, REJECTED, STAGED, Batch, BatchItem, Decision, Image, ImageClass, utcnow
from curator.dedup import service as dedup_service
from curator.dedup.matching import check_new, match_order
from curator.imports.service import ClassCache, import_candidates, writer_alive
from curator.imports.sources import Candidate, SourceError, check_allowed, check_path_name, iter_paths, read_limited
from curator.imports.storage import ImageStore
from curator.imports.storing import fingerprint_valid, normalise_class_name
from curator.imports.validation import Limits, Rejected

MERGE = "merge"
GENERATED = "generated"  # pictures a run made, sent back: staged like a merge, kept out of snapshots unless asked
KINDS = (MERGE, GENERATED)
INSTANCE_DB = "menagerie.sqlite3"
ACCEPTABLE = ("new", "near-duplicate", "duplicate")  # outcomes with a staged image the user may take in


class MergeError(ValueError):
    """A merge request we refuse; the message says why and that nothing changed."""


# --- sources -------------------------------------------------------------------------------------------------

def instance_folder(path: Path) -> Path | None:
    """The instance folder if `path` is another Menagerie instance (its folder or its index file)."""
    if path.is_dir() and (path / INSTANCE_DB).is_file():
        return path
    if path.is_file() and path.name == INSTANCE_DB:
        return path.parent
    return None


class _ReadOnlyConnection(sqlite3.Connection):
    """A connection type of its own, so core.db's connect hook (which switches the journal to WAL, a write)
    leaves it alone: that would fail on a read-only connection to an index not already in WAL mode."""


def _read_only_engine(db_path: Path):
    """SQLite opened read-only (mode=ro): merging from an instance can never change it."""
    uri = db_path.resolve().as_uri() + "?mode=ro"

    def connect():
        conn = sqlite3.connect(uri, uri=True, factory=_ReadOnlyConnection, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=15000")  # wait for the other instance's writer instead of failing
        return conn

    return create_engine("sqlite://", creator=connect)


def instance_candidates(folder: Path, limits: Limits = Limits()) -> list[Candidate]:
    """The active images of another instance, with their class names, as candidates."""
    engine = _read_only_engine(folder / INSTANCE_DB)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(Image.id, Image.path, Image.original_filename, ImageClass.name)
                                .outerjoin(ImageClass, Image.class_id == ImageClass.id)
                                .where(Image.status == ACTIVE).order_by(Image.id)).all()
    except SQLAlchemyError as exc:
        raise SourceError(f"{folder}: cannot read its Menagerie index ({getattr(exc, 'orig', None) or exc})") from None
    finally:
        engine.dispose()
    root = folder.resolve()
    out = []
    for image_id, rel, original, class_name in rows:
        name = f"{folder.name}/#{image_id} {original or Path(rel).name}"
        out.append(Candidate(name, class_name, _instance_reader(root, rel, limits)))
    return out


def _instance_reader(root: Path, rel: str, limits: Limits) -> Callable[[], bytes]:
    def read() -> bytes:
        path = (root / rel).resolve()
        if root not in path.parents:
            raise Rejected(f"its path {rel!r} leaves the instance folder: refused")
        if not path.is_file():
            raise Rejected(f"file missing from the other instance ({rel})")
        return read_limited(path, limits)
    return read


def merge_candidates(paths: list[Path], limits: Limits = Limits(), roots: list[Path] | None = None) -> list[Candidate]:
    """Candidates from folders (one subfolder per class), zips, files and other instances. Raises SourceError."""
    out: list[Candidate] = []
    for path in paths:
        check_path_name(path)
        check_allowed(path, roots)
        folder = instance_folder(path)
        if folder is not None:
            out.extend(instance_candidates(folder, limits))
        else:
            out.extend(iter_paths([path], None, limits, roots))
    return out


def bad_folder_names(candidates: Iterable[Candidate]) -> dict[str, str]:
    """{source folder: why it cannot be a class name} (the command line maps folders to classes as they are)."""
    bad = {}
    for c in candidates:
        if c.class_name and c.class_name not in bad:
            try:
                normalise_class_name(c.class_name)
            except ValueError as exc:
                bad[c.class_name] = str(exc)
    return bad


# --- classification ------------------------------------------------------------------------------------------

@dataclass
class Verdict:
    outcome: str  # new | duplicate | near-duplicate
    reason: str = ""
    existing_id: int | None = None  # the existing image (or, within the batch, the earlier staged image)
    other_key: object = None  # within the batch: the earlier new key it copies
    distance: int | None = None


def classify(session: Session, store: ImageStore, new: dict, names: dict | None = None,
             unsaved: dict | None = None) -> dict:
    """{key: Verdict} for new fingerprints against the active images (DuplicateIndex/check_new) and each other.

    Keys are staged image ids, or keys of `unsaved` (key -> reader of the bytes of a file not stored: a dry run)."""
    index, existing = dedup_service.existing_index(session)
    found: dict = {key: [] for key in new}
    checked = [m for matches in check_new(new, index, existing).values() for m in matches]
    for m in dedup_service.upgrade_same_pixels(session, store, checked, unsaved):  # one pass: each file read at most once
        found[m.a].append(m)
    for matches in found.values():
        matches.sort(key=match_order)
    names = names or {}
    out = {}
    for key, matches in found.items():
        if not matches:
            out[key] = Verdict("new")
            continue
        m = matches[0]
        in_batch = m.b in new
        distance = min(m.phash_distance, m.dhash_distance)
        where = f"another file of this batch ({names.get(m.b, m.b)})" if in_batch else f"#{m.b}"
        if m.kind == "exact":
            v = Verdict("duplicate", f"exact duplicate of {where}", distance=0)
        elif m.kind == "same-pixels":
            v = Verdict("duplicate", f"the same pixels as {where} (another encoding)", distance=0)
        else:
            v = Verdict("near-duplicate", f"near duplicate of {where} (hash distance {distance}, "
                                          f"similarity {m.score:.2f})", distance=distance)
        if in_batch:
            v.other_key = m.b
        else:
            v.existing_id = m.b
        out[key] = v
    return out


# --- staging -------------------------------------------------------------------------------------------------

def stage(session: Session, store: ImageStore, candidates: list[Candidate], *, source: str,
          limits: Limits = Limits(), workers: int = 1, progress: Callable[[int], None] | None = None,
          origin: str = "web", kind: str = MERGE) -> Batch:
    """Store the files and create the staged batch, then sort its items for the preview. Returns the batch.
    `workers` as for curator.imports.service.import_candidates (the command line passes 2). `origin` ("cli",
    "web", "job") is noted on the batch with the process: a command-line merge killed after staging is resumed by
    its next run (`unfinished_merges`). `kind` GENERATED marks pictures a run made (trainer.generation_service):
    they wait in the same preview, and even once accepted snapshots leave them out unless asked."""
    if kind not in KINDS:
        raise MergeError(f"a staged batch is of kind {' or '.join(KINDS)}, not {kind!r}")
    batch = import_candidates(session, store, candidates, kind=kind, source=source, limits=limits, staged=True,
                              workers=workers, progress=progress, origin=origin)
    dedup_service.refresh_fingerprints(session, store)  # the dataset's, compared below (after an upgrade)
    analyse(session, store, batch)
    return batch


@dataclass
class Unfinished:
    """A staged merge of the same source found before a new command-line merge: `resume` it, or refuse."""
    batch: Batch
    resume: bool
    reason: str


def unfinished_merges(session: Session, source: str) -> list[Unfinished]:
    """Staged merges of exactly this source. One a command-line run staged and whose process is gone was
    interrupted between staging and commit: the next run resumes it (commits it) instead of staging the same files
    again, which would find them all exact duplicates of its staged images and add nothing. One staged from the
    web waits for a person's review, and one whose process still runs is busy: a new run must not take either."""
    out = []
    for batch in session.scalars(select(Batch).where(Batch.kind == MERGE, Batch.state == "staged",
                                                     Batch.source == source).order_by(Batch.id)):
        origin = _note(batch).get("origin")
        if origin == "cli" and not writer_alive(batch):
            out.append(Unfinished(batch, True, f"merge #{batch.id} of the same files was staged by an earlier run "
                                               "that stopped before committing it: it is committed now"))
        elif origin == "cli":
            out.append(Unfinished(batch, False, f"merge #{batch.id} of the same files is being run by another "
                                                f"process (pid {_note(batch).get('pid')}): wait for it to end"))
        else:
            out.append(Unfinished(batch, False, f"merge #{batch.id} of the same files is staged and waits for "
                                                f"review on /merge/{batch.id}: commit or discard it there first"))
    return out


def _note(batch: Batch) -> dict:
    try:
        note = json.loads(batch.note or "{}")
    except ValueError:
        note = {}
    return note if isinstance(note, dict) else {}


def _set_note(batch: Batch, **values) -> None:
    batch.note = json.dumps({**_note(batch), **values})


@transactional
def analyse(session: Session, store: ImageStore, batch: Batch) -> None:
    """Sort the staged images into new / duplicate / near duplicate against the active images.

    Exact byte duplicates were found by the import (no staged image); this adds same-pixels and near duplicates and
    sets what is accepted by default (new images only). Safe to run again (the preview does if it was interrupted).
    The dataset's fingerprints of an older version are recomputed before (``dedup_service.refresh_fingerprints``).
    """
    items = [i for i in batch.items if i.image is not None and i.image.status == STAGED]
    new = {i.image.id: dedup_service.Fingerprint(i.image.sha256, i.image.pixel_hash, i.image.phash,
                                                  i.image.dhash, i.image.fingerprint) for i in items}
    verdicts = classify(session, store, new, {i.image.id: i.filename for i in items})
    for item in items:
        v = verdicts[item.image.id]
        item.outcome, item.distance = v.outcome, v.distance
        item.existing_id = v.existing_id if v.other_key is None else v.other_key
        item.reason = v.reason or item.reason
        item.accepted = v.outcome == "new"
    for item in batch.items:
        if item.image is None:
            item.accepted = None
            if item.outcome == "duplicate":
                item.distance = 0
            if item.outcome == "duplicate" and item.existing is not None and item.existing.status != ACTIVE:
                item.reason = f"{item.reason} (#{item.existing_id} is {item.existing.status})"
    _set_note(batch, analysed=True)


def fits_in_a_request(session: Session, files: int, file_limit: int, fingerprint_limit: int) -> bool:
    """Whether staging `files` files may run in the request: at most `file_limit`, and at most `fingerprint_limit`
    fingerprints of an older version in the dataset, which are recomputed first (after an upgrade, every image's)."""
    return files <= file_limit and dedup_service.old_fingerprints(session) <= fingerprint_limit


def needs_analysis(batch: Batch) -> bool:
    """A staged batch not sorted yet (staged by a run's generation, or a merge interrupted before its analysis)."""
    return batch.state == "staged" and not _note(batch).get("analysed")


def analysis_fits_in_a_request(session: Session, batch: Batch, fingerprint_limit: int) -> bool:
    """Whether opening the preview may analyse `batch` in the request: it needs no analysis, or the dataset has at
    most `fingerprint_limit` fingerprints of an older version to recompute first."""
    return not needs_analysis(batch) or dedup_service.old_fingerprints(session) <= fingerprint_limit


def ensure_analysed(session: Session, store: ImageStore, batch: Batch) -> None:
    if needs_analysis(batch):
        dedup_service.refresh_fingerprints(session, store)
        analyse(session, store, batch)


# --- the preview ---------------------------------------------------------------------------------------------

@dataclass
class SourceClass:
    source: str  # folder name in the source ("" for loose files)
    files: int
    target: str  # the class it goes to ("" = no class)
    exists: bool


@dataclass
class Preview:
    batch: Batch
    new: list[BatchItem] = field(default_factory=list)
    near: list[BatchItem] = field(default_factory=list)
    duplicates: list[BatchItem] = field(default_factory=list)
    invalid: list[BatchItem] = field(default_factory=list)
    sources: list[SourceClass] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(1 for i in self.batch.items if i.accepted and i.image_id)

    def counts(self) -> dict:
        return {"new": len(self.new), "near_duplicates": len(self.near), "duplicates": len(self.duplicates),
                "invalid": len(self.invalid), "accepted": self.accepted}


def default_target(source: str) -> str:
    try:
        return normalise_class_name(source) if source else ""
    except ValueError:
        return ""


def get_merge(session: Session, batch_id) -> Batch:
    try:
        batch = session.get(Batch, int(batch_id))
    except (TypeError, ValueError):
        batch = None
    if batch is None or batch.kind not in KINDS:
        raise MergeError(f"no merge #{batch_id}")
    return batch


def preview(session: Session, batch: Batch) -> Preview:
    p = Preview(batch)
    for item in batch.items:
        if item.outcome == "rejected":
            p.invalid.append(item)
        elif item.outcome in ("new", "added"):
            p.new.append(item)
        elif item.outcome == "near-duplicate":
            p.near.append(item)
        else:
            p.duplicates.append(item)
    mapping = _note(batch).get("mapping", {})
    existing = set(session.scalars(select(ImageClass.name)))
    counts: dict[str, int] = {}
    for item in batch.items:
        if item.image_id is not None:
            counts[item.source_class] = counts.get(item.source_class, 0) + 1
    for source in sorted(counts):
        target = mapping.get(source, default_target(source))
        p.sources.append(SourceClass(source, counts[source], target, target in existing))
    return p


def parse_mapping(raw: dict[str, str]) -> dict[str, str]:
    """{source folder: class name or ""} with every target checked; MergeError naming every bad one."""
    out, errors = {}, []
    for source, target in raw.items():
        target = (target or "").strip()
        try:
            out[source] = normalise_class_name(target) if target else ""
        except ValueError as exc:
            errors.append(f"{source or '(loose files)'}: {exc}")
    if errors:
        raise MergeError("class mapping refused, nothing changed: " + "; ".join(errors))
    return out


def _require_staged(batch: Batch) -> None:
    if batch.state != "staged":
        raise MergeError(f"merge #{batch.id} is {batch.state}: only a staged merge can be changed")


@transactional
def save_mapping(session: Session, batch: Batch, raw: dict[str, str]) -> dict[str, str]:
    _require_staged(batch)
    mapping = parse_mapping(raw)
    _set_note(batch, mapping={**_note(batch).get("mapping", {}), **mapping})
    return mapping


def _set_accepted(session: Session, batch: Batch, item_ids: Iterable, accepted: bool) -> list[BatchItem]:
    """Accept or decline items of a staged merge; MergeError (nothing changed) for ids not in it."""
    _require_staged(batch)
    by_id = {i.id: i for i in batch.items}
    chosen, bad = [], []
    for raw in item_ids:
        try:
            item = by_id.get(int(raw))
        except (TypeError, ValueError):
            item = None
        if item is None:
            bad.append(f"{raw!s} is not an item of merge #{batch.id}")
        elif item.image_id is None:
            bad.append(f"{item.filename} has no image to take in ({item.outcome})")
        else:
            chosen.append(item)
    if bad:
        raise MergeError("; ".join(bad) + ": nothing changed")
    for item in chosen:
        item.accepted = accepted
    return chosen


set_accepted = transactional(_set_accepted)


@transactional
def accept_outcome(session: Session, batch: Batch, outcome: str, accepted: bool = True) -> int:
    """Accept (or decline) every item with this outcome, e.g. all new images."""
    if outcome not in ACCEPTABLE:
        raise MergeError(f"unknown outcome {outcome!r}: choose one of {', '.join(ACCEPTABLE)}")
    items = [i for i in batch.items if i.outcome == outcome and i.image_id is not None]
    _set_accepted(session, batch, [i.id for i in items], accepted)
    return len(items)


# --- commit / discard ----------------------------------------------------------------------------------------

@transactional
def commit(session: Session, batch: Batch, raw_mapping: dict[str, str] | None = None, *, actor: str = "") -> Decision:
    """Take the accepted staged images in (active, mapped class) and set the rest aside (rejected), in ONE
    transaction logged as ONE decision. Anything failing half way rolls everything back."""
    _require_staged(batch)
    mapping = {**_note(batch).get("mapping", {}), **parse_mapping(raw_mapping or {})}
    items = [i for i in batch.items if i.image is not None]
    changed = [f"{i.filename} is {i.image.status}" for i in items if i.image.status != STAGED]
    if changed:
        raise MergeError(f"merge #{batch.id} changed since it was staged ({'; '.join(changed[:5])}): "
                         "nothing was committed")
    classes = ClassCache(session)
    target = {}
    for item in items:  # declined files keep their class too: set aside, never "(unlabelled)"
        name = mapping.get(item.source_class, default_target(item.source_class))
        target[item.id] = classes.get(name) if name else None
    session.flush()  # new classes get their ids
    accepted_images = {i.image_id for i in items if i.accepted}
    changes = []
    for item in items:
        keeper = _copy_of(item)
        if item.accepted:
            cls = target[item.id]
            changes.append((item.image, {"status": ACTIVE, "class_id": cls.id if cls else None,
                                         "status_reason": ""}))
        elif keeper is not None and (keeper.status == ACTIVE or keeper.id in accepted_images):
            # a declined copy is what it is: a duplicate of the image kept, in that image's class
            changes.append((item.image, {"status": DUPLICATE, "duplicate_of_id": keeper.id,
                                         "class_id": _class_after(keeper, items, target),
                                         "status_reason": f"{item.reason}; not accepted in merge #{batch.id}"}))
        else:
            cls = target[item.id]
            changes.append((item.image, {"status": REJECTED, "class_id": cls.id if cls else None,
                                         "status_reason": f"not accepted in merge #{batch.id}"}))
    decision = record(session, "merge", changes + [(batch, {"state": "committed"})], actor=actor,
                      batch_id=batch.id)
    accepted = sum(1 for i in items if i.accepted)
    batch.committed = utcnow()
    batch.added = accepted
    # the report's "exact duplicates skipped": same bytes (no staged image) or same pixels, not taken in
    batch.duplicates = sum(1 for i in batch.items if i.outcome == "duplicate" and not (i.accepted and i.image_id))
    batch.rejected = len(batch.items) - batch.added - batch.duplicates
    _set_note(batch, mapping=mapping)
    return decision


def _copy_of(item: BatchItem) -> Image | None:
    """The image a staged duplicate or near duplicate copies (an existing image or another file of the merge)."""
    if item.outcome in ("duplicate", "near-duplicate") and item.existing is not None:
        return item.existing
    return None


def _class_after(image: Image, items: list[BatchItem], target: dict) -> int | None:
    """The class `image` has once the merge is committed (a staged image gets its mapped class)."""
    if image.status != STAGED:
        return image.class_id
    item = next((i for i in items if i.image_id == image.id), None)
    cls = target.get(item.id) if item is not None else None
    return cls.id if cls else None


@transactional
def discard(session: Session, batch: Batch, *, actor: str = "") -> Decision:
    """Set a staged merge aside: its images become rejected (kept, not deleted), the batch `discarded` (never
    `undone`, which is a committed batch taken back: a discarded merge added nothing); undoable."""
    _require_staged(batch)
    images = [i.image for i in batch.items if i.image is not None and i.image.status == STAGED]
    changes = [(img, {"status": REJECTED, "status_reason": f"merge #{batch.id} discarded"}) for img in images]
    decision = record(session, "merge-discard", changes + [(batch, {"state": "discarded"})], actor=actor,
                      batch_id=batch.id)
    return decision


def discard_decision(session: Session, batch: Batch) -> Decision | None:
    """The live decision that discarded this merge, if any (its undo brings the staged merge back). Merges discarded
    before the state "discarded" existed read "undone" and are found too."""
    if batch.state not in ("discarded", "undone"):
        return None
    return session.scalar(select(Decision).where(Decision.batch_id == batch.id, Decision.kind == "merge-discard",
                                                 Decision.undone_by_id.is_(None)))


def staged_merges(session: Session) -> list[Batch]:
    """Staged batches waiting for review: merges and generated pictures sent from runs, newest first."""
    return list(session.scalars(select(Batch).where(Batch.kind.in_(KINDS), Batch.state == "staged")
                                .order_by(Batch.id.desc())))


# --- dry run -------------------------------------------------------------------------------------------------

@dataclass
class PlanItem:
    """What a merge would do with one file, computed without storing anything (`merge --dry-run`)."""
    filename: str
    source_class: str
    outcome: str  # new | duplicate | near-duplicate | rejected
    reason: str = ""
    existing_id: int | None = None
    distance: int | None = None


def dry_run(session: Session, store: ImageStore, candidates: list[Candidate], limits: Limits = Limits(),
            progress: Callable[[int], None] | None = None) -> list[PlanItem]:
    """The preview of a merge with nothing written: no files, no rows."""
    plan: list[PlanItem] = []
    fps: dict[str, dedup_service.Fingerprint] = {}  # keys never collide with existing image ids
    readers = {f"new-{n}": c.read for n, c in enumerate(candidates)}
    for n, c in enumerate(candidates):
        item = PlanItem(c.name, c.class_name or "", "rejected")
        try:
            data = c.read()
            _valid, fp = fingerprint_valid(data, limits)
            fps[f"new-{n}"] = dedup_service.Fingerprint(fp.sha256, fp.pixel_hash, fp.phash, fp.dhash, fp.thumb)
            item.outcome = "new"
        except Rejected as exc:
            item.reason = exc.reason
        plan.append(item)
        if progress:
            progress(1)
    # exact byte duplicates of any stored image (as the import would find them), then of earlier files
    shas = [fp.sha256 for fp in fps.values()]
    stored: dict[str, Image] = {}
    for lo in range(0, len(shas), dedup_service.CHUNK):
        stored.update({i.sha256: i for i in session.scalars(select(Image).where(
            Image.sha256.in_(shas[lo:lo + dedup_service.CHUNK])))})
    first: dict[str, int] = {}
    for key, fp in list(fps.items()):
        n = int(key[4:])
        if fp.sha256 in stored:
            img = stored[fp.sha256]
            plan[n].outcome, plan[n].existing_id, plan[n].distance = "duplicate", img.id, 0
            plan[n].reason = "exact duplicate of an image already in the index" + (
                f" (#{img.id} is {img.status})" if img.status != ACTIVE else "")
            del fps[key]
        elif fp.sha256 in first:
            plan[n].outcome, plan[n].distance = "duplicate", 0
            plan[n].reason = f"exact duplicate of another file in this batch ({plan[first[fp.sha256]].filename})"
            del fps[key]
        else:
            first[fp.sha256] = n
    names = {k: plan[int(k[4:])].filename for k in fps}
    for key, v in classify(session, store, fps, names, {k: readers[k] for k in fps}).items():
        n = int(key[4:])
        plan[n].outcome, plan[n].reason, plan[n].distance = v.outcome, v.reason, v.distance
        plan[n].existing_id = v.existing_id
    return plan


# --- as jobs (core.jobs) ---------------------------------------------------------------------------------------

def run_stage_job(job) -> dict:
    """Stage a merge in its own process (core.jobs target). `job.args`: source, limits, and paths (+ roots) or
    spooled uploads (under `spool`, removed at the end)."""
    from core.jobs import JobError
    from curator.imports.service import ImportBusy, spooled_candidates
    from curator.imports.storing import CLI_WORKERS
    args = job.args
    limits = Limits(**args["limits"])
    with job.session(spool=args.get("spool")) as session:
        try:
            job.progress(0, None, "listing the files")
            if args.get("spooled") is not None:
                candidates = spooled_candidates(args["spooled"], None, limits)
            else:
                roots = [Path(r) for r in args["roots"]] if args.get("roots") is not None else None
                candidates = merge_candidates([Path(p) for p in args["paths"]], limits, roots)
            job.progress(0, len(candidates), f"storing {len(candidates)} file(s)")
            batch = import_candidates(session, ImageStore(job.instance), candidates, kind=MERGE,
                                      source=args["source"], limits=limits, staged=True, workers=CLI_WORKERS,
                                      origin="job", progress=lambda n: job.progress(add=n))
            store = ImageStore(job.instance)
            dedup_service.refresh_fingerprints(session, store, progress=lambda files, total: job.progress(
                files, total, dedup_service.OLD_VERSION))
            job.progress(0, 0, "comparing with the dataset")
            analyse(session, store, batch)
            return {"batch": batch.id}
        except (SourceError, ValueError, ImportBusy) as exc:
            raise JobError(str(exc)) from None


def run_commit_job(job) -> dict:
    """Commit a staged merge in its own process (core.jobs target): one transaction, as in the request."""
    from core.jobs import JobError
    with job.session() as session:
        try:
            job.progress(0, None, "committing")
            batch = get_merge(session, int(job.args["batch"]))
            decision = commit(session, batch, job.args.get("mapping") or {}, actor=job.args.get("actor") or "")
            return {"batch": batch.id, "added": batch.added, "decision": decision.id}
        except MergeError as exc:
            raise JobError(str(exc)) from None
