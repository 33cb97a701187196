"""Sticker and favourites pages of a run: mark favourites (the star every gallery tile carries, with htmx or as a
plain form), act on them (download a zip, send them to the curator as a staged batch, make a sticker pack), train
and watch the learned upscaler, compare it with Lanczos on a picture.

Everything that needs torch (training the upscaler, applying it, exporting a pack with it) runs in a detached
process (trainer.upscaling); pages read their files and poll with htmx every second while something runs, and
refresh themselves without JavaScript (a meta refresh) so plain HTML works too.
"""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from PIL import Image, UnidentifiedImageError

from core.db import db
from core.web import ident_ok, is_htmx, safe_next
from curator.imports.storage import ImageStore
from curator.imports.validation import Limits
from diffusion.rundir import class_sample_paths
from trainer import favourites, stickers, upscaling
from trainer.generation_service import list_generations, read_generation, send_favourites
from trainer.service import RunError
from trainer.views import get_view, instance

bp = Blueprint("stickers", __name__, template_folder="templates", url_prefix="/stickers")
UPSCALERS = ("lanczos", "learned")
RECENT_GENERATIONS = 3


# --- reading the request ------------------------------------------------------------------------------------

def _picture(view, rel: str) -> Path:
    """A training sample or generated PNG of this run (404 for anything else: other files, paths outside it)."""
    try:
        favourites.describe(view.path, rel)
    except favourites.FavouriteError:
        abort(404)
    return view.path / rel


def _options(values) -> tuple[dict, dict]:
    """(sticker options, errors by field) from a query string or form."""
    errors, opts = {}, {}
    raw_scale = values.get("scale", "4")
    opts["scale"] = int(raw_scale) if raw_scale in ("4", "8") else 4
    if raw_scale not in ("4", "8"):
        errors["scale"] = f"scale {raw_scale!r} must be 4 or 8"
    opts["upscaler"] = values.get("upscaler", "lanczos")
    if opts["upscaler"] not in UPSCALERS:
        errors["upscaler"] = f"upscaler must be one of {', '.join(UPSCALERS)}"
        opts["upscaler"] = "lanczos"
    for field, default, (low, high) in (("outline", 0, (0, stickers.MAX_OUTLINE)),
                                        ("colours", stickers.DEFAULT_COLOURS, stickers.COLOUR_RANGE)):
        raw = values.get(field, str(default)) or str(default)
        try:
            opts[field] = int(raw)
            if not low <= opts[field] <= high:
                raise ValueError
        except ValueError:
            errors[field] = f"{field} must be a whole number from {low} to {high}"
            opts[field] = default
    opts["outline_colour"] = values.get("outline_colour", "white") or "white"
    try:
        stickers.parse_colour(opts["outline_colour"])
    except stickers.StickerError as exc:
        errors["outline_colour"] = str(exc)
        opts["outline_colour"] = "white"
    return opts, errors


def _bad_request(message: str):
    return render_template("error.html", title="Cannot make that sticker", message=message), 400


def _load(path: Path) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return img
    except (OSError, UnidentifiedImageError):
        abort(404)


# --- the run's sticker page ---------------------------------------------------------------------------------

def _pictures(view) -> list[dict]:
    """Pictures to choose from: the latest epoch's samples and the images of the latest generations."""
    out = []
    if view.epochs_with_grids:
        epoch = view.epochs_with_grids[-1]
        for name in view.class_names:
            for p in class_sample_paths(view.path, epoch, name):
                out.append({"png": str(p.relative_to(view.path)), "label": f"{name} · epoch {epoch} #{p.stem}"})
    for gen_id in list_generations(view)[:RECENT_GENERATIONS]:
        job = read_generation(view, gen_id)
        if job is not None and job.state == "done":
            out += [{"png": img["png"], "label": f"{img['class']} · generation {gen_id} #{img['index']}"}
                    for img in job.images]
    return out


def _page(view, opts: dict, errors: dict, status: int = 200):
    chosen = {f["png"] for f in favourites.read(view.path)}
    return render_template("stickers/run.html", view=view, up=upscaling.read(view.path),
                           favourites=favourites.read(view.path), pictures=_pictures(view), chosen=chosen,
                           opts=opts, errors=errors, scales=stickers.SCALES, upscalers=UPSCALERS,
                           minutes_range=upscaling.MINUTES_RANGE), status


@bp.get("/runs/<run_id>")
def run_stickers(run_id: str):
    view = get_view(run_id)
    opts, errors = _options(request.args)
    return _page(view, opts, errors, 400 if errors else 200)


