"""Snapshots: a frozen, named selection of the dataset plus its preprocessing, as a manifest training reads.

A snapshot lists the chosen images by content hash and stored path (content-addressed files are never deleted,
so the list alone freezes the data), their labels, and the default preprocessing (size, crop or pad, background
or alpha). It is written once to `<instance>/snapshots/<id>/manifest.json` (temp file + rename, then read-only)
and its row is committed only after the file exists; nothing ever edits either. Flask-free: the command line, the
web pages and `manage.py train` share it.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.files import new_dated_folder, write_atomic
from core.models import ACTIVE, Batch, Image, ImageClass, Snapshot
from curator.ranking.service import effective_k, ranked_images
from curator.snapshots.manifest import (
    SELECTIONS,
    Preprocess,
    SnapshotDiff,
    SnapshotError,
    build_manifest,
    diff_manifests,
)


def snapshot_dir(instance_path: Path, snapshot_id: str) -> Path:
    return Path(instance_path) / "snapshots" / snapshot_id


def manifest_path(instance_path: Path, snapshot: Snapshot) -> Path:
    """Absolute path of a snapshot's manifest.json."""
    return Path(instance_path) / snapshot.manifest


def read_manifest(instance_path: Path, snapshot: Snapshot) -> dict:
    return json.loads(manifest_path(instance_path, snapshot).read_text(encoding="utf-8"))


GENERATED = "generated"  # Batch.kind of pictures a run made and sent back (curator.merge.service.GENERATED)


def _not_generated():
    """Images that did not come from a generated batch: a model's own pictures train the next model only when the
    person making the snapshot asks for it (they would otherwise feed back unnoticed)."""
    return Image.batch_id.is_(None) | Image.batch_id.not_in(select(Batch.id).where(Batch.kind == GENERATED))


def generated_active(session: Session) -> int:
    """How many labelled, active images came from generated batches (what a snapshot leaves out by default)."""
    return session.scalar(select(func.count(Image.id)).join(Batch, Image.batch_id == Batch.id)
                          .where(Batch.kind == GENERATED, Image.status == ACTIVE, Image.class_id.is_not(None))) or 0


def choose_images(session: Session, selection: str = "active", top_k: int | None = None,
                  include_generated: bool = False) -> dict[str, list[Image]]:
    """{class name: images} of the selection. Unlabelled images never train; classes left empty are dropped.

    "active": every active image. "top-k": each class's best `top_k` (or the class's own k: its setting on Rank, or
    the default there).
    Images of generated batches are left out unless `include_generated`.
    """
    if selection not in SELECTIONS:
        raise SnapshotError(f"selection {selection!r} must be 'active' or 'top-k'")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise SnapshotError(f"top-k {top_k!r} must be a positive whole number")
    chosen: dict[str, list[Image]] = {}
    for image_class in session.scalars(select(ImageClass).order_by(ImageClass.name)):
        query = select(Image).where(Image.class_id == image_class.id, Image.status == ACTIVE)
        if not include_generated:
            query = query.where(_not_generated())
        images = list(session.scalars(query.order_by(Image.id)))
        if not images:
            continue
        if selection == "top-k":
            # flagged images ("neither belongs") never rank into a top-k; without a number, the class's k as Rank
            # shows it (its setting, or the default for the images competing)
            images = [image for image in images if not image.flagged]
            k = top_k or effective_k(image_class, len(images))
            images = ranked_images(session, image_class, images)[:k]
        chosen[image_class.name] = images
    return chosen


def _new_id(instance_path: Path) -> tuple[str, Path]:
    """A fresh, time-sortable id and its (created, empty) folder."""
    try:
        folder = new_dated_folder(Path(instance_path) / "snapshots")
    except OSError as exc:
        raise SnapshotError(str(exc)) from None
    return folder.name, folder


def create_snapshot(session: Session, instance_path: Path, *, image_size: int = 32, fit: str = "crop",
                    background: str = "white", selection: str = "active", top_k: int | None = None,
                    name: str | None = None, include_generated: bool = False) -> Snapshot:
    """Freeze the current selection as a new snapshot; returns its committed row (with `.manifest_path`).

    Generated images (accepted from a run's pictures) are left out unless `include_generated`; the manifest
    records the choice and how many were left out, so every caller (the form, the command line, a new run's
    "snapshot the current data now") is safe by default.

    Raises SnapshotError (nothing written) for bad settings or a selection training could not use
    (fewer than two classes with images).
    """
    instance_path = Path(instance_path)
    prep = Preprocess(image_size, fit, background).validate()
    if top_k is not None and selection == "active":
        selection = "top-k"
    chosen = choose_images(session, selection, top_k, include_generated)
    left_out = 0 if include_generated else generated_active(session)
    if len(chosen) < 2:
        found = ", ".join(f"{c} ({len(v)})" for c, v in chosen.items()) or "none"
        raise SnapshotError(f"a snapshot needs at least two classes with images to train a class-conditional "
                            f"model; classes with selected images: {found}")
    clean_name = (name or "").strip()[:255]
    snapshot_id, folder = _new_id(instance_path)
    created = datetime.now(timezone.utc)
    manifest_file = folder / "manifest.json"
    manifest = build_manifest(snapshot_id, clean_name or snapshot_id, created.isoformat(timespec="seconds"), prep,
                              selection, top_k, chosen, instance_path, folder,
                              generated={"included": include_generated, "left_out": left_out})
    counts = manifest["counts"]
    try:
        # read-only: a snapshot never changes
        write_atomic(manifest_file, json.dumps(manifest, indent=1, sort_keys=True), mode=0o444)
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


def diff_with_previous(session: Session, instance_path: Path, snapshot: Snapshot) -> SnapshotDiff:
    previous = previous_snapshot(session, snapshot)
    before = read_manifest(instance_path, previous) if previous else None
    return diff_manifests(before, read_manifest(instance_path, snapshot))


def generated_note(instance_path: Path, snapshot: Snapshot) -> dict:
    """{"included": bool, "left_out": n} from the manifest (a snapshot from before the choice existed: {})."""
    try:
        return read_manifest(instance_path, snapshot).get("generated") or {}
    except (OSError, ValueError):
        return {}


def snapshot_rows(session: Session, instance_path: Path) -> list[dict]:
    """Every snapshot, newest first, with what changed since the one before (or why its manifest is unreadable)."""
    rows = []
    for snap in list_snapshots(session):
        try:
            diff, error = diff_with_previous(session, instance_path, snap), ""
        except (OSError, ValueError) as exc:
            diff, error = None, f"manifest unreadable: {exc}"
        rows.append({"snap": snap, "diff": diff, "error": error, "total": sum(snap.counts.values()),
                     "generated": generated_note(instance_path, snap)})
    return rows
