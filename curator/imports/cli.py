"""`manage.py import`, `manage.py demo` and `manage.py sweep`: files, folders and zips into the dataset as one batch,
with a report; and the clean-up of what killed imports and uploads left."""
from __future__ import annotations

import contextlib
import signal
import threading
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from core.cli import emit, json_option, progress_factory


@contextlib.contextmanager
def stop_on_sigterm():
    """While the command runs, SIGTERM ends it like Ctrl-C: it unwinds, the worker processes are stopped and the
    batch is marked interrupted now (SIGKILL cannot be caught: the workers die with it by PR_SET_PDEATHSIG, and the
    next run marks the batch). The previous handler comes back afterwards (tests run commands in-process); only the
    main thread can set one."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(_signum, _frame):
        raise SystemExit(143)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_interrupted(session) -> list:
    """Say on stderr which earlier imports or merges were interrupted (killed) before they finished."""
    from curator.imports.service import find_interrupted, interrupted_sentence
    batches = find_interrupted(session)
    for batch in batches:
        click.echo(interrupted_sentence(batch), err=True)
    return batches


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
    from curator.imports.service import ImportBusy, import_paths
    from curator.imports.sources import SourceError
    from curator.imports.storage import ImageStore
    from curator.imports.storing import CLI_WORKERS, WORKER_DIED
    from curator.imports.validation import Limits
    try:
        with stop_on_sigterm():
            report_interrupted(db.session)
            batch = import_paths(db.session, ImageStore(current_app.instance_path), list(paths),
                                 class_name=class_name, limits=Limits.from_config(current_app.config),
                                 workers=CLI_WORKERS, progress_factory=progress_factory("import"))
    except (SourceError, ValueError, ImportBusy) as exc:
        raise click.ClickException(str(exc)) from None
    except BrokenProcessPool:
        raise click.ClickException(WORKER_DIED) from None
    emit(batch_result(batch), as_json, batch_sentence(batch))


@click.command("sweep")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@click.option("--min-age", "min_age", default=60.0, show_default=True, type=click.FloatRange(min=0),
              help="Minutes: files and spool folders younger than this are kept (an import may be writing them).")
@json_option("what was removed and kept")
@with_appcontext
def sweep_command(dry_run: bool, min_age: float, as_json: bool) -> None:
    """Remove what killed imports and uploads left: spool folders no job uses and stored files (and thumbnails) no
    row of the index names. Kept: every file the index references (whatever its image's status), anything younger
    than --min-age, and all stored files while an import or job is running. Also marks imports whose process died
    as interrupted."""
    from core.db import db
    from curator.imports.service import sweep
    result = sweep(db.session, current_app.instance_path, min_age_s=min_age * 60, dry_run=dry_run)
    verb = "Would remove" if dry_run else "Removed"
    lines = [i["sentence"] for i in result["interrupted"]]
    lines.append(f"{verb} {len(result['files'])} unreferenced stored file(s) and {len(result['spools'])} abandoned "
                 f"spool folder(s): {result['bytes'] / 2**20:.1f} MiB. Kept: the {result['referenced_files']} "
                 f"file(s) the index references, and anything younger than {min_age:g} minute(s).")
    if result["kept_because_running"]:
        lines.append("Unreferenced stored files were kept: an import is running (batches "
                     f"{result['running_batches']}, jobs {result['unfinished_jobs']}); sweep again when it is done.")
    emit(result, as_json, "\n".join(lines))


commands = [import_command, demo_command, sweep_command]
