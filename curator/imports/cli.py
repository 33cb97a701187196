"""`manage.py import` and `manage.py demo`: files, folders and zips into the dataset as one batch, with a report."""
from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from core.cli import emit, json_option, progress_factory


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


def import_demo(as_json: bool) -> None:
    """Import the bundled demo dataset once (also run by `serve --demo`)."""
    from core.db import db
    from curator.imports.service import import_demo as import_demo_batch
    from curator.imports.storage import ImageStore
    from curator.imports.storing import CLI_WORKERS
    batch = import_demo_batch(db.session, ImageStore(current_app.instance_path), current_app.config["DEMO_DIR"],
                              workers=CLI_WORKERS, progress_factory=progress_factory("demo"))
    if batch is None:
        emit({"batch": None, "already_imported": True}, as_json, "The demo dataset is already imported.")
    else:
        emit(batch_result(batch), as_json, batch_sentence(batch))


@click.command("demo")
@json_option("the result")
@with_appcontext
def demo_command(as_json: bool) -> None:
    """Import the bundled animal-emoji demo dataset (8 classes; licences in demo/animal-emoji/LICENSES.md)."""
    import_demo(as_json)


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--class", "class_name", help="Class for loose files (files in subfolders take the folder's name).")
@json_option("the batch report")
@with_appcontext
def import_command(paths: tuple[Path, ...], class_name: str | None, as_json: bool) -> None:
    """Import image files, folders (one subfolder per class) and zip archives as one batch."""
    from core.db import db
    from curator.imports.service import import_paths
    from curator.imports.sources import SourceError
    from curator.imports.storage import ImageStore
    from curator.imports.storing import CLI_WORKERS, WORKER_DIED
    from curator.imports.validation import Limits
    try:
        batch = import_paths(db.session, ImageStore(current_app.instance_path), list(paths), class_name=class_name,
                             limits=Limits.from_config(current_app.config), workers=CLI_WORKERS,
                             progress_factory=progress_factory("import"))
    except (SourceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except BrokenProcessPool:
        raise click.ClickException(WORKER_DIED) from None
    emit(batch_result(batch), as_json, batch_sentence(batch))


commands = [import_command, demo_command]
