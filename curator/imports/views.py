"""Import pages: upload files or zips, import a folder on the server, the batch list and each batch's report (with
undo of the whole batch), and the progress page of any job (core.jobs).

Requests stay short: an import of more than IMPORT_INLINE_MAX files (or uploads over INLINE_UPLOAD_BYTES) runs as a
job in its own process and the page polls its progress; a small one is done in the request, as before, so a few
files need no waiting page. Uploads are streamed to a spool folder on disk, never held in memory.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.routing import BuildError

from core import jobs
from core.db import db
from core.files import new_dated_folder
from core.forms import as_sentence
from core.models import Batch
from core.web import get_or_404, is_htmx
from curator.imports import service
from curator.imports.sources import SourceError, iter_paths
from curator.imports.storage import ImageStore
from curator.imports.storing import normalise_class_name
from curator.imports.validation import Limits

bp = Blueprint("imports", __name__, template_folder="templates")

IMPORT_INLINE_MAX = 200  # files an import may take in the request itself (config IMPORT_INLINE_MAX overrides)
INLINE_UPLOAD_BYTES = 32 << 20  # uploads larger than this in all are imported by a job


def _store() -> ImageStore:
    return ImageStore(current_app.instance_path)


def _chosen_class() -> str | None:
    name = (request.form.get("new_class") or request.form.get("class_name") or "").strip()
    return normalise_class_name(name) if name else None


def _form(status: int = 200, **context):
    return render_template("imports/import.html", classes=service.class_names(db.session),
                           roots=current_app.config["IMPORT_ROOTS"], **context), status


def _refused(message: str):
    """The import form again, with the reason, as a 400: nothing was imported."""
    flash(message, "error")
    return _form(400)


def _ask_for_class(spool: Path, spooled: list[dict], question: str):
    """No usable class for the files: ask (a 400 that names the choice) instead of guessing, and hold the files so
    the second try needs only the answer."""
    token = service.hold_upload(spool, spooled)
    return _form(400, class_error=f"{question} Nothing was imported yet; your files are held.",
                 held={"name": spool.name, "token": token, "count": len(spooled),
                       "files": [e["name"] for e in spooled]})


def inline_max() -> int:
    return int(current_app.config.get("IMPORT_INLINE_MAX", IMPORT_INLINE_MAX))


def spool_folder() -> Path:
    """A new folder for one request's uploads under instance/spool (`manage.py sweep` removes abandoned ones)."""
    return new_dated_folder(Path(current_app.instance_path) / "spool")


def start_job(kind: str, target: str, args: dict, next_page: dict) -> str:
    """Start a job on this app's index (its URL goes to the job's process) and return its id."""
    return jobs.start(current_app.instance_path, kind, target, args,
                      database_url=current_app.config["SQLALCHEMY_DATABASE_URI"], next_page=next_page)


def to_job(job_id: str):
    return redirect(url_for("imports.job_page", job_id=job_id))


BATCH_PAGE = {"endpoint": "imports.batch_report", "from_result": {"batch_id": "batch"}}


@bp.get("/import")
def import_form():
    return _form()


@bp.post("/import/upload")
def import_upload():
    """Files (or the files held from a first try) into one batch. A file with no class from the form or its zip
    folder is not silently put in "(unlabelled)": without a class or the explicit "no class" choice, the form asks."""
    files = [f for f in request.files.getlist("files") if f.filename]
    held = request.form.get("held", "")
    if not files and not held:
        return _refused("Choose at least one image or zip archive to upload.")
    try:
        class_name, bad_class = _chosen_class(), None
    except ValueError as exc:  # asked again below, with the files held
        class_name, bad_class = None, str(exc)
    limits = Limits.from_config(current_app.config)
    if files:
        spool = spool_folder()
        spooled = service.spool_uploads(files, spool, limits)
    else:
        try:
            spool, spooled = service.held_upload(current_app.instance_path, held, request.form.get("held_token", ""))
        except ValueError as exc:
            return _refused(str(exc))
    try:
        candidates = service.spooled_candidates(spooled, class_name, limits)
    except SourceError as exc:
        shutil.rmtree(spool, ignore_errors=True)
        return _refused(str(exc))
    if bad_class:
        return _ask_for_class(spool, spooled, as_sentence(bad_class))
    if class_name is None and request.form.get("no_class") != "1":
        loose = [c.name for c in candidates if c.class_name is None]
        if loose:
            names = ", ".join(loose[:3]) + (f" and {len(loose) - 3} more" if len(loose) > 3 else "")
            return _ask_for_class(spool, spooled, f"Which class are {len(loose)} of these files in ({names})? Type "
                                                  "a class, or choose “no class (unlabelled)” to sort them later.")
    names = ", ".join(e["name"] for e in spooled[:3]) + (" …" if len(spooled) > 3 else "")
    size = sum(Path(e["path"]).stat().st_size for e in spooled)
    if len(candidates) <= inline_max() and size <= INLINE_UPLOAD_BYTES:
        try:
            batch = service.import_candidates(db.session, _store(), candidates, kind="upload",
                                              source=f"upload: {names}", limits=limits)
        finally:
            shutil.rmtree(spool, ignore_errors=True)
        return redirect(url_for("imports.batch_report", batch_id=batch.id))
    job_id = start_job("import", "curator.imports.service:run_import_job",
                       {"kind": "upload", "source": f"upload: {names}", "limits": service.limits_dict(limits),
                        "class_name": class_name, "spooled": spooled, "spool": str(spool)}, BATCH_PAGE)
    return to_job(job_id)


