"""Read-side queries the gallery pages and the command line share."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from .models import IMAGE_STATUSES, Batch, Image, ImageClass

UNLABELLED = "_unlabelled"  # the gallery's name for images without a class (no class name starts with "_")


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


def neighbours(session: Session, query: Select, image: Image) -> tuple[int | None, int | None]:
    """Previous and next image ids in a gallery ordering (newest first): for keyboard navigation."""
    newer = session.scalar(query.where(Image.id > image.id).order_by(None).order_by(Image.id.asc())
                           .with_only_columns(Image.id).limit(1))
    older = session.scalar(query.where(Image.id < image.id).with_only_columns(Image.id).limit(1))
    return newer, older


def recent_batches(session: Session, limit: int = 50) -> list[Batch]:
    return list(session.scalars(select(Batch).order_by(Batch.id.desc()).limit(limit)))


def class_names(session: Session) -> list[str]:
    return list(session.scalars(select(ImageClass.name).order_by(ImageClass.name)))
