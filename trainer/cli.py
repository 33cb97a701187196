"""`manage.py train`, `sample`, `stickers` and `upscaler train`: the command-line face of the diffusion package.

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
from diffusion.config import DEFAULT_SAMPLER, DEVICES, FLIPS, PRESETS, SAMPLERS

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
              help=f"Budget of training steps in minutes (default {DEFAULT_MINUTES:g} when --epochs is not given); "
              "previews and evaluation come on top, at most 10 % of it.")
@click.option("--image-size", type=click.IntRange(8, 512), help="Training resolution in pixels (default 32).")
@click.option("--preset", type=click.Choice(PRESETS), help="Model size (default small).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per step (default 64).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Peak learning rate (default 2e-3).")
@click.option("--seed", type=int, help="Random seed (default 0).")
@click.option("--device", type=click.Choice(DEVICES), help="auto (default), cpu, cuda or mps.")
@click.option("--flip", type=click.Choice(FLIPS), help="Horizontal flips: auto (default: on only if mirrored "
              "pictures keep their class, tested on held-back images and logged), off or on.")
@click.option("--augment", type=click.FloatRange(0, 1), help="EDM's non-leaky augmentation: the probability of "
              "each transform (mirror, shift, quarter turn), told to the model and off at sampling (default 0: off).")
@click.option("--resume", "resume_run", metavar="RUN", help="Continue a run (id or path); only --epochs and "
              "--minutes may change.")
@json_option("the result")
@with_appcontext
def train_command(snapshot, data, epochs, minutes, image_size, preset, batch_size, lr, seed, device, flip, augment,
                  resume_run, as_json):
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
                  "--batch-size": batch_size, "--lr": lr, "--seed": seed, "--device": device, "--flip": flip,
                  "--augment": augment}
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
                           ("device", device), ("flip", flip), ("augment", augment)):
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
              "images_per_sec": status.get("images_per_sec"), "stop_message": status.get("stop_message"),
              "train_s": status.get("train_s"), "preview_s": status.get("preview_s"),
              "evaluator_fit_s": status.get("evaluator_fit_s"), "sweep_s": status.get("sweep_s"),
              "augmentation": (status.get("augmentation") or {}).get("why"),
              "guidance": status.get("guidance"),
              "grid": str(rundir.grid_path(run_dir, grid_epoch)) if grid_epoch is not None else None}
    chosen = (result["guidance"] or {}).get("chosen") or {}
    emit(result, as_json, f"Run {run_dir.name} {result['state']}: {result['stop_message']}. "
                           f"{result['augmentation'] or ''}. Guidance {chosen.get('guidance', '-')}"
                           f"{' in an interval' if chosen.get('interval') else ''}. Samples: {result['grid']}")


@click.command("sample")
@click.argument("run")
@click.option("--class", "classes", multiple=True, metavar="NAME", help="Class to sample (repeatable; default all).")
@click.option("--n", "n", type=click.IntRange(min=1), default=8, show_default=True, help="Images per class.")
@click.option("--steps", type=click.IntRange(min=1), default=25, show_default=True, help="Solver steps.")
@click.option("--sampler", type=click.Choice(SAMPLERS), default=DEFAULT_SAMPLER, show_default=True)
@click.option("--guidance", type=click.FloatRange(min=0), default=None,
              help="Classifier-free guidance scale (1 = none; default: the run's, chosen by its guidance sweep).")
@click.option("--interval", type=click.Choice(("run", "on", "off")), default="run", show_default=True,
              help="Guidance only in a limited interval of noise levels: the run's choice, on or off.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Writes OUT/<class>/<i>.png.")
@click.option("--gif", is_flag=True, help="Also write OUT/<class>/<i>.gif, the denoising animation.")
@click.option("--which", default="best", show_default=True, metavar="best|last|EPOCH",
              help="Checkpoint to sample from: best, last, or an epoch whose weights the run kept.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@json_option("the result")
@with_appcontext
def sample_command(run, classes, n, steps, sampler, guidance, interval, seed, out, gif, which, device, as_json):
    """Draw samples from a trained run (id under <instance>/runs, or a path)."""
    _prepare_torch()
    from tqdm import tqdm

    from diffusion.checkpoint import CheckpointError, parse_which
    from diffusion.generate import generate_to_dir, interval_choice

    try:
        which = parse_which(which)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--which") from None

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
                                    progress=progress, interval=interval_choice(interval))
        except (CheckpointError, ValueError, RuntimeError) as e:
            raise click.ClickException(str(e)) from None
    by_class: dict[str, int] = {}
    for p in paths:
        by_class[p.parent.name] = by_class.get(p.parent.name, 0) + 1
    result = {"run_dir": str(run_dir), "out": str(out), "written": len(paths), "per_class": by_class,
              "gif": gif, "files": [str(p) for p in paths]}
    emit(result, as_json, f"Wrote {len(paths)} images to {out} ({', '.join(f'{k}: {v}' for k, v in by_class.items())})")


# --- stickers -------------------------------------------------------------------------------------------------

def _run_dir_arg(instance: Path, run: str) -> Path:
    """resolve_run_dir, with a clear error for ids that cannot name a folder (NUL, control characters)."""
    if not run or not run.isprintable() or "\x00" in run:
        raise click.ClickException(f"{run!r} is not a run id (ids are printable, like 20261122-071500-ab12)")
    return resolve_run_dir(instance, run)


def _sticker_name(item: dict) -> str:
    from diffusion.generate import safe_dir_name
    where = f"e{item['epoch']}" if item.get("epoch") is not None else f"s{item.get('seed', 0)}"
    return f"{safe_dir_name(item['class'])}-{where}-{item['index']}".replace(" ", "_")


def _sample_sources(run_dir: Path, classes, n: int, seed: int, steps: int, scratch: Path) -> list[dict]:
    """Draw n samples per class (diffusion.generate, the same seeds as `manage.py sample`)."""
    from diffusion.checkpoint import CheckpointError
    from diffusion.generate import generate_to_dir, run_guidance, safe_dir_name
    try:
        paths = generate_to_dir(run_dir, scratch, classes=list(classes) or None, n=n, steps=steps, seed=seed)
    except (CheckpointError, ValueError, RuntimeError) as e:
        raise click.ClickException(str(e)) from None
    import json
    try:
        known = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("class_names") or []
    except (OSError, ValueError):
        known = []
    names = {safe_dir_name(c): c for c in known}
    guidance = run_guidance(run_dir)[0]  # what generate_to_dir drew them with: the run's own default
    return [{"path": p, "class": names.get(p.parent.name, p.parent.name), "index": int(p.stem), "seed": seed,
             "steps": steps, "sampler": DEFAULT_SAMPLER, "guidance": guidance, "source": "sampled"} for p in paths]


def rundir_checkpoint(run_dir: Path) -> Path:
    from diffusion import rundir
    best = rundir.checkpoint_path(run_dir, "best")
    return best if best.exists() else rundir.checkpoint_path(run_dir, "last")


def _favourite_sources(run_dir: Path) -> list[dict]:
    from trainer import favourites
    items = favourites.read(run_dir)
    if not items:
        raise click.ClickException(f"run {run_dir.name} has no favourites yet: mark some on its gallery or "
                                   "generation pages first")
    out = []
    for item in items:
        path = run_dir / item["png"]
        if not path.is_file():
            raise click.ClickException(f"favourite {item['png']} is missing from the run folder")
        out.append({**item, "path": path})
    return out


@click.command("stickers")
@click.argument("run")
@click.option("--class", "classes", multiple=True, metavar="NAME", help="Class to draw (repeatable; default all).")
@click.option("--n", "n", type=click.IntRange(1, 64), default=4, show_default=True, help="Stickers per class.")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True)
@click.option("--steps", type=click.IntRange(1, 200), default=25, show_default=True, help="Solver steps.")
@click.option("--favourites", "use_favourites", is_flag=True,
              help="Make stickers of the run's favourites instead of drawing new samples.")
@click.option("--scale", type=click.Choice(["4", "8"]), default="4", show_default=True, help="Enlargement.")
@click.option("--upscaler", "upscaler_name", type=click.Choice(["auto", "learned", "lanczos"]), default="auto",
              show_default=True, help="learned: the run's trained upscaler (`manage.py upscaler train RUN`); auto: "
              "learned when the run has one, else Lanczos.")
@click.option("--outline", type=click.IntRange(0, 64), default=0, show_default=True,
              help="Outline stroke width in output pixels (0 = none).")
@click.option("--outline-colour", "outline_colour", default="white", show_default=True,
              help="Outline colour: a name or #hex.")
@click.option("--colours", type=click.IntRange(2, 32), default=8, show_default=True,
              help="Flat colours in each SVG.")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The pack: a .zip with stickers/*.png and *.svg, contact-sheet.png and manifest.json.")
@json_option("the pack's summary")
@with_appcontext
def stickers_command(run, classes, n, seed, steps, use_favourites, scale, upscaler_name, outline, outline_colour,
                     colours, out, as_json):
    """Make a sticker pack (PNG + SVG per sticker, contact sheet, manifest) from new samples or the favourites."""
    import io
    import json
    import shlex
    import tempfile
    import time

    from PIL import Image

    from core.files import write_with
    from trainer import stickers

    _prepare_torch()
    scale = int(scale)
    try:
        stickers.parse_colour(outline_colour)
    except stickers.StickerError as e:
        raise click.BadParameter(str(e), param_hint="--outline-colour") from None
    if out.suffix.lower() != ".zip":
        raise click.BadParameter(f"{out} should end in .zip", param_hint="--out")
    run_dir = _run_dir_arg(Path(current_app.instance_path), run)
    upscaler = None
    if upscaler_name == "auto":
        upscaler_name = "learned" if (run_dir / "upscaler" / "model.pt").exists() else "lanczos"
    if upscaler_name == "learned":
        from diffusion.upscale import UpscaleError, load_model, upscale_image, upscaler_dir
        try:
            model, _ = load_model(upscaler_dir(run_dir))
        except UpscaleError as e:
            raise click.ClickException(str(e)) from None

        def upscaler(img, s):
            return upscale_image(model, img, s)
    config = {}
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    background = "keep" if config.get("background") == "alpha" else "auto"
    settings = {"scale": scale, "upscaler": upscaler_name, "outline": outline, "outline_colour": outline_colour,
                "colours": colours, "background": background}
    with tempfile.TemporaryDirectory() as scratch:
        sources = (_favourite_sources(run_dir) if use_favourites
                   else _sample_sources(run_dir, classes, n, seed, steps, Path(scratch)))
        entries, records = [], []
        for item in sources:
            with Image.open(item["path"]) as img:
                img.load()
                note = None
                try:
                    sticker = stickers.make_sticker(img, scale=scale, background=background, upscaler=upscaler,
                                                    outline_width=outline, outline_colour=outline_colour)
                except stickers.StickerError as e:  # e.g. a noisy background: keep it rather than lose the sticker
                    note = f"background kept: {e}"
                    sticker = stickers.make_sticker(img, scale=scale, background="none", upscaler=upscaler,
                                                    outline_width=outline, outline_colour=outline_colour)
            name = _sticker_name(item)
            svg = stickers.trace_svg(sticker, colours=colours)
            entries.append({"name": name, "png": stickers.png_bytes(sticker), "svg": svg,
                            "label": f"{item['class']} #{item['index']}"})
            record = {k: v for k, v in item.items() if k != "path"}
            record.update(name=name, png=f"stickers/{name}.png", svg=f"stickers/{name}.svg",
                          svg_bytes=len(svg.encode()), size=list(sticker.size), note=note)
            if item.get("source") in ("sampled", "generated") and "seed" in item:
                record["regenerate"] = (f"python manage.py stickers {run_dir.name} --class {shlex.quote(item['class'])} "
                                        f"--n {item['index'] + 1} --seed {item['seed']} --steps "
                                        f"{item.get('steps', 25)} --scale {scale} --upscaler {upscaler_name} "
                                        f"--outline {outline} --outline-colour {shlex.quote(outline_colour)} --colours "
                                        f"{colours} --out PACK.zip  (sticker {name})")
            records.append(record)
    manifest = {"run": run_dir.name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "settings": settings, "stickers": records,
                "checkpoint": str(rundir_checkpoint(run_dir).relative_to(run_dir))}
    buf = io.BytesIO()
    stickers.write_pack(buf, entries, manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_with(out, lambda f: f.write(buf.getvalue()))
    sizes = sorted(r["svg_bytes"] for r in records)
    result = {"run": run_dir.name, "out": str(out), "stickers": len(records), "settings": settings,
              "svg_kb_median": round(sizes[len(sizes) // 2] / 1024, 1) if sizes else None,
              "zip_bytes": out.stat().st_size}
    emit(result, as_json, f"Wrote {len(records)} stickers to {out} (median SVG {result['svg_kb_median']} KB)")


@click.group("upscaler")
def upscaler_group():
    """The run's learned upscaler (for sharper stickers)."""