@bp.post("/import/folder")
def import_folder():
    raw = request.form.get("path", "").strip()
    if not raw:
        return _refused("Enter a folder or zip path on the server.")
    limits = Limits.from_config(current_app.config)
    roots = [Path(r) for r in current_app.config["IMPORT_ROOTS"]]
    try:
        class_name = _chosen_class()
        candidates = list(iter_paths([Path(raw)], class_name, limits, roots))  # a listing: quick even for 20,000
    except (SourceError, ValueError) as exc:
        return _refused(str(exc))
    if len(candidates) <= inline_max():
        batch = service.import_candidates(db.session, _store(), candidates, kind="import", source=raw, limits=limits)
        return redirect(url_for("imports.batch_report", batch_id=batch.id))
    job_id = start_job("import", "curator.imports.service:run_import_job",
                       {"kind": "import", "source": raw, "limits": service.limits_dict(limits),
                        "class_name": class_name, "paths": [raw], "roots": [str(r) for r in roots]}, BATCH_PAGE)
    return to_job(job_id)


# --- jobs ----------------------------------------------------------------------------------------------------

def next_url(job: jobs.JobView) -> str | None:
    """Where a finished job's page leads: the page its starter named, with ids from its result."""
    target = job.next_page
    if not target.get("endpoint"):
        return None
    values = dict(target.get("values") or {})
    try:
        values.update({param: job.result[key] for param, key in (target.get("from_result") or {}).items()})
        return url_for(target["endpoint"], **values)
    except (KeyError, BuildError):
        return None


@bp.get("/jobs/<job_id>")
def job_page(job_id: str):
    """A job's progress: the whole page, or (htmx, polled every second) its progress region; once the job is done,
    on to its result page."""
    job = jobs.read(current_app.instance_path, job_id)
    if job is None:
        abort(404)
    url = next_url(job) if job.state == "done" else None
    if url and is_htmx():
        return "", 200, {"HX-Redirect": url}
    if url:
        return redirect(url)
    if is_htmx():
        return render_template("jobs/_progress.html", job=job)
    return render_template("jobs/job.html", job=job, nav_section=_section_of(job))


def _section_of(job) -> str:
    """The navigation section a job's page belongs to: where its result is shown (a duplicate search or fingerprint
    update under Duplicates, or under Merge when a merge preview waits for it), else its kind's (a merge's commit,
    whose result is a batch report, under Merge; an import under Import)."""
    area = (job.next_page.get("endpoint") or "imports.").split(".", 1)[0]
    if area == "imports":
        return "merge" if job.kind.startswith("merge") else "import"
    return area


@bp.get("/batches")
def batch_list():
    return render_template("imports/batches.html", batches=service.recent_batches(db.session, 500))


@bp.get("/batch/<int:batch_id>")
def batch_report(batch_id: int):
    batch = get_or_404(db.session, Batch, batch_id)
    return render_template("imports/batch.html", batch=batch, unlabelled=service.unlabelled_duplicates(batch),
                           undo_decision=service.batch_undo_decision(db.session, batch))


@bp.post("/batch/<int:batch_id>/set-classes")
def set_duplicate_classes(batch_id: int):
    """Files this batch met again that sit in the dataset without a class get the class the import named (one
    file with `item`, otherwise all of them): one undoable decision."""
    batch = get_or_404(db.session, Batch, batch_id)
    raw = request.form.get("item")
    try:
        item = None if raw is None else int(raw)
        n = service.set_duplicate_classes(db.session, batch, item)
    except ValueError as exc:
        flash(str(exc) if raw is None or raw.strip().isdigit() else f"No such file in this batch: {raw!r}.", "error")
    else:
        flash(f"Class set on {n} image{'' if n == 1 else 's'} already in the dataset (undo it from History).", "ok")
    return redirect(url_for("imports.batch_report", batch_id=batch.id))


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
