#!/usr/bin/env python
"""Menagerie's command line. `python manage.py --help` lists the commands; each has --help and --json."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before anything imports torch (train, sample)

import click
from flask import current_app
from flask.cli import FlaskGroup, ScriptInfo

from app import create_app


def _make_app():
    """FlaskGroup calls this lazily; --instance (on the group or any command) decides where the data lives."""
    info = click.get_current_context().find_object(ScriptInfo)
    return create_app(instance_path=info.data.get("instance") if info else None)


def _remember_instance(ctx: click.Context, _param, value):
    if value:
        ctx.ensure_object(ScriptInfo).data["instance"] = value
    return value


def instance_option() -> click.Option:
    return click.Option(["--instance"], type=click.Path(file_okay=False), expose_value=False, is_eager=True,
                        callback=_remember_instance, envvar="MENAGERIE_INSTANCE",
                        help="Instance folder holding the index, images, snapshots and runs "
                             "(default: ./instance or $MENAGERIE_INSTANCE).")


cli = FlaskGroup(create_app=_make_app, add_default_commands=False, add_version_option=False,
                 load_dotenv=False, help=__doc__)
cli.params.append(instance_option())


def emit(result: dict, as_json: bool, human: str) -> None:
    """Machine-readable result on stdout with --json; otherwise a sentence for people."""
    click.echo(json.dumps(result, default=str) if as_json else human)


def tqdm_factory(desc: str, unit: str = "file"):
    def make(total: int):
        from tqdm import tqdm
        tqdm.monitor_interval = 0  # no monitor thread: the import forks its workers only from a single thread
        bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=None)
        return bar.update
    return make


def batch_result(batch) -> dict:
    return {"batch": batch.id, "kind": batch.kind, "state": batch.state, "added": batch.added,
            "duplicates": batch.duplicates, "rejected": batch.rejected,
            "items": [{"file": i.filename, "outcome": i.outcome, "reason": i.reason, "image": i.image_id,
                       "existing": i.existing_id} for i in batch.items]}


def batch_sentence(batch) -> str:
    lines = [f"Batch #{batch.id}: {batch.added} added, {batch.duplicates} exact duplicates skipped, "
             f"{batch.rejected} rejected."]
    lines += [f"  rejected {i.filename}: {i.reason}" for i in batch.items if i.outcome == "rejected"]
    return "\n".join(lines)


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--demo", is_flag=True, help="Import the bundled demo dataset first (once).")
def serve(host: str, port: int, demo: bool) -> None:
    """Run the web suite for one person (for several, use gunicorn: see README)."""
    if demo:
        _import_demo(as_json=False)
    from werkzeug.serving import run_simple  # app.run() refuses to start inside a Flask CLI command
    click.echo(f"Menagerie on http://{host}:{port}/  (instance: {current_app.instance_path})", err=True)
    run_simple(host, port, current_app._get_current_object(), threaded=True)


def _import_demo(as_json: bool) -> None:
    from curator.db import db
    from curator.imports import import_demo
    from curator.ingest import CLI_WORKERS
    from curator.storage import ImageStore
    batch = import_demo(db.session, ImageStore(current_app.instance_path), current_app.config["DEMO_DIR"],
                        workers=CLI_WORKERS, progress_factory=tqdm_factory("demo"))
    if batch is None:
        emit({"batch": None, "already_imported": True}, as_json, "The demo dataset is already imported.")
    else:
        emit(batch_result(batch), as_json, batch_sentence(batch))


@cli.command("demo")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def demo(as_json: bool) -> None:
    """Import the bundled animal-emoji demo dataset (8 classes; licences in demo/animal-emoji/LICENSES.md)."""
    _import_demo(as_json)


@cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--class", "class_name", help="Class for loose files (files in subfolders take the folder's name).")
@click.option("--json", "as_json", is_flag=True, help="Print the batch report as JSON.")
def import_command(paths: tuple[Path, ...], class_name: str | None, as_json: bool) -> None:
    """Import image files, folders (one subfolder per class) and zip archives as one batch."""
    from concurrent.futures.process import BrokenProcessPool

    from curator.db import db
    from curator.imports import import_paths
    from curator.ingest import CLI_WORKERS, WORKER_DIED
    from curator.sources import SourceError
    from curator.storage import ImageStore
    from curator.validation import Limits
    cfg = current_app.config
    try:
        batch = import_paths(db.session, ImageStore(current_app.instance_path), list(paths), class_name=class_name,
                             limits=Limits(max_file_bytes=cfg["MAX_FILE_BYTES"], max_pixels=cfg["MAX_PIXELS"]),
                             workers=CLI_WORKERS, progress_factory=tqdm_factory("import"))
    except (SourceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except BrokenProcessPool:
        raise click.ClickException(WORKER_DIED) from None
    emit(batch_result(batch), as_json, batch_sentence(batch))


from curator.rank_commands import rank  # noqa: E402
cli.add_command(rank)

from trainer.snapshot_commands import snapshot_command  # noqa: E402
cli.add_command(snapshot_command)
from trainer.commands import sample_command, train_command  # noqa: E402
cli.add_command(train_command)
cli.add_command(sample_command)
from curator.dedup_commands import dedup_command, merge_command  # noqa: E402
cli.add_command(dedup_command)
cli.add_command(merge_command)

def _add_instance_option(command: click.Command) -> None:
    command.params.append(instance_option())
    for sub in getattr(command, "commands", {}).values():
        _add_instance_option(sub)


for _command in cli.commands.values():
    _add_instance_option(_command)

if __name__ == "__main__":
    cli()
