"""Snapshot pages (under /train/snapshots, where a run is started from): the list with what changed since the
previous snapshot, and the form that freezes the current selection."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from core.db import db
from core.forms import FormErrors, as_sentence
from curator.snapshots.manifest import SELECTIONS, SnapshotError, background_problem
from curator.snapshots.service import create_snapshot, generated_active, snapshot_rows
from diffusion.config import FITS

bp = Blueprint("snapshots", __name__, template_folder="templates", url_prefix="/train")


def _page(form, errors, status: int = 200):
    rows = snapshot_rows(db.session, Path(current_app.instance_path))
    return render_template("snapshots/index.html", rows=rows, fits=FITS, form=form, errors=errors,
                           generated=generated_active(db.session)), status


@bp.get("/snapshots")
def snapshots():
    return _page({}, {})


@bp.post("/snapshots")
def snapshot_create():
    form = request.form
    errors = FormErrors()
    size = errors.number(form, "image_size", "Image size", int, 8, 512)
    fit = errors.choice(form, "fit", "Fit", FITS, "crop")
    selection = errors.choice(form, "selection", "Selection", SELECTIONS, "active")
    top_k = errors.number(form, "top_k", "Top-k", int, 1, 100_000, required=False) if selection == "top-k" else None
    background = (form.get("background") or "white").strip()
    if problem := background_problem(background):
        errors["background"] = as_sentence(problem)
    include_generated = form.get("include_generated") == "1"
    if not errors:
        try:
            snap = create_snapshot(db.session, Path(current_app.instance_path), image_size=size, fit=fit,
                                   background=background, selection=selection, top_k=top_k, name=form.get("name"),
                                   include_generated=include_generated)
        except SnapshotError as exc:
            errors["_"] = str(exc)
        else:
            left_out = "" if include_generated else generated_active(db.session)
            flash(f"Snapshot {snap.id} saved: {sum(snap.counts.values())} images in {len(snap.counts)} classes"
                  + (f"; {left_out} generated image(s) left out." if left_out else "."), "ok")
            return redirect(url_for("snapshots.snapshots"))
    return _page(form, errors, 400)