@upscaler_group.command("train")
@click.argument("run")
@click.option("--minutes", type=click.FloatRange(0.05, 600), default=5.0, show_default=True,
              help="Wall-clock budget.")
@click.option("--steps", type=click.IntRange(1, 1_000_000), help="Train this many steps instead of for --minutes "
              "(the same model on a busy machine as on a quiet one, only later; bench/stickers.py trains 4000).")
@json_option("the result")
@with_appcontext
def upscaler_train_command(run, minutes, steps, as_json):
    """Train the run's ×4/×8 upscaler on its own images (held-back images scored against Lanczos/bicubic)."""
    _prepare_torch()
    from diffusion import rundir
    from diffusion.upscale import UpscaleError, run_settings, train_upscaler, upscaler_dir

    run_dir = _run_dir_arg(Path(current_app.instance_path), run)
    folder = upscaler_dir(run_dir)
    status = rundir.read_status(folder)
    if rundir.is_alive(status):
        raise click.ClickException(f"the upscaler of run {run_dir.name} is already training (pid {status.get('pid')})")
    try:
        settings = run_settings(run_dir)
        status = train_upscaler(folder, minutes=None if steps else minutes, max_steps=steps,
                                log=lambda m: click.echo(m, err=True), **settings)
    except UpscaleError as e:
        raise click.ClickException(f"upscaler training failed: {e}") from None
    scores = status.get("eval") or {}
    emit({"run": run_dir.name, "state": status.get("state"), "steps": status.get("step"),
          "seconds": status.get("elapsed"), "eval": scores, "model": str(folder / "model.pt")}, as_json,
         f"Upscaler of run {run_dir.name} {status.get('state')} after {status.get('step')} steps "
         f"({status.get('elapsed')} s); held-back PSNR learned vs Lanczos: " + ", ".join(
             f"{s} {v.get('psnr_learned')} vs {v.get('psnr_lanczos')} dB" for s, v in sorted(scores.items())))


commands = [train_command, sample_command, stickers_command, upscaler_group]
