"""Gallery pages: the dataset overview, a class's images, the image page (relabel, reject, restore, its history)
and the history of every change with undo.

Each region htmx swaps is a `_partial.html` that the full page includes too, so every page also works as plain
HTML forms and links.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, session, url_for

from core.auth import current_account
from core.db import db
from core.history import UndoError
from core.models import ACTIVE, IMAGE_STATUSES, UNLABELLED, Decision, Image
from core.web import get_or_404, is_htmx, safe_next
from curator.gallery import service
from curator.imports.service import class_names, recent_batches
from curator.imports.storage import MIME_TYPES, THUMB_SIZE, ImageStore

bp = Blueprint("gallery", __name__, template_folder="templates")


def store() -> ImageStore:
    return ImageStore(current_app.instance_path)


def get_image(image_id: int) -> Image:
    return get_or_404(db.session, Image, image_id)


# --- overview and gallery ------------------------------------------------------------------------------------

@bp.get("/")
def index():
    """Only classes that hold images get a card (an empty class is only counted): each with a few thumbnails."""
    summaries = service.class_summaries(db.session)
    classes = [c for c in summaries if c.total]
    return render_template("gallery/index.html", classes=classes, empty=len(summaries) - len(classes),
                           thumbs=service.class_thumbnails(db.session, [c.name for c in classes]),
                           batches=recent_batches(db.session, 10), statuses=IMAGE_STATUSES)


def _gallery_filters() -> dict:
    status = request.args.get("status", ACTIVE)
    if status not in IMAGE_STATUSES and status != "all":
        abort(400, f"unknown status {status!r}")
    raw_batch = request.args.get("batch", "").strip()
    if raw_batch and not (raw_batch.isascii() and raw_batch.isdigit()):  # "²" is a digit to isdigit()
        abort(400, f"batch must be a batch number, not {raw_batch[:40]!r}")
    return {"status": status, "batch": int(raw_batch) if raw_batch else None}


@bp.get("/gallery/")
@bp.get("/gallery/<name>")
def gallery(name: str | None = None):
    filters = _gallery_filters()
    if name not in (None, UNLABELLED) and not service.has_class(db.session, name):
        abort(404, f"There is no class named {name[:64]!r}.")
    number = max(1, request.args.get("page", 1, type=int))
    query = service.gallery_query(db.session, name, None if filters["status"] == "all" else filters["status"],
                          filters["batch"])
    images, more = service.page(db.session, query, number, current_app.config["PAGE_SIZE"])
    context = dict(name=name, images=images, more=more, page_number=number, filters=filters,
                   total=service.count(db.session, query),
                   statuses=IMAGE_STATUSES, batches=recent_batches(db.session, 200))
    if is_htmx() and number > 1:
        return render_template("gallery/_grid_items.html", **context)
    return render_template("gallery/gallery.html", **context)


@bp.get("/image/<int:image_id>")
def image_page(image_id: int):
    image = get_image(image_id)
    filters = _gallery_filters()
    query = service.gallery_query(db.session, image.class_name or UNLABELLED, None if filters["status"] == "all" else filters["status"],
                          filters["batch"])
    newer, older = service.neighbours(db.session, query, image)
    history = service.history_entries(db.session, service.image_history(db.session, image))
    return render_template("gallery/image.html", image=image, newer=newer, older=older, filters=filters,
                           history=history, classes=class_names(db.session), me=_me())


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
    return redirect(safe_next(request.form.get("next"), url_for("gallery.image_page", image_id=image.id)))


@bp.post("/image/<int:image_id>/relabel")
def relabel(image_id: int):
    image = get_image(image_id)
    try:
        flash(service.relabel(db.session, image, request.form.get("class_name", "")), "ok")
    except ValueError as exc:
        flash(str(exc), "error")
    return _back_to(image)


@bp.post("/image/<int:image_id>/status")
def set_status(image_id: int):
    image = get_image(image_id)
    try:
        message = service.set_status(db.session, image, request.form.get("status", ""), request.form.get("reason", ""))
    except ValueError as exc:
        flash(str(exc), "error")
    else:
        if message:
            flash(message, "ok")
    return _back_to(image)


@bp.post("/decision/<int:decision_id>/undo")
def undo_decision(decision_id: int):
    decision = get_or_404(db.session, Decision, decision_id)
    try:
        flash(service.undo_decision(db.session, decision), "ok")
    except UndoError as exc:
        flash(str(exc), "error")
    return redirect(safe_next(request.form.get("next"), url_for("gallery.decision_log")))


@bp.get("/decisions")
def decision_log():
    return render_template("gallery/decisions.html",
                           entries=service.history_entries(db.session, service.recent_decisions(db.session)),
                           me=_me())


def _me() -> str:
    """This browser's name in the history (without making a guest name for someone who only looks)."""
    account = current_account()
    return account.name if account else session.get("guest", "")