@bp.get("/runs/<run_id>/upscaler")
def upscaler_panel(run_id: str):
    """The upscaler's progress: a fragment for htmx polling, a self-refreshing page otherwise."""
    view = get_view(run_id)
    up = upscaling.read(view.path)
    if is_htmx():
        return render_template("stickers/_upscaler.html", view=view, up=up,
                               minutes_range=upscaling.MINUTES_RANGE)
    return render_template("stickers/upscaler.html", view=view, up=up, minutes_range=upscaling.MINUTES_RANGE)


@bp.post("/runs/<run_id>/upscaler/train")
def upscaler_train(run_id: str):
    view = get_view(run_id)
    try:
        upscaling.start(view.path, request.form.get("minutes", "5"))
    except upscaling.UpscalerError as exc:
        return render_template("stickers/upscaler.html", view=view, up=upscaling.read(view.path),
                               minutes_range=upscaling.MINUTES_RANGE, error=str(exc)), 400
    flash("Training the upscaler on the run's own images.", "ok")
    return redirect(url_for("stickers.upscaler_panel", run_id=run_id), 303)


@bp.post("/runs/<run_id>/upscaler/cancel")
def upscaler_cancel(run_id: str):
    view = get_view(run_id)
    flash(upscaling.cancel(view.path), "ok")
    return redirect(url_for("stickers.upscaler_panel", run_id=run_id), 303)


# --- favourites ---------------------------------------------------------------------------------------------

@bp.app_context_processor
def favourite_helpers() -> dict:
    """`favourite_set(view)`: the run's favourite paths, read once per request however many tiles ask (every
    gallery tile includes trainer/_favourite_toggle.html)."""
    def favourite_set(view) -> set[str]:
        cache = g.setdefault("favourite_sets", {})
        if view.id not in cache:
            cache[view.id] = {f["png"] for f in favourites.read(view.path)}
        return cache[view.id]
    return {"favourite_set": favourite_set}


@bp.post("/runs/<run_id>/favourites")
def favourite_toggle(run_id: str):
    """Star or unstar one picture (`file`, `action` add|remove|toggle). htmx gets the toggle back (its new state and the
    run's count); a plain form goes back to `next` (a path on this site) or the favourites page."""
    view = get_view(run_id)
    rel = request.form.get("file", "")
    action = request.form.get("action", "add")
    if action == "toggle":
        action = "remove" if favourites.is_favourite(view.path, rel) else "add"
    try:
        if action == "remove":
            if not favourites.is_favourite(view.path, rel):  # a removed picture's entry can still be unmarked
                favourites.describe(view.path, rel)  # anything else that is no picture of the run: say so
            favourites.remove(view.path, rel)
        else:
            favourites.add(view.path, rel)
    except favourites.FavouriteError as exc:
        return _bad_request(str(exc))
    g.pop("favourite_sets", None)
    back = safe_next(request.form.get("next"), url_for("stickers.favourites_page", run_id=run_id))
    if is_htmx():
        return render_template("trainer/_favourite_toggle.html", view=view, rel=rel, next_url=back)
    return redirect(back, 303)


def _favourites_page(view, errors: dict, status: int = 200):
    return render_template("stickers/favourites.html", view=view, items=favourites.read(view.path),
                           errors=errors), status


@bp.get("/runs/<run_id>/favourites")
def favourites_page(run_id: str):
    return _favourites_page(get_view(run_id), {})


