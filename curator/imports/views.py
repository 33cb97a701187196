"""Import pages: upload files or zips, import a folder on the server, the batch list and each batch's report (with
undo of the whole batch)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from core.db import db
from core.models import Batch
from core.web import get_or_404
from curator.imports import service
from curator.imports.sources import SourceError
from curator.imports.storage import ImageStore
from curator.imports.storing import normalise_class_name
from curator.imports.validation import Limits

bp = Blueprint("imports", __name__, template_folder="templates")


def _store() -> ImageStore:
    return ImageStore(current_app.instance_path)


def _chosen_class() -> str | None:
    name = (request.form.get("new_class") or request.form.get("class_name") or "").strip()
    return normalise_class_name(name) if name else None


def _back_to_form(message: str):
    flash(message, "error")
    return redirect(url_for("imports.import_form"))


@bp.get("/import")
def import_form():
    return render_template("imports/import.html", classes=service.class_names(db.session),
                           roots=current_app.config["IMPORT_ROOTS"])


@bp.post("/import/upload")
def import_upload():
    files = [f for f in request.files.getlist("files") if f.filename]
    if not files:
        return _back_to_form("Choose at least one image or zip archive to upload.")
    try:
        class_name = _chosen_class()
    except ValueError as exc:
        return _back_to_form(str(exc))
    limits = Limits.from_config(current_app.config)
    with tempfile.TemporaryDirectory(dir=current_app.instance_path, prefix=".upload-") as spool:
        try:
            candidates = service.upload_candidates(files, class_name, limits, Path(spool))
        except SourceError as exc:
            return _back_to_form(str(exc))
        names = ", ".join(f.filename for f in files[:3]) + (" …" if len(files) > 3 else "")
        batch = service.import_candidates(db.session, _store(), candidates, kind="upload", source=f"upload: {names}",
                                          limits=limits)
    return redirect(url_for("imports.batch_report", batch_id=batch.id))


@bp.post("/import/folder")
def import_folder():
    raw = request.form.get("path", "").strip()
    if not raw:
        return _back_to_form("Enter a folder or zip path on the server.")
    try:
        batch = service.import_paths(db.session, _store(), [Path(raw)], class_name=_chosen_class(),
                                     limits=Limits.from_config(current_app.config),
                                     roots=[Path(r) for r in current_app.config["IMPORT_ROOTS"]])
    except (SourceError, ValueError) as exc:
        return _back_to_form(str(exc))
    return redirect(url_for("imports.batch_report", batch_id=batch.id))


@bp.get("/batches")
def batch_list():
    return render_template("imports/batches.html", batches=service.recent_batches(db.session, 500))


@bp.get("/batch/<int:batch_id>")
def batch_report(batch_id: int):
    batch = get_or_404(db.session, Batch, batch_id)
    return render_template("imports/batch.html", batch=batch,
                           undo_decision=service.batch_undo_decision(db.session, batch))


@bp.post("/batch/<int:batch_id>/undo")
def undo_batch(batch_id: int):
    """Take a whole batch back out of the dataset: its images become rejected (never deleted); undoable."""
    batch = get_or_404(db.session, Batch, batch_id)
    try:
        n = service.undo_batch(db.session, batch)
    except ValueError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Batch #{batch.id} undone: {n} images set aside (undo from this page to bring them back).", "ok")
    return redirect(url_for("imports.batch_report", batch_id=batch.id))
