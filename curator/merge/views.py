"""Merge pages under /merge: stage a batch (server folder, zip, upload, another instance), preview it, map its
classes, accept items, commit it (one transaction) or discard it. A committed merge is undone from its batch page.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from core import jobs
from core.auth import current_actor
from core.db import db
from core.web import is_htmx
from curator.dedup.views import fingerprint_update
from curator.dedup.views import inline_limit as dedup_inline_limit
from curator.imports.service import class_names, limits_dict, spool_uploads, spooled_candidates
from curator.imports.sources import SourceError
from curator.imports.storage import ImageStore
from curator.imports.validation import Limits
from curator.imports.views import INLINE_UPLOAD_BYTES, inline_max, spool_folder, start_job, to_job
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


def _refused(message: str):
    """The merge page again with the reason, as a 400: nothing was staged."""
    flash(message, "error")
    return render_template("merge/index.html", roots=_roots(), staged=merging.staged_merges(db.session)), 400


PREVIEW_PAGE = {"endpoint": "merge.merge_preview", "from_result": {"batch_id": "batch"}}
COMMIT_INLINE_MAX = 1000  # items a commit may take in the request (config MERGE_COMMIT_INLINE_MAX overrides)


@bp.post("/merge/stage")
def merge_stage_path():
    raw = request.form.get("path", "").strip()
    if not raw:
        return _refused("Enter a folder, zip or Menagerie instance path on the server.")
    try:
        candidates = merging.merge_candidates([Path(raw)], _limits(), _roots())
    except (SourceError, ValueError) as exc:
        return _refused(f"{exc}. Nothing was staged.")
    if merging.fits_in_a_request(db.session, len(candidates), inline_max(), dedup_inline_limit()):
        batch = merging.stage(db.session, _store(), candidates, source=raw, limits=_limits())
        return redirect(url_for("merge.merge_preview", batch_id=batch.id))
    job_id = start_job("merge", "curator.merge.service:run_stage_job",
                       {"source": raw, "limits": limits_dict(_limits()), "paths": [raw],
                        "roots": [str(r) for r in _roots()]}, PREVIEW_PAGE)
    return to_job(job_id)


@bp.post("/merge/upload")
def merge_stage_upload():
    files = [f for f in request.files.getlist("files") if f.filename]
    if not files:
        return _refused("Choose at least one image or zip archive to upload.")
    spool = spool_folder()
    try:
        spooled = spool_uploads(files, spool, _limits())
        candidates = spooled_candidates(spooled, None, _limits())
    except (SourceError, ValueError) as exc:
        shutil.rmtree(spool, ignore_errors=True)
        return _refused(f"{exc}. Nothing was staged.")
    names = ", ".join(f.filename for f in files[:3]) + (" …" if len(files) > 3 else "")
    size = sum(Path(e["path"]).stat().st_size for e in spooled)
    if (merging.fits_in_a_request(db.session, len(candidates), inline_max(), dedup_inline_limit())
            and size <= INLINE_UPLOAD_BYTES):
        try:
            batch = merging.stage(db.session, _store(), candidates, source=f"upload: {names}", limits=_limits())
        finally:
            shutil.rmtree(spool, ignore_errors=True)
        return redirect(url_for("merge.merge_preview", batch_id=batch.id))
    job_id = start_job("merge", "curator.merge.service:run_stage_job",
                       {"source": f"upload: {names}", "limits": limits_dict(_limits()), "spooled": spooled,
                        "spool": str(spool)}, PREVIEW_PAGE)
    return to_job(job_id)


@bp.get("/merge/<int:batch_id>")
def merge_preview(batch_id: int):
    batch = _get(batch_id)
    if not merging.analysis_fits_in_a_request(db.session, batch, dedup_inline_limit()):
        return fingerprint_update({"endpoint": "merge.merge_preview", "values": {"batch_id": batch_id}})
    merging.ensure_analysed(db.session, _store(), batch)
    return render_template("merge/preview.html", p=merging.preview(db.session, batch), batch=batch,
                           classes=class_names(db.session), discard=merging.discard_decision(db.session, batch))



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
    """Commit in the request when the merge is small; a large one is committed by a job (one transaction there),
    and a second click while it runs joins that job."""
    batch = _get(batch_id)
    mapping = _mapping_from_form()
    limit = int(current_app.config.get("MERGE_COMMIT_INLINE_MAX", COMMIT_INLINE_MAX))
    if batch.state == "staged" and len(batch.items) > limit:
        try:
            merging.parse_mapping(mapping)
        except merging.MergeError as exc:
            flash(str(exc), "error")
            return redirect(url_for("merge.merge_preview", batch_id=batch.id))
        args = {"batch": batch.id, "mapping": mapping, "actor": current_actor()}  # the job runs outside the request
        running = jobs.find_unfinished(current_app.instance_path, "merge-commit", args)
        job_id = running.id if running else start_job(
            "merge-commit", "curator.merge.service:run_commit_job", args,
            {"endpoint": "imports.batch_report", "from_result": {"batch_id": "batch"}})
        return to_job(job_id)
    try:
        merging.commit(db.session, batch, mapping)
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
