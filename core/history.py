"""Every change a user makes goes through here: applied, logged with what it replaced, and undoable.

A decision records, per row it touched, the fields before and after. Undo puts the `before` values back, but only
while the rows still hold the `after` values — otherwise a later change would be silently lost, so it refuses and
says which. An undo is itself a decision, so it can be undone too.

Each decision names who made it (`actor`): the caller may say, otherwise it is whoever the current web request is
from (core.auth: the logged-in account, or a login-free browser's own guest name); from the command line, "".
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.auth import current_actor
from core.models import Batch, Decision, Image

TRACKED: dict[str, tuple[type, tuple[str, ...]]] = {
    "image": (Image, ("class_id", "status", "status_reason", "duplicate_of_id", "flagged", "selected")),
    "batch": (Batch, ("state",)),
}
TABLE_OF = {model: table for table, (model, _fields) in TRACKED.items()}


class UndoError(Exception):
    """The decision cannot be undone (already undone, or changed since); the message says why."""


def record(session: Session, kind: str, changes: list[tuple[Any, dict[str, Any]]], *, actor: str = "",
           image_id: int | None = None, batch_id: int | None = None) -> Decision:
    """Apply `changes` ([(row, {field: new value})]) and log them as one decision. The caller commits."""
    before: dict[str, dict[str, dict]] = {}
    after: dict[str, dict[str, dict]] = {}
    for row, values in changes:
        table = TABLE_OF[type(row)]
        allowed = TRACKED[table][1]
        unknown = set(values) - set(allowed)
        if unknown:
            raise ValueError(f"{table} fields {sorted(unknown)} are not tracked for undo")
        if row.id is None:
            session.flush()
        key = str(row.id)
        before.setdefault(table, {})[key] = {f: getattr(row, f) for f in values}
        after.setdefault(table, {})[key] = dict(values)
        for field, value in values.items():
            setattr(row, field, value)
    decision = Decision(kind=kind, before=before, after=after, actor=actor or current_actor(), image_id=image_id,
                        batch_id=batch_id)
    session.add(decision)
    return decision


def undo(session: Session, decision: Decision, *, actor: str = "") -> Decision:
    """Revert a decision (see module docstring). The caller commits."""
    if decision.undone_by_id is not None:
        raise UndoError(f"decision #{decision.id} ({decision.kind}) was already undone")
    rows = []
    for table, by_id in decision.after.items():
        model = TRACKED[table][0]
        for key, values in by_id.items():
            row = session.get(model, int(key))
            changed = [f for f, v in values.items() if getattr(row, f) != v]
            if changed:
                raise UndoError(f"cannot undo #{decision.id} ({decision.kind}): {table} {key} changed since "
                                f"({', '.join(changed)}); undo the later change first")
            rows.append((row, decision.before[table][key]))
    reverse = record(session, "undo", rows, actor=actor, image_id=decision.image_id, batch_id=decision.batch_id)
    reverse.undo_of_id = decision.id
    session.flush()
    decision.undone_by_id = reverse.id
    return reverse


def image_changes(images: list[Image], **values: Any) -> list[tuple[Image, dict[str, Any]]]:
    """The same new values for several images, skipping those that already hold them."""
    return [(img, values) for img in images if any(getattr(img, f) != v for f, v in values.items())]
