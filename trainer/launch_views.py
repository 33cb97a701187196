"""The new-run form: training settings from the user, a snapshot to train on (or one made now), and the run
created and queued. Its own blueprint under /train, beside the run pages (trainer/views.py)."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from core.db import db
from core.forms import FormErrors
from core.models import Snapshot
from curator.snapshots.service import SnapshotError, create_snapshot, list_snapshots, manifest_path, read_manifest
from diffusion import rundir
from diffusion.config import DEVICES, FLIPS, MEASURED_CPU_IMAGES_PER_SEC, PRESETS, TrainConfig, budget_estimate
from trainer.service import create_run
from trainer.views import instance, run_schedule

bp = Blueprint("launch", __name__, template_folder="templates", url_prefix="/train")

FORM_DEFAULTS = {"preset": "small", "image_size": "", "epochs": "", "minutes": "10", "batch_size": "64",
                 "lr": "0.002", "guidance": "3", "sample_every": "", "seed": "0", "device": "auto",
                 "snapshot": "", "flip": "auto"}
FLIP_LABELS = {"auto": "auto: on only if mirrored pictures keep their class (tested, logged)",
               "off": "off: never mirror", "on": "on: mirror half the pictures"}


def parse_run_form(form) -> tuple[dict, FormErrors]:
    """The new-run form as training settings, and a message per bad field."""
    e = FormErrors()
    values = {
        "preset": e.choice(form, "preset", "Preset", PRESETS),
        "device": e.choice(form, "device", "Device", DEVICES, "auto"),
        "flip": e.choice(form, "flip", "Flips", FLIPS, "auto"),
        "image_size": e.number(form, "image_size", "Image size", int, 8, 512, required=False),
        "epochs": e.number(form, "epochs", "Epochs", int, 1, 100_000, required=False),
        "minutes": e.number(form, "minutes", "Minutes", float, 0.01, 100_000, required=False),
        "batch_size": e.number(form, "batch_size", "Batch size", int, 1, 4096),
        "lr": e.number(form, "lr", "Learning rate", float, 1e-6, 0.5),
        "guidance": e.number(form, "guidance", "Guidance", float, 0, 30),
        "sample_every": e.number(form, "sample_every", "Sample every N epochs", int, 1, 10_000, required=False),
        "seed": e.number(form, "seed", "Seed", int, 0, 2**31 - 1),
    }
    if values["image_size"] is not None and values["image_size"] % 4:
        e["image_size"] = f"Image size must be a multiple of 4 (the model halves it twice); got {values['image_size']}."
    if "epochs" not in e and "minutes" not in e and values["epochs"] is None and values["minutes"] is None:
        e["epochs"] = "Give a number of epochs or a time budget in minutes (or both: whichever ends first)."
    if not (form.get("snapshot") or "").strip():
        e["snapshot"] = "Choose a snapshot to train on (or 'snapshot the current data now')."
    return values, e


def _speed(preset: str, image_size: int, device: str) -> tuple[float | None, str]:
    """(images per second, where the figure comes from): an earlier run of this preset and size on this machine,
    else the figure measured on the project's 2-core CPU, else unknown."""
    speeds = rundir.measured_speeds(instance() / "runs")
    kind = device if device != "auto" else (speeds[0]["device"] if speeds else "cpu")
    for m in speeds:
        if m["preset"] == preset and m["image_size"] == image_size and m["device"] == kind:
            return m["images_per_sec"], f"measured by run {m['run']} on {kind}"
    if kind == "cpu" and MEASURED_CPU_IMAGES_PER_SEC.get((preset, image_size)):
        return MEASURED_CPU_IMAGES_PER_SEC[(preset, image_size)], "measured on a 2-core CPU (no run here yet)"
    return None, f"not measured yet for {preset} at {image_size} px on {kind}: the first run measures it"


