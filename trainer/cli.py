"""`manage.py train` and `manage.py sample`: the command-line face of the diffusion package.

Training runs in this process (a tqdm bar on stderr) into `<instance>/runs/<id>/`, the same run directory the
web trainer reads. torch and diffusion are imported inside the commands, so `manage.py --help` and the web
process stay light.
"""
from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from core.cli import emit, json_option
from diffusion.config import DEVICES, PRESETS, SAMPLERS

DEFAULT_MINUTES = 10.0


def _prepare_torch() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: spin-waits starve shared CPUs


def resolve_run_dir(instance: Path, run: str) -> Path:
    """A run id under <instance>/runs, or a path to a run directory."""
    by_id = Path(instance) / "runs" / run
    if "/" not in run and by_id.is_dir():
        return by_id
    path = Path(run).expanduser()
    if path.is_dir():
        return path
    raise click.ClickException(f"no run {run!r}: not a run id under {Path(instance) / 'runs'} nor a directory")


def _data_source(instance: Path, snapshot: str | None, data: Path | None, image_size: int) -> tuple[str, str | None]:
    """(data path for TrainConfig, snapshot id or None). Without --snapshot/--data, freezes a new snapshot."""
    if snapshot and data:
        raise click.UsageError("give either --snapshot or --data, not both")
    if data is not None:
        if not data.is_dir():
            raise click.ClickException(f"--data {data} is not a directory (expected one subfolder per class)")
        return str(data.resolve()), None
    if snapshot:
        manifest = instance / "snapshots" / snapshot / "manifest.json"
        if not manifest.exists():
            raise click.ClickException(f"no snapshot {snapshot!r} (looked for {manifest}); "
                                       "`python manage.py snapshot` makes one")
        return str(manifest), snapshot
    from core.db import db
    from curator.snapshots.service import SnapshotError, create_snapshot
    try:
        snap = create_snapshot(db.session, instance, image_size=image_size)
    except SnapshotError as e:
        raise click.ClickException(f"cannot make a snapshot of the current images: {e}") from None
    click.echo(f"Made snapshot {snap.id} of the current images.", err=True)
    return str(snap.manifest_path), snap.id


@click.command("train")
@click.option("--snapshot", "snapshot", metavar="ID", help="Train on this snapshot (default: a new snapshot of "
              "the active images).")
@click.option("--data", type=click.Path(path_type=Path), help="Train on an ImageFolder directory instead "
              "(one subfolder per class).")
@click.option("--epochs", type=click.IntRange(min=1), help="Passes over the data.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True),
              help=f"Wall-clock budget (default {DEFAULT_MINUTES:g} when --epochs is not given).")
@click.option("--image-size", type=click.IntRange(8, 512), help="Training resolution in pixels (default 32).")
@click.option("--preset", type=click.Choice(PRESETS), help="Model size (default small).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per step (default 64).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Peak learning rate (default 2e-3).")
@click.option("--seed", type=int, help="Random seed (default 0).")
@click.option("--device", type=click.Choice(DEVICES), help="auto (default), cpu, cuda or mps.")
@click.option("--resume", "resume_run", metavar="RUN", help="Continue a run (id or path); only --epochs and "
              "--minutes may change.")