@bp.get("/runs/<run_id>/favourites.zip")
def favourites_download(run_id: str):
    """The favourites as a zip: their PNGs and manifest.json saying what regenerates each (404 when none)."""
    view = get_view(run_id)
    items = favourites.checked(view.path, favourites.read(view.path))
    if not items:
        abort(404, "the run has no favourites to download: mark some first")
    response = Response(favourites.zip_bytes(view.path, view.id, items), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="favourites-{run_id}.zip"'
    return response


@bp.post("/runs/<run_id>/favourites/send")
def favourites_send(run_id: str):
    """Stage the favourites for the curator (a batch of kind "generated" in the merge preview)."""
    view = get_view(run_id)
    try:
        batch = send_favourites(db.session, ImageStore(instance()), view, favourites.read(view.path),
                                Limits.from_config(current_app.config))
    except RunError as exc:
        return _favourites_page(view, {"send": str(exc)}, 400)
    flash(f"Staged {len(batch.items)} favourite(s) as batch #{batch.id}: they join the dataset only when you accept "
          "them here, and snapshots leave them out unless asked.", "ok")
    return redirect(url_for("merge.merge_preview", batch_id=batch.id), 303)


# --- one picture: Lanczos and learned side by side ----------------------------------------------------------

@bp.get("/runs/<run_id>/compare")
def compare(run_id: str):
    view = get_view(run_id)
    rel = request.args.get("file", "")
    _picture(view, rel)
    opts, errors = _options(request.args)
    if errors:
        return _bad_request("; ".join(errors.values()))
    learned, learned_error = "none", ""
    if upscaling.read(view.path).has_model:
        try:
            flat, _, _ = stickers.prepare(_load(view.path / rel))
            learned, _ = upscaling.preview(view.path, rel, opts["scale"], stickers.png_bytes(flat))
        except (stickers.StickerError, upscaling.UpscalerError) as exc:
            learned, learned_error = "failed", str(exc)
    return render_template("stickers/compare.html", view=view, file=rel, opts=opts, learned=learned,
                           learned_error=learned_error)


@bp.get("/runs/<run_id>/sticker.<fmt>")
def sticker_file(run_id: str, fmt: str):
    """One sticker (PNG or SVG) of a run picture with the chosen upscaler; the learned one once its preview is
    ready (409 until then)."""
    view = get_view(run_id)
    if fmt not in ("png", "svg"):
        abort(404)
    rel = request.args.get("file", "")
    path = _picture(view, rel)
    opts, errors = _options(request.args)
    if errors:
        return _bad_request("; ".join(errors.values()))
    img = _load(path)
    try:
        flat, alpha, bg = stickers.prepare(img)
        if opts["upscaler"] == "learned":
            preview = upscaling.preview_path(view.path, rel, opts["scale"])
            if not preview.exists():
                return Response("the learned upscale is not ready yet", status=409, mimetype="text/plain")
            big = _load(preview)
        else:
            big = stickers.lanczos(flat, opts["scale"])
        sticker = stickers.finish(big, alpha, bg, opts["scale"], outline_width=opts["outline"],
                                  outline_colour=opts["outline_colour"])
    except stickers.StickerError as exc:
        return Response(str(exc), status=422, mimetype="text/plain")
    if fmt == "png":
        body, mimetype = stickers.png_bytes(sticker), "image/png"
    else:
        body, mimetype = stickers.trace_svg(sticker, colours=opts["colours"]), "image/svg+xml"
    response = Response(body, mimetype=mimetype)
    if request.args.get("download") == "1":
        stem = f"{run_id}-{Path(rel).parent.name}-{Path(rel).stem}-x{opts['scale']}-{opts['upscaler']}"
        response.headers["Content-Disposition"] = f'attachment; filename="{stem}.{fmt}"'
    return response


# --- packs --------------------------------------------------------------------------------------------------

@bp.post("/runs/<run_id>/packs")
def pack_start(run_id: str):
    view = get_view(run_id)
    opts, errors = _options(request.form)
    if not favourites.read(view.path):
        errors["favourites"] = "Mark some favourites first: the pack is made of the run's favourites."
    if opts["upscaler"] == "learned" and not upscaling.read(view.path).has_model:
        errors["upscaler"] = "The run has no trained upscaler yet: train it, or choose Lanczos."
    if errors:
        return _page(view, opts, errors, 400)
    job_id = upscaling.start_pack(instance(), view.path, scale=opts["scale"], upscaler=opts["upscaler"],
                                  outline=opts["outline"], outline_colour=opts["outline_colour"],
                                  colours=opts["colours"])
    return redirect(url_for("stickers.pack_page", run_id=run_id, job_id=job_id), 303)


def _pack_or_404(view, job_id: str):
    if not ident_ok(job_id):
        abort(404)
    job = upscaling.read_pack(view.path, job_id)
    return job or abort(404)


@bp.get("/runs/<run_id>/packs/<job_id>")
def pack_page(run_id: str, job_id: str):
    view = get_view(run_id)
    job = _pack_or_404(view, job_id)
    if is_htmx():
        return render_template("stickers/_pack.html", view=view, job=job)
    return render_template("stickers/pack.html", view=view, job=job)


@bp.get("/runs/<run_id>/packs/<job_id>/pack.zip")
def pack_download(run_id: str, job_id: str):
    view = get_view(run_id)
    job = _pack_or_404(view, job_id)
    if job.state != "done":
        abort(404)
    data = BytesIO(job.zip_path.read_bytes())
    return send_file(data, mimetype="application/zip", as_attachment=True,
                     download_name=f"stickers-{run_id}-{job_id}.zip")
