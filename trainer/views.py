"""Trainer pages: snapshots, the new-run form, the live run page, galleries, generation, stickers.

Server-rendered; each region htmx swaps or polls is a `_partial.html` the full page includes too, so every page
works as plain links and forms. Run state comes from the run's files (trainer.service); nothing here loads torch.
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for
from werkzeug.utils import safe_join

from core.db import db
from core.forms import FormErrors
from core.models import Run
from core.web import get_or_404, ident_ok, is_htmx
from diffusion import rundir
from trainer.service import (
    RunError,
    RunView,
    cancel,
    extend,
    latest_eval,
    list_runs,
    loss_chart,
    resume,
    schedule,
    view_run,
)

bp = Blueprint("trainer", __name__, template_folder="templates", url_prefix="/train")


@bp.record_once
def _schedule_at_start(state) -> None:
    """Runs queued while the server was down start now; runs that died meanwhile are marked failed."""
    with state.app.app_context():
        schedule(db.session, Path(state.app.instance_path))
        db.session.remove()


FILE_TYPES = {".png": "image/png", ".gif": "image/gif"}


def instance() -> Path:
    return Path(current_app.instance_path)


def run_schedule() -> list[str]:
    """Let the queue move (and notice dead runs) on page loads: no separate daemon."""
    return schedule(db.session, instance())


def get_view(run_id: str) -> RunView:
    if not _safe_id(run_id):
        abort(404)
    view = view_run(instance(), run_id, db.session.get(Run, run_id))
    return view or abort(404)


def get_row(run_id: str) -> Run:
    return get_or_404(db.session, Run, run_id)


def _safe_id(text: str) -> bool:
    """A run or generation id that can name a folder: no separator, NUL or other control character, not hidden,
    not over a file name's length (anything else is a 404 before the file system sees it)."""
    return ident_ok(text)


# --- runs ---------------------------------------------------------------------------------------------------

@bp.get("/")
def index():
    run_schedule()
    runs = list_runs(db.session, instance())
    template = "trainer/_runs_table.html" if is_htmx() and request.args.get("part") == "table" else \
        "trainer/runs.html"
    return render_template(template, runs=runs, any_active=any(not r.finished for r in runs))


def _live_context(view: RunView) -> dict:
    metrics = view.metrics()
    return {"view": view, "chart": loss_chart(metrics), "evaluation": latest_eval(metrics),
            "log": view.log_tail(), "can_act": view.row is not None}


@bp.get("/runs/<run_id>")
def run_page(run_id: str):
    run_schedule()
    view = get_view(run_id)
    return render_template("trainer/run.html", **_live_context(view))


@bp.get("/runs/<run_id>/live")
def run_live(run_id: str):
    """The polled region of the run page (stops polling itself once the run has finished)."""
    run_schedule()
    return render_template("trainer/_run_live.html", **_live_context(get_view(run_id)))


@bp.post("/runs/<run_id>/cancel")
def run_cancel(run_id: str):
    try:
        flash(cancel(db.session, instance(), get_row(run_id)), "ok")
    except RunError as exc:
        flash(str(exc), "error")
    return redirect(url_for("trainer.run_page", run_id=run_id))


@bp.post("/runs/<run_id>/resume")
def run_resume(run_id: str):
    try:
        flash(resume(db.session, instance(), get_row(run_id)), "ok")
        run_schedule()
    except RunError as exc:
        flash(str(exc), "error")
    return redirect(url_for("trainer.run_page", run_id=run_id))


@bp.post("/runs/<run_id>/extend")
def run_extend(run_id: str):
    errors = FormErrors()
    epochs = errors.number(request.form, "epochs", "Epochs to add", int, 1, 100_000, required=False)
    minutes = errors.number(request.form, "minutes", "Minutes to add", float, 0.01, 10_000, required=False)
    if errors:
        for message in errors.values():
            flash(message, "error")
        return redirect(url_for("trainer.run_page", run_id=run_id))
    try:
        flash(extend(db.session, instance(), get_row(run_id), epochs=epochs, minutes=minutes), "ok")
        run_schedule()
    except RunError as exc:
        flash(str(exc), "error")
    return redirect(url_for("trainer.run_page", run_id=run_id))


