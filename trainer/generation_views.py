"""Generation and single-sticker pages of a run: the Generate form, a generation's page, sending its pictures to
the curator, and a sticker made from one picture. Their own blueprint (under /train like the run pages)."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for

from core.db import db
from core.forms import FormErrors
from core.web import is_htmx
from curator.imports.storage import ImageStore
from curator.imports.validation import Limits
from diffusion.config import DEFAULT_SAMPLER, SAMPLERS
from trainer import stickers
from trainer.generation_service import (
    GenerationRequest,
    checkpoint_choices,
    generation_zip,
    last_request,
    list_generations,
    read_generation,
    send_to_curator,
    start_generation,
)
from trainer.service import RunError, RunView
from trainer.views import _run_file, _safe_id, get_view, instance

bp = Blueprint("generation", __name__, template_folder="templates", url_prefix="/train")


def parse_generation_form(form, view: RunView) -> tuple[GenerationRequest | None, FormErrors]:
    e = FormErrors()
    classes = [c for c in form.getlist("class") if c]
    unknown = [c for c in classes if c not in view.class_names]
    if unknown:
        e["class"] = f"Unknown class(es) {', '.join(unknown)}; this run knows {', '.join(view.class_names)}."
    n = e.number(form, "n", "Count", int, 1, 64)
    steps = e.number(form, "steps", "Steps", int, 1, 1000)
    sampler = e.choice(form, "sampler", "Sampler", SAMPLERS, DEFAULT_SAMPLER)
    guidance = e.number(form, "guidance", "Guidance", float, 0, 30)
    seed = e.number(form, "seed", "Seed", int, 0, 2**31 - 1)
    choices = checkpoint_choices(view)
    which = form.get("which") or (choices[0] if choices else "best")
    if choices and which not in choices:
        e["which"] = f"Checkpoint {which[:40]!r} is not kept for this run; choose one of {', '.join(choices)}."
    if e:
        return None, e
    return GenerationRequest(classes=classes, n=n, steps=steps, sampler=sampler, guidance=guidance, seed=seed,
                             gif=form.get("gif", "1") == "1", which=which), e


def remembered_values(view: RunView) -> dict:
    """The form's starting values: the run's newest generation's settings, else the defaults."""
    last = last_request(view)
    values = {"n": "4", "steps": "25", "sampler": DEFAULT_SAMPLER, "guidance": str(view.config.get("guidance", 3)),
              "seed": "0", "which": "best", "class": ""}
    for key in ("n", "steps", "sampler", "guidance", "seed", "which"):
        if last.get(key) not in (None, ""):
            values[key] = str(last[key])
    classes = last.get("classes") or []
    if len(classes) == 1 and classes[0] in view.class_names:
        values["class"] = classes[0]
    return values


def _generate_page(view: RunView, form: dict, errors: dict, status: int = 200):
    remembered = remembered_values(view)
    values = {**remembered, **form}
    jobs = [g for g in (read_generation(view, gid) for gid in list_generations(view)[:20]) if g]
    return render_template("trainer/generate.html", view=view, values=values, errors=errors, samplers=SAMPLERS,
                           jobs=jobs, checkpoints=checkpoint_choices(view),
                           remembered=bool(last_request(view)) and not form), status


@bp.get("/runs/<run_id>/generate")
def generate_form(run_id: str):
    return _generate_page(get_view(run_id), {}, {})


@bp.post("/runs/<run_id>/generate")
def generate_start(run_id: str):
    view = get_view(run_id)
    gen, errors = parse_generation_form(request.form, view)
    if errors:
        return _generate_page(view, request.form.to_dict(), errors, 400)
    try:
        gen_id = start_generation(view, gen)
    except RunError as exc:
        return _generate_page(view, request.form.to_dict(), {"_": str(exc)}, 400)
    return redirect(url_for("generation.generation_page", run_id=run_id, gen_id=gen_id))


def _generation_or_404(view, gen_id: str):
    job = read_generation(view, gen_id) if _safe_id(gen_id) else None
    return job if job is not None else abort(404)