@json_option("the result")
@with_appcontext
def train_command(snapshot, data, epochs, minutes, image_size, preset, batch_size, lr, seed, device, resume_run,
                  as_json):
    """Train a class-conditional diffusion model; writes <instance>/runs/<id>/."""
    _prepare_torch()
    from diffusion import rundir
    from diffusion.checkpoint import CheckpointError
    from diffusion.config import TrainConfig
    from diffusion.data import DataError
    from diffusion.train import TrainingError, read_run_config, train, write_run_config

    instance = Path(current_app.instance_path)
    if resume_run:
        others = {"--snapshot": snapshot, "--data": data, "--image-size": image_size, "--preset": preset,
                  "--batch-size": batch_size, "--lr": lr, "--seed": seed, "--device": device}
        given = [k for k, v in others.items() if v is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)} cannot change when resuming; only --epochs and --minutes "
                                   "can (start a new run for other settings)")
        run_dir = resolve_run_dir(instance, resume_run)
        try:
            config = read_run_config(run_dir)
        except TrainingError as e:
            raise click.ClickException(str(e)) from None
        if epochs is not None:
            config.epochs = epochs
        if minutes is not None:
            config.minutes = minutes
        resume = True
    else:
        size = image_size or 32
        source, snapshot_id = _data_source(instance, snapshot, data, size)
        if epochs is None and minutes is None:
            minutes = DEFAULT_MINUTES
        settings = {"data": source, "image_size": size, "epochs": epochs, "minutes": minutes}
        for key, value in (("preset", preset), ("batch_size", batch_size), ("lr", lr), ("seed", seed),
                           ("device", device)):
            if value is not None:
                settings[key] = value
        config = TrainConfig(**settings)
        try:
            config.validate()
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        run_dir = rundir.new_run_dir(instance / "runs")
        if snapshot_id:
            rundir.write_json_atomic(run_dir / "config.json", {"snapshot_id": snapshot_id})
        resume = False
    write_run_config(run_dir, config)
    click.echo(f"Run {run_dir.name}: training in {run_dir}", err=True)
    try:
        status = train(config, run_dir, resume=resume, progress=True)
    except (TrainingError, CheckpointError, DataError, ValueError) as e:
        raise click.ClickException(f"training failed: {e} (details in {run_dir / 'train.log'})") from None
    grid_epoch = status.get("latest_grid_epoch")
    result = {"run_id": run_dir.name, "run_dir": str(run_dir), "state": status.get("state"),
              "epoch": status.get("epoch"), "step": status.get("step"), "best_epoch": status.get("best_epoch"),
              "images_per_sec": status.get("images_per_sec"),
              "grid": str(rundir.grid_path(run_dir, grid_epoch)) if grid_epoch else None}
    emit(result, as_json, f"Run {run_dir.name} {result['state']} after {result['epoch']} epochs "
                           f"({result['step']} steps); samples: {result['grid']}")


@click.command("sample")
@click.argument("run")
@click.option("--class", "classes", multiple=True, metavar="NAME", help="Class to sample (repeatable; default all).")
@click.option("--n", "n", type=click.IntRange(min=1), default=8, show_default=True, help="Images per class.")
@click.option("--steps", type=click.IntRange(min=1), default=25, show_default=True, help="Solver steps.")
@click.option("--sampler", type=click.Choice(SAMPLERS), default="dpm++2m", show_default=True)
@click.option("--guidance", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Classifier-free guidance scale (1 = none).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Writes OUT/<class>/<i>.png.")
@click.option("--gif", is_flag=True, help="Also write OUT/<class>/<i>.gif, the denoising animation.")
@click.option("--which", type=click.Choice(("best", "last")), default="best", show_default=True,
              help="Checkpoint to sample from.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@json_option("the result")
@with_appcontext
def sample_command(run, classes, n, steps, sampler, guidance, seed, out, gif, which, device, as_json):
    """Draw samples from a trained run (id under <instance>/runs, or a path)."""
    _prepare_torch()
    from tqdm import tqdm

    from diffusion.checkpoint import CheckpointError
    from diffusion.generate import generate_to_dir

    run_dir = resolve_run_dir(Path(current_app.instance_path), run)
    with tqdm(total=None, desc="sample", unit="img", disable=None) as bar:
        seen: dict[str, int] = {}

        def progress(name, done, total):
            bar.set_postfix_str(name)
            bar.update(done - seen.get(name, 0))
            seen[name] = done
        try:
            paths = generate_to_dir(run_dir, out, classes=list(classes) or None, n=n, steps=steps, sampler=sampler,
                                    guidance=guidance, seed=seed, gif=gif, which=which, device=device,
                                    progress=progress)
        except (CheckpointError, ValueError, RuntimeError) as e:
            raise click.ClickException(str(e)) from None
    by_class: dict[str, int] = {}
    for p in paths:
        by_class[p.parent.name] = by_class.get(p.parent.name, 0) + 1
    result = {"run_dir": str(run_dir), "out": str(out), "written": len(paths), "per_class": by_class,
              "gif": gif, "files": [str(p) for p in paths]}
    emit(result, as_json, f"Wrote {len(paths)} images to {out} ({', '.join(f'{k}: {v}' for k, v in by_class.items())})")


commands = [train_command, sample_command]
