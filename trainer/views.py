"""Trainer pages: snapshots, the new-run form, the live run page, galleries, generation, stickers.

Server-rendered; each region htmx swaps or polls is a `_partial.html` the full page includes too, so every page
works as plain links and forms. Run state comes from the run's files (trainer.service); nothing here loads torch.
"""
from __future__ import annotations

import math
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from sqlalchemy import select
from werkzeug.utils import safe_join

from core.db import db
from core.forms import FormErrors
from core.models import Image, Run
from core.web import MAX_PAGE, bounded_int, get_or_404, htmx, ident_ok, is_htmx
from diffusion import rundir
from trainer.service import (
    NAME_MAX,
    RunError,
    RunView,
    cancel,
    extend,
    figures_at,
    film_epochs,
    latest_eval,
    list_runs,
    loss_chart,
    read_guidance_sweep,
    read_nearest,
    rename,
    resume,
    schedule,
    tile_px,
    time_spent,
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
    context = {"view": view, "name_max": NAME_MAX, "chart": loss_chart(metrics), "evaluation": latest_eval(metrics),
               "log": view.log_tail(), "can_act": view.row is not None,
               "sweep": read_guidance_sweep(view), "spent": time_spent(view.status)}
    epoch = view.latest_grid_epoch
    if epoch is not None:
        rows = class_rows(view, epoch)
        context.update(newest_rows=rows, newest_px=tile_px(view.image_size, _per_row(rows), width=1110, largest=256))
    return context


@bp.get("/runs/<run_id>")
def run_page(run_id: str):
    run_schedule()
    view = get_view(run_id)
    return render_template("trainer/run.html", **_live_context(view))


@bp.get("/runs/<run_id>/live")
def run_live(run_id: str):
    """The polled region of the run page (stops polling itself once the run has finished). The poll says which
    state the page last showed (`was`): when it changed, the page's messages ("created and started", "cancel
    requested") speak of a moment that has passed, and the answer removes them."""
    run_schedule()
    view = get_view(run_id)
    stale = request.args.get("was", view.state)[:20] != view.state
    return render_template("trainer/_run_live.html", **_live_context(view), drop_flashes=stale)


@bp.post("/runs/<run_id>/name")
def run_rename(run_id: str):
    """Rename a run (the id stays in the URL). htmx swaps the name region; a plain form goes back to the page.
    A bad name is a 400 that says what is wrong, with the typed text kept in the field."""
    view = get_view(run_id)
    if view.row is None:
        abort(400, "this run was started from the command line and has no row to keep a name in")
    typed = request.form.get("name", "")
    try:
        rename(db.session, view.row, typed)
    except RunError as exc:
        if is_htmx():
            return render_template("trainer/_run_name.html", view=view, name_max=NAME_MAX, name_error=str(exc),
                                   typed=typed), 400
        return render_template("trainer/run.html", **_live_context(view), name_error=str(exc), typed=typed), 400
    if is_htmx():
        return render_template("trainer/_run_name.html", view=view, name_max=NAME_MAX, renamed=True)
    flash(f"Renamed to {view.name}.", "ok")
    return redirect(url_for("trainer.run_page", run_id=run_id))


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


def _picture_rel(view: RunView) -> str:
    """The `rel` query value naming a PNG inside the run folder (404 for anything else)."""
    rel = request.args.get("rel", "")
    if not rel or not rel.endswith(".png"):
        abort(404)
    _run_file(view, rel)
    return rel


def _neighbours(nearest) -> list[dict]:
    """nearest.json's neighbours with their curator images, found by content hash (None: no longer there)."""
    shas = [n.sha256 for n in nearest.neighbours if n.sha256]
    images = {i.sha256: i for i in db.session.scalars(select(Image).where(Image.sha256.in_(shas)))} if shas else {}
    return [{"n": n, "image": images.get(n.sha256)} for n in nearest.neighbours]


def _picture_caption(view: RunView, rel: str) -> str:
    """ "cat · epoch 3 · #2" for samples/epoch_0003/cat/1.png; the path itself for other run pictures."""
    parts = rel.split("/")
    if len(parts) == 4 and parts[0] == "samples" and parts[1].startswith("epoch_") and parts[1][6:].isdigit() \
            and parts[3][:-4].isdigit():
        return f"{parts[2]} · {view.grid_label(int(parts[1][6:]))} · #{int(parts[3][:-4]) + 1}"
    return rel


def _picture_context(run_id: str) -> dict:
    view = get_view(run_id)
    rel = _picture_rel(view)
    record = read_nearest(Path(view.path) / rel)
    return {"view": view, "rel": rel, "nearest": record, "neighbours": _neighbours(record),
            "caption": _picture_caption(view, rel)}


@bp.get("/runs/<run_id>/nearest")
def nearest(run_id: str):
    """The training images nearest to one run picture (from nearest.json), for the panel beside a sample; a plain
    request gets the picture's own page with the panel."""
    context = _picture_context(run_id)
    return render_template("trainer/_nearest.html" if is_htmx() else "trainer/picture.html", **context)


@bp.get("/runs/<run_id>/picture")
def picture(run_id: str):
    """One run picture on its own page, large, with its nearest training images: where a sample's link leads
    without JavaScript (with it, the lightbox opens instead)."""
    return render_template("trainer/picture.html", **_picture_context(run_id))


@bp.get("/runs/<run_id>/files/<path:rel>")
def run_file(run_id: str, rel: str):
    path = _run_file(get_view(run_id), rel)
    download = request.args.get("download") == "1"
    name = f"{run_id}-{rel.replace('/', '-')}"
    return send_file(path, mimetype=FILE_TYPES[path.suffix.lower()], as_attachment=download, download_name=name,
                     conditional=True, max_age=0)


# --- galleries ----------------------------------------------------------------------------------------------

def class_rows(view: RunView, epoch: int) -> list[dict]:
    """One row per class of an epoch's samples: its name and its pictures (paths relative to the run)."""
    rows = []
    for name in view.class_names:
        paths = rundir.class_sample_paths(view.path, epoch, name)
        rows.append({"name": name, "epoch": epoch, "images": [str(p.relative_to(view.path)) for p in paths]})
    return rows


def _per_row(rows: list[dict]) -> int:
    return max((len(r["images"]) for r in rows), default=1)


def _epoch_arg(key: str) -> int | None:
    """An epoch (or slider place) from the query: a whole number from 0, else a 400 that says so."""
    return bounded_int(request.args.get(key), None, low=0, high=MAX_PAGE, name=key)


def _chosen_epoch(epochs: list[int]) -> int | None:
    if not epochs:
        return None
    index = _epoch_arg("i")
    if index is not None:
        return epochs[min(index, len(epochs) - 1)]
    wanted = _epoch_arg("epoch")
    if wanted is None:
        return epochs[-1]
    return min(epochs, key=lambda e: (abs(e - wanted), e))


@bp.get("/runs/<run_id>/epochs")
def epoch_gallery(run_id: str):
    """One epoch's samples, a labelled row per class. The slider sends the epoch's place (`i`); the answer puts
    `?epoch=N` in the address bar (HX-Replace-Url, or a redirect for a plain form), so a reload or a shared link
    shows the same epoch."""
    view = get_view(run_id)
    epochs = view.epochs_with_grids
    epoch = _chosen_epoch(epochs)
    region = is_htmx() and htmx.target == "epoch-view"
    if "i" in request.args and epoch is not None and not region:
        return redirect(url_for("trainer.epoch_gallery", run_id=run_id, epoch=epoch))
    context = {"view": view, "epochs": epochs, "epoch": epoch}
    if epoch is not None:
        index = epochs.index(epoch)
        rows = class_rows(view, epoch)
        context.update(index=index, rows=rows, px=tile_px(view.image_size, _per_row(rows)),
                       figures=figures_at(view.metrics(), epoch),
                       grid=str(rundir.grid_path(view.path, epoch).relative_to(view.path)),
                       prev_epoch=epochs[index - 1] if index > 0 else None,
                       next_epoch=epochs[index + 1] if index + 1 < len(epochs) else None)
    if region:
        response = make_response(render_template("trainer/_epoch_view.html", **context))
        if epoch is not None:
            response.headers["HX-Replace-Url"] = url_for("trainer.epoch_gallery", run_id=run_id, epoch=epoch)
        return response
    return render_template("trainer/epochs.html", **context)


@bp.get("/runs/<run_id>/classes/<name>")
def class_gallery(run_id: str, name: str):
    """One class across epochs: a film strip with a row per epoch (oldest first) and a column per sample, so
    each column is the same fixed noise getting better. Long runs show an even spread of epochs unless ?all=1."""
    view = get_view(run_id)
    if name not in view.class_names:
        abort(404)
    every = request.args.get("all") == "1"
    shown = view.epochs_with_grids if every else film_epochs(view.epochs_with_grids)
    rows = [{"name": name, "epoch": e, "images": [str(p.relative_to(view.path))
                                                  for p in rundir.class_sample_paths(view.path, e, name)]}
            for e in shown]
    return render_template("trainer/class_gallery.html", view=view, name=name, rows=rows, every=every,
                           hidden=len(view.epochs_with_grids) - len(shown), px=tile_px(view.image_size, _per_row(rows)))


@bp.get("/compare")
def compare():
    """Two runs (or one run at two epochs) side by side: per side its name, epoch and figures at that epoch, and
    the same class rows."""
    runs = [r for r in list_runs(db.session, instance()) if r.epochs_with_grids]
    by_id = {r.id: r for r in runs}
    a, b = by_id.get(request.args.get("a", "")), by_id.get(request.args.get("b", ""))
    if a is None and runs:
        a = runs[0]
    if b is None and runs:
        b = next((r for r in runs if r.id != a.id), a)  # one run with samples: two of its epochs
    sides = []
    if a and b:
        for key, side in (("a", a), ("b", b)):
            wanted = _epoch_arg(f"epoch_{key}")
            if wanted is None:
                wanted = _epoch_arg("epoch")
            options = side.epochs_with_grids
            if wanted is None and a.id == b.id and key == "a":
                wanted = options[0]
            shown = options[-1] if wanted is None else min(options, key=lambda e: (abs(e - wanted), e))
            rows = {r["name"]: r for r in class_rows(side, shown)}
            per_row = _per_row(list(rows.values()))
            px = tile_px(side.image_size, per_row, width=540, largest=160)
            fits = max(1, min(8, (540 + 4) // (px + 4)))  # tiles a half-page column holds (4 px gaps)
            lines = math.ceil(per_row / fits)
            sides.append({"key": key, "view": side, "epoch": shown, "rows": rows, "px": px,
                          "cols": math.ceil(per_row / lines),  # balanced lines: 8 samples are 4 + 4, not 5 + 3
                          "figures": figures_at(side.metrics(), shown)})
    names = list(dict.fromkeys(name for side in sides for name in side["rows"]))
    return render_template("trainer/compare.html", runs=runs, a=a, b=b, sides=sides, names=names)