@bp.get("/runs/<run_id>/generate/<gen_id>")
def generation_page(run_id: str, gen_id: str):
    view = get_view(run_id)
    job = _generation_or_404(view, gen_id)
    template = "trainer/_generation.html" if is_htmx() and request.args.get("part") == "1" else \
        "trainer/generation.html"
    return render_template(template, view=view, job=job)


@bp.get("/runs/<run_id>/generate/<gen_id>/generation.zip")
def generation_download(run_id: str, gen_id: str):
    """The whole generation as one zip (PNGs, GIFs, request.json, manifest.json); 404 until it has pictures."""
    view = get_view(run_id)
    job = _generation_or_404(view, gen_id)
    if not job.images:
        abort(404, f"generation {gen_id} has no pictures yet")
    response = Response(generation_zip(view, job), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{run_id}-{gen_id}.zip"'
    return response


@bp.post("/runs/<run_id>/generate/<gen_id>/send")
def generation_send(run_id: str, gen_id: str):
    """Close the loop: chosen generated images are staged for the curator (a batch of kind "generated" in the
    merge preview), training data only once someone accepts them there."""
    view = get_view(run_id)
    job = _generation_or_404(view, gen_id)
    picks = [p for p in request.form.getlist("pick") if p]
    try:
        batch = send_to_curator(db.session, ImageStore(instance()), view, job, picks,
                                Limits.from_config(current_app.config))
    except RunError as exc:
        return render_template("trainer/generation.html", view=view, job=job, send_error=str(exc),
                               picked=set(picks)), 400
    flash(f"Staged {len(picks)} generated image(s) as batch #{batch.id}: they join the dataset only when you accept "
          "them here, and snapshots leave them out unless asked.", "ok")
    return redirect(url_for("merge.merge_preview", batch_id=batch.id), 303)


# --- stickers -----------------------------------------------------------------------------------------------

def _sticker_args(view: RunView) -> tuple[Path, int, str]:
    path = _run_file(view, request.args.get("file", ""))
    if path.suffix.lower() != ".png":
        abort(404)
    scale = request.args.get("scale", 4, type=int)
    background = request.args.get("background", "auto")
    if scale not in stickers.SCALES or background not in stickers.BACKGROUNDS:
        abort(400, f"scale must be one of {stickers.SCALES} and background one of {stickers.BACKGROUNDS}")
    return path, scale, background


def _sticker_image(path: Path, scale: int, background: str):
    from PIL import Image
    with Image.open(path) as img:
        img.load()
        return stickers.make_sticker(img, scale=scale, background=background)


@bp.get("/runs/<run_id>/sticker")
def sticker_page(run_id: str):
    view = get_view(run_id)
    path, scale, background = _sticker_args(view)
    error = ""
    try:
        _sticker_image(path, scale, background)
    except stickers.StickerError as exc:
        error = str(exc)
    return render_template("trainer/sticker.html", view=view, file=request.args["file"], scale=scale,
                           background=background, error=error, scales=stickers.SCALES,
                           backgrounds=stickers.BACKGROUNDS)



@bp.get("/runs/<run_id>/sticker.<fmt>")
def sticker_file(run_id: str, fmt: str):
    view = get_view(run_id)
    path, scale, background = _sticker_args(view)
    try:
        sticker = _sticker_image(path, scale, background)
    except stickers.StickerError as exc:
        abort(422, str(exc))
    stem = f"{run_id}-{path.parent.name}-{path.stem}-x{scale}"
    if fmt == "png":
        body, mimetype = stickers.png_bytes(sticker), "image/png"
    elif fmt == "svg":
        body, mimetype = stickers.trace_svg(sticker), "image/svg+xml"
    else:
        abort(404)
    response = Response(body, mimetype=mimetype)
    if request.args.get("download") == "1":
        response.headers["Content-Disposition"] = f'attachment; filename="{stem}.{fmt}"'
    return response
