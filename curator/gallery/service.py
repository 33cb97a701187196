"""The gallery and its history: browse images by class, status and batch; relabel, reject and restore one image;
undo any decision. Each change is one transaction, recorded in the history (core.history) so it can be undone."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.history import UndoError, image_changes, record, undo
from core.models import ACTIVE, IMAGE_STATUSES, REJECTED, UNLABELLED, Decision, Image, ImageClass, utcnow
from curator.gallery import describe
from curator.imports.service import ClassCache


@dataclass
class ClassSummary:
    name: str  # UNLABELLED for images without a class
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def class_summaries(session: Session) -> list[ClassSummary]:
    """Every class with its image counts by status (classes with no images too), unlabelled last if any."""
    rows = session.execute(select(ImageClass.name, Image.status, func.count(Image.id))
                           .select_from(ImageClass).outerjoin(Image).group_by(ImageClass.name, Image.status))
    by_name: dict[str, dict[str, int]] = {}
    for name, status, count in rows:
        counts = by_name.setdefault(name, {s: 0 for s in IMAGE_STATUSES})
        if status:
            counts[status] = count
    summaries = [ClassSummary(n, c) for n, c in sorted(by_name.items())]
    loose = dict(session.execute(select(Image.status, func.count()).where(Image.class_id.is_(None))
                                 .group_by(Image.status)).all())
    if loose:
        summaries.append(ClassSummary(UNLABELLED, {s: loose.get(s, 0) for s in IMAGE_STATUSES}))
    return summaries


def class_thumbnails(session: Session, names: list[str], per_class: int = 4) -> dict[str, list[Image]]:
    """A few active images per class for its card on the dataset page: chosen (top-k) ones first, then the newest,
    so a class's card shows what the class is about."""
    thumbs: dict[str, list[Image]] = {}
    for name in names:
        thumbs[name] = list(session.scalars(
            gallery_query(session, name, ACTIVE, None).order_by(None)
            .order_by(Image.selected.desc(), Image.id.desc()).limit(per_class)))
    return thumbs


def has_class(session: Session, name: str) -> bool:
    return session.scalar(select(ImageClass.id).where(ImageClass.name == name)) is not None


def gallery_query(session: Session, class_name: str | None, status: str | None, batch_id: int | None) -> Select:
    """Images of one class (None: every class; UNLABELLED: no class), newest first, filtered."""
    q = select(Image)
    if class_name == UNLABELLED:
        q = q.where(Image.class_id.is_(None))
    elif class_name is not None:
        q = q.join(ImageClass).where(ImageClass.name == class_name)
    if status:
        q = q.where(Image.status == status)
    if batch_id:
        q = q.where(Image.batch_id == batch_id)
    return q.order_by(Image.id.desc())


def page(session: Session, query: Select, number: int, size: int) -> tuple[list[Image], bool]:
    """One page of results and whether there is another."""
    rows = list(session.scalars(query.offset((number - 1) * size).limit(size + 1)))
    return rows[:size], len(rows) > size


def count(session: Session, query: Select) -> int:
    return session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))


def neighbours(session: Session, query: Select, image: Image) -> tuple[int | None, int | None]:
    """Previous and next image ids in a gallery ordering (newest first): for keyboard navigation."""
    newer = session.scalar(query.where(Image.id > image.id).order_by(None).order_by(Image.id.asc())
                           .with_only_columns(Image.id).limit(1))
    older = session.scalar(query.where(Image.id < image.id).with_only_columns(Image.id).limit(1))
    return newer, older


def image_history(session: Session, image: Image) -> list[Decision]:
    return list(session.scalars(select(Decision).where(Decision.image_id == image.id).order_by(Decision.id.desc())))


def recent_decisions(session: Session, limit: int = 200) -> list[Decision]:
    return list(session.scalars(select(Decision).order_by(Decision.id.desc()).limit(limit)))


@dataclass
class HistoryEntry:
    """One decision as the history shows it: what changed in words, on which image (the first, if several), when."""
    decision: Decision
    changes: list[describe.Change]
    image_id: int | None
    images: int
    ago: str


def history_entries(session: Session, decisions: list[Decision]) -> list[HistoryEntry]:
    names = dict(session.execute(select(ImageClass.id, ImageClass.name)).tuples().all())
    now = utcnow()
    entries = []
    for d in decisions:
        touched = describe.image_ids(d.after)
        entries.append(HistoryEntry(d, describe.changes(d.before, d.after, names), d.image_id or next(iter(touched), None),
                                    len(touched), describe.relative(d.created, now)))
    return entries


def relabel(session: Session, image: Image, class_name: str) -> str:
    """Move one image to a class (made if new); raises ValueError for a bad name. Returns what happened."""
    target = ClassCache(session).get(class_name)
    session.flush()
    if target.id == image.class_id:
        session.rollback()
        return f"Already in {target.name}."
    record(session, "relabel", [(image, {"class_id": target.id})], image_id=image.id)
    session.commit()
    return f"Moved to {target.name}."


def set_status(session: Session, image: Image, status: str, reason: str = "") -> str | None:
    """Reject or restore one image (never deleted; undoable). Returns what happened, or None if nothing changed."""
    if status not in (ACTIVE, REJECTED):
        raise ValueError(f"Unknown status {status!r}: choose active or rejected.")
    reason = reason.strip()[:500] or ("rejected by hand" if status == REJECTED else "")
    changes = image_changes([image], status=status, status_reason=reason, duplicate_of_id=None)
    if not changes:
        return None
    record(session, "reject" if status == REJECTED else "restore", changes, image_id=image.id)
    session.commit()
    return "Rejected." if status == REJECTED else "Restored."


def undo_decision(session: Session, decision: Decision) -> str:
    """Undo one decision in its own transaction; raises UndoError (nothing changed) when a later change would be
    lost."""
    try:
        undo(session, decision)
        session.commit()
    except UndoError:
        session.rollback()
        raise
    return f"Undid #{decision.id} ({decision.kind})."
