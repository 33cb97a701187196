"""Snapshots: a frozen, named selection of the dataset plus its preprocessing, as a manifest training reads.

A snapshot lists the chosen images by content hash and stored path (content-addressed files are never deleted,
so the list alone freezes the data), their labels, and the default preprocessing (size, crop or pad, background
or alpha). It is written once to `<instance>/snapshots/<id>/manifest.json` (temp file + rename, then read-only)
and its row is committed only after the file exists; nothing ever edits either. Flask-free: the command line, the
web pages and `manage.py train` share it.
"""
from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from PIL import ImageColor
from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ACTIVE, Comparison, Image, ImageClass, Snapshot
from .rating import compute_ratings

FITS = ("crop", "pad")
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
        if self.background != "alpha":
            try:
                ImageColor.getrgb(self.background)
            except (ValueError, AttributeError):
                raise SnapshotError(f"background {self.background!r} must be 'alpha' (keep transparency) or a "
                                    "colour such as 'white' or '#808080'") from None
        return self


def snapshot_dir(instance_path: Path, snapshot_id: str) -> Path:
    return Path(instance_path) / "snapshots" / snapshot_id


def manifest_path(instance_path: Path, snapshot: Snapshot) -> Path:
    """Absolute path of a snapshot's manifest.json."""
    return Path(instance_path) / snapshot.manifest


def read_manifest(instance_path: Path, snapshot: Snapshot) -> dict:
    return json.loads(manifest_path(instance_path, snapshot).read_text(encoding="utf-8"))


def _ranked(session: Session, image_class: ImageClass, images: list[Image]) -> list[Image]:
    """A class's images best first: hand-selected ones, then by Bradley–Terry rating, then oldest first."""
    ids = {img.id for img in images}
    rows = session.execute(select(Comparison.left_id, Comparison.right_id, Comparison.outcome)
                           .where(Comparison.class_id == image_class.id, Comparison.undone.is_(False),
                                  Comparison.outcome != "neither")
                           .order_by(Comparison.id))
    comparisons = [tuple(r) for r in rows if r[0] in ids and r[1] in ids and r[0] != r[1]]
    ratings = compute_ratings(sorted(ids), comparisons) if comparisons else {}
    return sorted(images, key=lambda img: (not img.selected, -(ratings[img.id].mu if img.id in ratings else 0.0),
                                           img.id))


def choose_images(session: Session, selection: str = "active", top_k: int | None = None) -> dict[str, list[Image]]:
    """{class name: images} of the selection. Unlabelled images never train; classes left empty are dropped.

    "active": every active image. "top-k": each class's best `top_k` (or the class's own top-k setting).
    """
    if selection not in SELECTIONS:
        raise SnapshotError(f"selection {selection!r} must be 'active' or 'top-k'")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise SnapshotError(f"top-k {top_k!r} must be a positive whole number")
    chosen: dict[str, list[Image]] = {}
    for image_class in session.scalars(select(ImageClass).order_by(ImageClass.name)):
        images = list(session.scalars(select(Image).where(Image.class_id == image_class.id, Image.status == ACTIVE)
                                      .order_by(Image.id)))
        if not images:
            continue
        if selection == "top-k":
            k = top_k or image_class.top_k
            if not k:
                raise SnapshotError(f"class {image_class.name!r} has no top-k set: give a top-k number "
                                    "(--top-k N), or choose the 'active' selection")
            images = _ranked(session, image_class, images)[:k]
        chosen[image_class.name] = images
    return chosen


def _new_id(instance_path: Path) -> tuple[str, Path]:
    """A fresh, time-sortable id and its (created, empty) folder."""
    root = Path(instance_path) / "snapshots"
    root.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        snapshot_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
        folder = root / snapshot_id
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return snapshot_id, folder
    raise SnapshotError(f"could not create a new snapshot folder under {root}")


def _write_once(path: Path, text: str) -> None:
    """Temp file + fsync + rename; then read-only, because a snapshot never changes."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_snapshot(session: Session, instance_path: Path, *, image_size: int = 32, fit: str = "crop",
                    background: str = "white", selection: str = "active", top_k: int | None = None,
                    name: str | None = None) -> Snapshot:
    """Freeze the current selection as a new snapshot; returns its committed row (with `.manifest_path`).

    Raises SnapshotError (nothing written) for bad settings or a selection training could not use
    (fewer than two classes with images).
    """
    instance_path = Path(instance_path)
    prep = Preprocess(image_size, fit, background).validate()
    if top_k is not None and selection == "active":
        selection = "top-k"
    chosen = choose_images(session, selection, top_k)
    if len(chosen) < 2:
        found = ", ".join(f"{c} ({len(v)})" for c, v in chosen.items()) or "none"
        raise SnapshotError(f"a snapshot needs at least two classes with images to train a class-conditional "
                            f"model; classes with selected images: {found}")
    clean_name = (name or "").strip()[:255]
    snapshot_id, folder = _new_id(instance_path)
    created = datetime.now(timezone.utc)
    manifest_file = folder / "manifest.json"
    counts = {c: len(images) for c, images in chosen.items()}
    manifest = {
        "format": MANIFEST_FORMAT, "id": snapshot_id, "name": clean_name or snapshot_id,
        "created": created.isoformat(timespec="seconds"), "classes": sorted(chosen),
        "preprocess": {"image_size": prep.image_size, "fit": prep.fit, "background": prep.background},
        "selection": selection, "top_k": top_k, "counts": counts,
        "items": [{"sha256": img.sha256, "path": os.path.relpath(instance_path / img.path, folder),
                   "label": label, "image_id": img.id}
                  for label in sorted(chosen) for img in sorted(chosen[label], key=lambda i: i.sha256)],
    }
    try:
        _write_once(manifest_file, json.dumps(manifest, indent=1, sort_keys=True))
        snapshot = Snapshot(id=snapshot_id, name=manifest["name"], created=created.replace(tzinfo=None),
                            image_size=prep.image_size, fit=prep.fit, background=prep.background,
                            selection=selection, counts=counts,
                            manifest=str(manifest_file.relative_to(instance_path)))
        session.add(snapshot)
        session.commit()
    except BaseException:
        session.rollback()
        manifest_file.unlink(missing_ok=True)
        folder.rmdir()
        raise
    snapshot.manifest_path = manifest_file
    return snapshot


def list_snapshots(session: Session) -> list[Snapshot]:
    """Newest first."""
    return list(session.scalars(select(Snapshot).order_by(Snapshot.created.desc(), Snapshot.id.desc())))


def previous_snapshot(session: Session, snapshot: Snapshot) -> Snapshot | None:
    """The snapshot made just before this one (by creation time), or None for the first."""
    newer_first = list_snapshots(session)
    index = newer_first.index(snapshot)
    return newer_first[index + 1] if index + 1 < len(newer_first) else None


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
    return SnapshotDiff(before.get("id") if before else None, classes, settings)


def diff_with_previous(session: Session, instance_path: Path, snapshot: Snapshot) -> SnapshotDiff:
    previous = previous_snapshot(session, snapshot)
    before = read_manifest(instance_path, previous) if previous else None
    return diff_manifests(before, read_manifest(instance_path, snapshot))
