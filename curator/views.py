"""Curator pages: overview, gallery, image page, import, batch reports and the decision log.

Each region htmx swaps is a `_partial.html` that the full page includes too, so every page also works as plain
HTML forms and links.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from flask import (abort, current_app, flash, redirect, render_template, request, send_file, url_for)
from sqlalchemy import select

from . import bp
from .db import db
from .decisions import UndoError, image_changes, record, undo
from .imports import import_paths, upload_candidates
from .ingest import ClassCache, import_candidates, normalise_class_name
from .models import ACTIVE, IMAGE_STATUSES, REJECTED, Batch, Decision, Image
from .queries import UNLABELLED, class_names, class_summaries, gallery_query, neighbours, page, recent_batches
from .sources import SourceError
from .storage import MIME_TYPES, THUMB_SIZE, ImageStore
from .validation import Limits


def store() -> ImageStore:
    return ImageStore(current_app.instance_path)


def limits() -> Limits:
    return Limits(max_file_bytes=current_app.config["MAX_FILE_BYTES"], max_pixels=current_app.config["MAX_PIXELS"])


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def get_image(image_id: int) -> Image:
    return db.session.get(Image, image_id) or abort(404)


# --- overview and gallery ------------------------------------------------------------------------------------

@bp.get("/")
def index():
    return render_template("curator/index.html", classes=class_summaries(db.session),
                           batches=recent_batches(db.session, 10), statuses=IMAGE_STATUSES)


def _gallery_filters() -> dict:
    status = request.args.get("status", ACTIVE)
    if status not in IMAGE_STATUSES and status != "all":
        abort(400, f"unknown status {status!r}")
    batch = request.args.get("batch", type=int)
    return {"status": status, "batch": batch}


@bp.get("/gallery/")
@bp.get("/gallery/<name>")
def gallery(name: str | None = None):
    filters = _gallery_filters()
    number = max(1, request.args.get("page", 1, type=int))
    query = gallery_query(db.session, name, None if filters["status"] == "all" else filters["status"],
                          filters["batch"])
    images, more = page(db.session, query, number, current_app.config["PAGE_SIZE"])
    context = dict(name=name, images=images, more=more, page_number=number, filters=filters,
                   statuses=IMAGE_STATUSES, batches=recent_batches(db.session, 200))
    if is_htmx() and number > 1:
        return render_template("curator/_grid_items.html", **context)
    return render_template("curator/gallery.html", **context)


@bp.get("/image/<int:image_id>")
def image_page(image_id: int):
    image = get_image(image_id)
    filters = _gallery_filters()
    query = gallery_query(db.session, image.class_name or UNLABELLED, None if filters["status"] == "all" else filters["status"],
                          filters["batch"])
    newer, older = neighbours(db.session, query, image)
    history = list(db.session.scalars(select(Decision).where(Decision.image_id == image.id)
                                      .order_by(Decision.id.desc())))
    return render_template("curator/image.html", image=image, newer=newer, older=older, filters=filters,
                           history=history, classes=class_names(db.session))


def _send_cached(path: Path, etag: str, mimetype: str):
    """Content-addressed files never change under their ETag: conditional GETs answer 304."""
    return send_file(path, mimetype=mimetype, etag=etag, conditional=True, max_age=86400)


@bp.get("/image/<int:image_id>/file")
def image_file(image_id: int):
    image = get_image(image_id)
    ext = image.path.rsplit(".", 1)[-1]
    return _send_cached(store().absolute(image.path), image.sha256, MIME_TYPES[ext])


@bp.get("/image/<int:image_id>/thumb")
def image_thumb(image_id: int):
    """Small images are their own thumbnail (the browser scales them, pixelated); larger ones get a cached WebP
    (transparent) or JPEG (opaque)."""
    image = get_image(image_id)
    if max(image.width, image.height) <= THUMB_SIZE:
        return image_file(image_id)
    path = store().thumbnail(image.sha256, image.path, image.has_alpha)
    return _send_cached(path, image.sha256 + "-t", MIME_TYPES[path.suffix[1:]])


# --- changes to one image --------------------------------------------------------------------------------------

def _back_to(image: Image):
    return redirect(request.form.get("next") or url_for("curator.image_page", image_id=image.id))


@bp.post("/image/<int:image_id>/relabel")
def relabel(image_id: int):
    image = get_image(image_id)
    try:
        target = ClassCache(db.session).get(request.form.get("class_name", ""))
    except ValueError as exc:
        flash(str(exc), "error")
        return _back_to(image)
    db.session.flush()
    if target.id == image.class_id:
        flash(f"Already in {target.name}.", "info")
        return _back_to(image)
    record(db.session, "relabel", [(image, {"class_id": target.id})], image_id=image.id)
    db.session.commit()
    flash(f"Moved to {target.name}.", "ok")
    return _back_to(image)


@bp.post("/image/<int:image_id>/status")
def set_status(image_id: int):
    image = get_image(image_id)
    status = request.form.get("status")
    if status not in (ACTIVE, REJECTED):
        flash(f"Unknown status {status!r}: choose active or rejected.", "error")
        return _back_to(image)
    reason = request.form.get("reason", "").strip()[:500] or ("rejected by hand" if status == REJECTED else "")
    changes = image_changes([image], status=status, status_reason=reason, duplicate_of_id=None)
    if changes:
        record(db.session, "reject" if status == REJECTED else "restore", changes, image_id=image.id)
        db.session.commit()
        flash("Rejected." if status == REJECTED else "Restored.", "ok")
    return _back_to(image)


@bp.post("/decision/<int:decision_id>/undo")
def undo_decision(decision_id: int):
    decision = db.session.get(Decision, decision_id) or abort(404)
    try:
        undo(db.session, decision)
        db.session.commit()
        flash(f"Undid #{decision.id} ({decision.kind}).", "ok")
    except UndoError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(request.form.get("next") or url_for("curator.decision_log"))


@bp.get("/decisions")
def decision_log():
    decisions = list(db.session.scalars(select(Decision).order_by(Decision.id.desc()).limit(200)))
    return render_template("curator/decisions.html", decisions=decisions)


# --- import ----------------------------------------------------------------------------------------------------

@bp.get("/import")
def import_form():
    return render_template("curator/import.html", classes=class_names(db.session),
                           roots=current_app.config["IMPORT_ROOTS"])


def _chosen_class() -> str | None:
    name = (request.form.get("new_class") or request.form.get("class_name") or "").strip()
    return normalise_class_name(name) if name else None


@bp.post("/import/upload")
def import_upload():
    files = [f for f in request.files.getlist("files") if f.filename]
    if not files:
        flash("Choose at least one image or zip archive to upload.", "error")
        return redirect(url_for("curator.import_form"))
    try:
        class_name = _chosen_class()
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("curator.import_form"))
    with tempfile.TemporaryDirectory(dir=current_app.instance_path, prefix=".upload-") as spool:
        try:
            candidates = upload_candidates(files, class_name, limits(), Path(spool))
        except SourceError as exc:
            flash(str(exc), "error")
            return redirect(url_for("curator.import_form"))
        names = ", ".join(f.filename for f in files[:3]) + (" …" if len(files) > 3 else "")
        batch = import_candidates(db.session, store(), candidates, kind="upload", source=f"upload: {names}",
                                  limits=limits())
    return redirect(url_for("curator.batch_report", batch_id=batch.id))


@bp.post("/import/folder")
def import_folder():
    raw = request.form.get("path", "").strip()
    if not raw:
        flash("Enter a folder or zip path on the server.", "error")
        return redirect(url_for("curator.import_form"))
    try:
        batch = import_paths(db.session, store(), [Path(raw)], class_name=_chosen_class(), limits=limits(),
                             roots=[Path(r) for r in current_app.config["IMPORT_ROOTS"]])
    except (SourceError, ValueError) as exc:
        flash(str(exc), "error")
        return redirect(url_for("curator.import_form"))
    return redirect(url_for("curator.batch_report", batch_id=batch.id))


@bp.get("/batches")
def batch_list():
    return render_template("curator/batches.html", batches=recent_batches(db.session, 500))


@bp.get("/batch/<int:batch_id>")
def batch_report(batch_id: int):
    batch = db.session.get(Batch, batch_id) or abort(404)
    undo_decision = db.session.scalar(select(Decision).where(Decision.batch_id == batch.id,
                                                             Decision.kind == "batch-undo",
                                                             Decision.undone_by_id.is_(None)))
    return render_template("curator/batch.html", batch=batch, undo_decision=undo_decision)


@bp.post("/batch/<int:batch_id>/undo")
def undo_batch(batch_id: int):
    """Take a whole batch back out of the dataset: its images become rejected (never deleted); undoable."""
    batch = db.session.get(Batch, batch_id) or abort(404)
    if batch.state != "committed":
        flash(f"Batch #{batch.id} is {batch.state}; only a committed batch can be undone.", "error")
        return redirect(url_for("curator.batch_report", batch_id=batch.id))
    images = list(db.session.scalars(select(Image).where(Image.batch_id == batch.id)))
    changes = image_changes(images, status=REJECTED, status_reason=f"batch #{batch.id} undone",
                            duplicate_of_id=None)
    record(db.session, "batch-undo", changes + [(batch, {"state": "undone"})], batch_id=batch.id)
    db.session.commit()
    flash(f"Batch #{batch.id} undone: {len(changes)} images set aside (undo from this page to bring them back).",
          "ok")
    return redirect(url_for("curator.batch_report", batch_id=batch.id))
