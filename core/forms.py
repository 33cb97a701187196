"""Form fields parsed with a clear message per bad field: the forms of every feature share it (pure, no Flask)."""
from __future__ import annotations

import math


def as_sentence(message: str) -> str:
    """A service's message ("invalid class name 'x': use ...") as a sentence for a page: capital, full stop."""
    return message[:1].upper() + message[1:] + ("" if message.endswith((".", "?", "!")) else ".")


class FormErrors(dict):
    def number(self, form, key: str, label: str, kind, lo, hi, *, required: bool = True):
        raw = (form.get(key) or "").strip()
        if not raw:
            if required:
                self[key] = f"{label} is required."
            return None
        try:
            value = kind(raw)
        except ValueError:
            self[key] = f"{label} must be a {'whole number' if kind is int else 'number'}, not {raw!r}."
            return None
        if kind is float and not math.isfinite(value):
            self[key] = f"{label} must be a finite number."
            return None
        if not lo <= value <= hi:
            self[key] = f"{label} must be between {lo:g} and {hi:g} (got {raw})."
            return None
        return value

    def choice(self, form, key: str, label: str, choices, default=None):
        value = (form.get(key) or default or "").strip()
        if value not in choices:
            self[key] = f"{label} must be one of {', '.join(choices)} (got {value!r})."
            return None
        return value
