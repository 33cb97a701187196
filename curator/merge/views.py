"""Merge pages under /merge: stage a batch (server folder, zip, upload, another instance), preview it, map its
classes, accept items, commit it (one transaction) or discard it. A committed merge is undone from its batch page.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from core.db import db
from core.web import is_htmx
from curator.imports.service import class_names, upload_candidates
from curator.imports.sources import SourceError
from curator.imports.storage import ImageStore
from curator.imports.validation import Limits
from curator.merge import service as merging

bp = Blueprint("merge", __name__, template_folder="templates")


def _store() -> ImageStore:
    return ImageStore(current_app.instance_path)


def _limits() -> Limits:
    return Limits.from_config(current_app.config)


def _roots() -> list[Path]:
    return [Path(r) for r in current_app.config["IMPORT_ROOTS"]]


def _get(batch_id: int):
    try:
        return merging.get_merge(db.session, batch_id)
    except merging.MergeError:
        abort(404)


@bp.get("/merge/")
def merge_index():
    return render_template("merge/index.html", roots=_roots(), staged=merging.staged_merges(db.session))


@bp.post("/merge/stage")
def merge_stage_path():
    raw = request.form.get("path", "").strip()
    if not raw:
        flash("Enter a folder, zip or Menagerie instance path on the server.", "error")
        return redirect(url_for("merge.merge_index"))
    try:
        candidates = merging.merge_candidates([Path(raw)], _limits(), _roots())
        batch = merging.stage(db.session, _store(), candidates, source=raw, limits=_limits())
    except (SourceError, ValueError) as exc:
        flash(f"{exc}. Nothing was staged.", "error")
        return redirect(url_for("merge.merge_index"))
    return redirect(url_for("merge.merge_preview", batch_id=batch.id))


@bp.post("/merge/upload")
def merge_stage_upload():
    files = [f for f in request.files.getlist("files") if f.filename]
    if not files:
        flash("Choose at least one image or zip archive to upload.", "error")
        return redirect(url_for("merge.merge_index"))
    with tempfile.TemporaryDirectory(dir=current_app.instance_path, prefix=".upload-") as spool:
        try:
            candidates = upload_candidates(files, None, _limits(), Path(spool))
            names = ", ".join(f.filename for f in files[:3]) + (" …" if len(files) > 3 else "")
            batch = merging.stage(db.session, _store(), candidates, source=f"upload: {names}", limits=_limits())
        except (SourceError, ValueError) as exc:
            flash(f"{exc}. Nothing was staged.", "error")
            return redirect(url_for("merge.merge_index"))
    return redirect(url_for("merge.merge_preview", batch_id=batch.id))


@bp.get("/merge/<int:batch_id>")
def merge_preview(batch_id: int):
    batch = _get(batch_id)
    merging.ensure_analysed(db.session, _store(), batch)
    discard = None
    if batch.state == "undone":
        from sqlalchemy import select

        from core.models import Decision
        discard = db.session.scalar(select(Decision).where(Decision.batch_id == batch.id,
                                                           Decision.kind == "merge-discard",
                                                           Decision.undone_by_id.is_(None)))
    return render_template("merge/preview.html", p=merging.preview(db.session, batch), batch=batch,
                           classes=class_names(db.session), discard=discard)



def _mapping_from_form() -> dict[str, str]:
    """source_N / target_N pairs (folder names are free text, so they travel as values, not field names)."""
    out = {}
    for key, source in request.form.items():
        if key.startswith("source_"):
            out[source] = request.form.get("target_" + key[len("source_"):], "")
    return out


@bp.post("/merge/<int:batch_id>/accept")
def merge_accept(batch_id: int):
    """Accept or decline one item (`item`), several (`item` repeated) or every item of an outcome (`outcome`)."""
    batch = _get(batch_id)
    accepted = request.form.get("accepted", "1") not in ("0", "false", "no")
    try:
        if request.form.get("outcome"):
            n = merging.accept_outcome(db.session, batch, request.form["outcome"], accepted)
            message = f"{'Accepted' if accepted else 'Declined'} all {n} {request.form['outcome']} item(s)."
        else:
            items = request.form.getlist("item")
            if not items:
                raise merging.MergeError("choose at least one item")
            chosen = merging.set_accepted(db.session, batch, items, accepted)
            if is_htmx() and len(chosen) == 1:  # the row, and (out of band) the counts that depend on it
                return render_template("merge/_item.html", item=chosen[0], batch=batch,
                                       p=merging.preview(db.session, batch), oob=True)
            message = f"{'Accepted' if accepted else 'Declined'} {len(chosen)} item(s)."
        flash(message, "ok")
    except merging.MergeError as exc:
        flash(str(exc), "error")
    return redirect(url_for("merge.merge_preview", batch_id=batch.id))


@bp.post("/merge/<int:batch_id>/mapping")
def merge_mapping(batch_id: int):
    batch = _get(batch_id)
    try:
        merging.save_mapping(db.session, batch, _mapping_from_form())
        flash("Class mapping saved.", "ok")
    except merging.MergeError as exc:
        flash(str(exc), "error")
    return redirect(url_for("merge.merge_preview", batch_id=batch.id))


@bp.post("/merge/<int:batch_id>/commit")
def merge_commit(batch_id: int):
    batch = _get(batch_id)
    try:
        merging.commit(db.session, batch, _mapping_from_form())
    except merging.MergeError as exc:
        flash(str(exc), "error")
        return redirect(url_for("merge.merge_preview", batch_id=batch.id))
    flash(f"Merge #{batch.id} committed: {batch.added} image(s) added. Undo the whole merge from this page.", "ok")
    return redirect(url_for("imports.batch_report", batch_id=batch.id))


@bp.post("/merge/<int:batch_id>/discard")
def merge_discard(batch_id: int):
    batch = _get(batch_id)
    try:
        merging.discard(db.session, batch)
    except merging.MergeError as exc:
        flash(str(exc), "error")
        return redirect(url_for("merge.merge_preview", batch_id=batch.id))
    flash(f"Merge #{batch.id} discarded: its staged images were set aside (nothing deleted).", "ok")
    return redirect(url_for("merge.merge_index"))
