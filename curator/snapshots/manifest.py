"""The snapshot manifest format and its pure logic: preprocessing settings and their checks, the manifest built
from a selection, and what changed between two manifests. No database: curator.snapshots.service persists them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import ImageColor

from diffusion.config import FITS

SELECTIONS = ("active", "top-k")
MIN_SIZE, MAX_SIZE = 8, 512
MANIFEST_FORMAT = "menagerie-snapshot-1"


class SnapshotError(ValueError):
    """The snapshot cannot be made as asked; the message says why and nothing was written."""


@dataclass(frozen=True)
class Preprocess:
    """How training turns each stored image into a square tensor (the snapshot's default)."""
    image_size: int = 32
    fit: str = "crop"
    background: str = "white"

    def validate(self) -> "Preprocess":
        if not isinstance(self.image_size, int) or not MIN_SIZE <= self.image_size <= MAX_SIZE:
            raise SnapshotError(f"image size {self.image_size!r} must be a whole number from {MIN_SIZE} to {MAX_SIZE}")
        if self.image_size % 4:
            raise SnapshotError(f"image size {self.image_size} must be a multiple of 4 (the model halves it twice)")
        if self.fit not in FITS:
            raise SnapshotError(f"fit {self.fit!r} must be 'crop' or 'pad'")
        if problem := background_problem(self.background):
            raise SnapshotError(problem)
        return self


def background_problem(background: str) -> str | None:
    """Why `background` is not a colour to put behind transparency nor 'alpha' (None when it is one)."""
    if background == "alpha":
        return None
    try:
        ImageColor.getrgb(background)
    except (ValueError, AttributeError):
        return f"background {background!r} must be 'alpha' (keep transparency) or a colour such as 'white' or '#808080'"
    return None


def build_manifest(snapshot_id: str, name: str, created: str, prep: Preprocess, selection: str,
                   top_k: int | None, chosen: dict[str, list], instance_path: Path, folder: Path,
                   generated: dict | None = None) -> dict:
    """The manifest of a selection ({class: images with .sha256, .path, .id}): sorted, so equal selections give
    equal files; item paths are relative to the snapshot's folder. `generated` records whether images a run
    generated were included, and how many were left out ({"included": bool, "left_out": n})."""
    return {
        "generated": generated or {"included": False, "left_out": 0},
        "format": MANIFEST_FORMAT, "id": snapshot_id, "name": name, "created": created, "classes": sorted(chosen),
        "preprocess": {"image_size": prep.image_size, "fit": prep.fit, "background": prep.background},
        "selection": selection, "top_k": top_k, "counts": {c: len(images) for c, images in chosen.items()},
        "items": [{"sha256": img.sha256, "path": os.path.relpath(instance_path / img.path, folder),
                   "label": label, "image_id": img.id}
                  for label in sorted(chosen) for img in sorted(chosen[label], key=lambda i: i.sha256)],
    }


@dataclass
class ClassDiff:
    name: str
    before: int
    after: int
    added: int  # images in this class now that were not in it before (new, or relabelled into it)
    removed: int


@dataclass
class SnapshotDiff:
    """What changed from one snapshot to the next, per class, and in the preprocessing."""
    previous_id: str | None
    classes: list[ClassDiff] = field(default_factory=list)
    settings: dict[str, tuple] = field(default_factory=dict)  # setting: (before, after)

    @property
    def added(self) -> int:
        return sum(c.added for c in self.classes)

    @property
    def removed(self) -> int:
        return sum(c.removed for c in self.classes)

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.settings)

    def to_dict(self) -> dict:
        return {"previous": self.previous_id, "added": self.added, "removed": self.removed,
                "settings": {k: list(v) for k, v in self.settings.items()},
                "classes": {c.name: {"before": c.before, "after": c.after, "added": c.added, "removed": c.removed}
                            for c in self.classes}}


def _members(manifest: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {c: set() for c in manifest.get("classes", [])}
    for item in manifest.get("items", []):
        out.setdefault(item["label"], set()).add(item["sha256"])
    return out


def diff_manifests(before: dict | None, after: dict) -> SnapshotDiff:
    """Per-class added/removed images (by content hash) and changed preprocessing between two manifests."""
    old = _members(before) if before else {}
    new = _members(after)
    classes = [ClassDiff(name, len(old.get(name, ())), len(new.get(name, ())),
                         len(new.get(name, set()) - old.get(name, set())),
                         len(old.get(name, set()) - new.get(name, set())))
               for name in sorted(set(old) | set(new))]
    settings = {}
    if before:
        for key in ("image_size", "fit", "background"):
            a, b = before.get("preprocess", {}).get(key), after.get("preprocess", {}).get(key)
            if a != b:
                settings[key] = (a, b)
        if before.get("selection") != after.get("selection"):
            settings["selection"] = (before.get("selection"), after.get("selection"))
        was, now = [bool((m.get("generated") or {}).get("included")) for m in (before, after)]
        if was != now:
            settings["generated images"] = ("included" if was else "left out", "included" if now else "left out")
    return SnapshotDiff(before.get("id") if before else None, classes, settings)
