"""What a decision changed, in words a person reads in the history ("class cat → dog", "status active →
rejected"), and when, relative to now ("3 minutes ago"). Pure: the caller passes the class names by id."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

NO_CLASS = "(unlabelled)"
FIELD_WORDS = {"class_id": "class", "status": "status", "status_reason": "reason", "duplicate_of_id": "duplicate of",
               "flagged": "flagged", "selected": "in top-k", "state": "batch"}


@dataclass(frozen=True)
class Change:
    """One field's before → after, over `count` rows (a batch undo changes many images the same way)."""
    field: str
    before: str
    after: str
    count: int = 1

    def __str__(self) -> str:
        return f"{self.field} {self.before} → {self.after}"


def _word(field: str, value: Any, class_names: dict[int, str]) -> str:
    if field == "class_id":
        return NO_CLASS if value is None else class_names.get(value, f"class #{value}")
    if field == "duplicate_of_id":
        return "none" if value is None else f"#{value}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value in (None, ""):
        return "—"
    return str(value)


def changes(before: dict, after: dict, class_names: dict[int, str]) -> list[Change]:
    """The before → after of every field a decision touched, the same change on several rows counted once.
    An emptied or unchanged reason is left out: it only ever accompanies a status change."""
    counted: dict[tuple[str, str, str], int] = {}
    for table, rows in after.items():
        for key, values in rows.items():
            old = before.get(table, {}).get(key, {})
            for field, value in values.items():
                if field == "status_reason" and not value:
                    continue
                was, now = _word(field, old.get(field), class_names), _word(field, value, class_names)
                if was == now:
                    continue
                name = FIELD_WORDS.get(field, field.replace("_", " "))
                counted[(name, was, now)] = counted.get((name, was, now), 0) + 1
    return [Change(f, b, a, n) for (f, b, a), n in counted.items()]


def image_ids(after: dict) -> list[int]:
    """The images a decision touched, in the order it recorded them."""
    return [int(key) for key in after.get("image", {})]


def relative(when: dt.datetime, now: dt.datetime) -> str:
    """'just now', '5 minutes ago', '3 hours ago', 'yesterday', '4 days ago', then the date."""
    seconds = max(0, int((now - when).total_seconds()))
    if seconds < 45:
        return "just now"
    for limit, step, unit in ((3600, 60, "minute"), (86400, 3600, "hour")):
        if seconds < limit:
            n = max(1, seconds // step)
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    days = seconds // 86400
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    return when.strftime("%Y-%m-%d")