def estimate(values: dict, snapshots) -> dict:
    """What the form's budget buys with these settings on this machine (budget_estimate + where the speed is from),
    or, while a setting it depends on is out of range, the form's message for it (`problem`)."""
    parsed, errors = parse_run_form({**FORM_DEFAULTS, "minutes": "", **values})  # the form's parse, one for both
    problem = next((errors[k] for k in ("image_size", "batch_size", "epochs", "minutes") if k in errors), None)
    if problem:
        return {"problem": problem}
    snap = next((s for s in snapshots if s.id == values.get("snapshot")), None)
    size = parsed["image_size"] or (snap.image_size if snap else 32)
    preset = parsed["preset"] or "small"
    batch = parsed["batch_size"]
    n_images = sum(snap.counts.values()) if snap else None
    speed, source = _speed(preset, size, parsed["device"] or "auto")
    est = budget_estimate(parsed["minutes"], parsed["epochs"],
                          n_images=n_images, batch_size=min(batch, n_images) if n_images else batch,
                          images_per_sec=speed, preset=preset, image_size=size)
    return {**est, "source": source, "preset": preset, "image_size": size, "n_images": n_images}


def _new_run_page(form: dict, errors: dict, status: int = 200):
    snaps = list_snapshots(db.session)
    values = {**FORM_DEFAULTS, **{k: v for k, v in form.items()}}
    if not values["snapshot"] and snaps:
        values["snapshot"] = snaps[0].id
    if "minutes" not in form and "epochs" not in form:  # the default budget follows the data and the device
        first = estimate(values, snaps)
        if (first.get("suggest_minutes") or 0) > 10:
            values["minutes"] = str(min(60, first["suggest_minutes"]))
    return render_template("trainer/new_run.html", snapshots=snaps, values=values, errors=errors,
                           presets=PRESETS, devices=DEVICES, flips=FLIP_LABELS,
                           estimate=estimate(values, snaps)), status


@bp.get("/new")
def new_run():
    return _new_run_page(request.args.to_dict(), {})


@bp.get("/new/estimate")
def new_run_estimate():
    """The "what this budget buys" box alone, for htmx as the form changes (the page itself works without it)."""
    return render_template("trainer/new_run.html", partial=True,
                           estimate=estimate(request.args.to_dict(), list_snapshots(db.session)))


def _settings(values: dict) -> dict:
    """Training settings from the form over the app's TRAINER_DEFAULTS (settings the form does not show)."""
    return {**current_app.config.get("TRAINER_DEFAULTS", {}),
            **{k: v for k, v in values.items() if v is not None},
            "epochs": values["epochs"], "minutes": values["minutes"], "sample_every": values["sample_every"],
            "image_size": values["image_size"] or 32}


@bp.post("/runs")
def run_create():
    values, errors = parse_run_form(request.form)
    snapshot = None
    choice = (request.form.get("snapshot") or "").strip()
    if choice and choice != "new":
        snapshot = db.session.get(Snapshot, choice)
        if snapshot is None:
            errors["snapshot"] = f"There is no snapshot {choice!r}; choose one from the list."
    if errors:
        return _new_run_page(request.form.to_dict(), errors, 400)
    if choice == "new":
        try:  # check the training settings first, so a refused run leaves no snapshot behind
            TrainConfig.from_dict({**_settings(values), "data": "pending"}).validate()
        except ValueError as exc:
            return _new_run_page(request.form.to_dict(), {"_": str(exc)}, 400)
        try:
            snapshot = create_snapshot(db.session, instance(), image_size=values["image_size"] or 32,
                                       name="for a new run")
        except SnapshotError as exc:
            return _new_run_page(request.form.to_dict(), {"snapshot": str(exc)}, 400)
    try:
        manifest = read_manifest(instance(), snapshot)
    except (OSError, ValueError) as exc:
        return _new_run_page(request.form.to_dict(), {"snapshot": f"Snapshot {snapshot.id}'s manifest cannot be "
                                                                  f"read ({exc})."}, 400)
    settings = {**_settings(values), "image_size": values["image_size"] or snapshot.image_size,
                "fit": snapshot.fit, "background": snapshot.background,
                "data": str(manifest_path(instance(), snapshot))}
    try:
        row = create_run(db.session, instance(), settings, snapshot=snapshot, class_names=manifest["classes"])
    except ValueError as exc:
        return _new_run_page(request.form.to_dict(), {"_": str(exc)}, 400)
    started = run_schedule()
    flash(f"Run {row.id} created" + (" and started." if row.id in started
                                     else f"; it is queued until {row.device} is free."), "ok")
    return redirect(url_for("trainer.run_page", run_id=row.id))