# --- files of a run -----------------------------------------------------------------------------------------

def _run_file(view: RunView, rel: str) -> Path:
    """A sample image inside the run folder (never outside it, never another kind of file)."""
    joined = safe_join(str(view.path), rel)
    if joined is None:
        abort(404)
    path = Path(joined)
    if path.suffix.lower() not in FILE_TYPES or not path.is_file():
        abort(404)
    return path


@bp.get("/runs/<run_id>/files/<path:rel>")
def run_file(run_id: str, rel: str):
    path = _run_file(get_view(run_id), rel)
    download = request.args.get("download") == "1"
    name = f"{run_id}-{rel.replace('/', '-')}"
    return send_file(path, mimetype=FILE_TYPES[path.suffix.lower()], as_attachment=download, download_name=name,
                     conditional=True, max_age=0)


# --- galleries ----------------------------------------------------------------------------------------------

def class_rows(view: RunView, epoch: int) -> list[dict]:
    """One row per class of an epoch's samples (URLs of its images)."""
    rows = []
    for name in view.class_names:
        paths = rundir.class_sample_paths(view.path, epoch, name)
        rows.append({"name": name, "images": [str(p.relative_to(view.path)) for p in paths]})
    return rows


def _chosen_epoch(epochs: list[int]) -> int | None:
    if not epochs:
        return None
    index = request.args.get("i", type=int)
    if index is not None:
        return epochs[max(0, min(index, len(epochs) - 1))]
    wanted = request.args.get("epoch", type=int)
    if wanted is None:
        return epochs[-1]
    return min(epochs, key=lambda e: (abs(e - wanted), e))


@bp.get("/runs/<run_id>/epochs")
def epoch_gallery(run_id: str):
    view = get_view(run_id)
    epochs = view.epochs_with_grids
    epoch = _chosen_epoch(epochs)
    context = {"view": view, "epochs": epochs, "epoch": epoch}
    if epoch is not None:
        index = epochs.index(epoch)
        context.update(index=index, rows=class_rows(view, epoch),
                       grid=str(rundir.grid_path(view.path, epoch).relative_to(view.path)),
                       prev_epoch=epochs[index - 1] if index > 0 else None,
                       next_epoch=epochs[index + 1] if index + 1 < len(epochs) else None)
    if is_htmx() and request.headers.get("HX-Target") == "epoch-view":
        return render_template("trainer/_epoch_view.html", **context)
    return render_template("trainer/epochs.html", **context)


@bp.get("/runs/<run_id>/classes/<name>")
def class_gallery(run_id: str, name: str):
    view = get_view(run_id)
    if name not in view.class_names:
        abort(404)
    epochs = [{"epoch": e, "images": [str(p.relative_to(view.path))
                                      for p in rundir.class_sample_paths(view.path, e, name)]}
              for e in reversed(view.epochs_with_grids)]
    return render_template("trainer/class_gallery.html", view=view, name=name, epochs=epochs)


@bp.get("/compare")
def compare():
    runs = [r for r in list_runs(db.session, instance()) if r.epochs_with_grids]
    by_id = {r.id: r for r in runs}
    a, b = by_id.get(request.args.get("a", "")), by_id.get(request.args.get("b", ""))
    if a is None and runs:
        a = runs[0]
    if b is None and len(runs) > 1:
        b = next(r for r in runs if r.id != a.id)
    sides, common, epoch = [], [], None
    if a and b:
        common = sorted(set(a.epochs_with_grids) & set(b.epochs_with_grids))
        choices = common or sorted(set(a.epochs_with_grids) | set(b.epochs_with_grids))
        wanted = request.args.get("epoch", type=int)
        epoch = choices[-1] if wanted is None else min(choices, key=lambda e: (abs(e - wanted), e))
        for side in (a, b):
            shown = epoch if epoch in side.epochs_with_grids else \
                min(side.epochs_with_grids, key=lambda e: (abs(e - epoch), e))
            sides.append({"view": side, "epoch": shown, "rows": class_rows(side, shown)})
    return render_template("trainer/compare.html", runs=runs, a=a, b=b, sides=sides, common=common, epoch=epoch)
