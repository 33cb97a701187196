"""`manage.py merge`: the merge flow from the command line (stage, preview, commit)."""
from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from core.cli import emit, json_option, progress_bar
from curator.dedup.cli import update_old_fingerprints


def _item_row(item) -> dict:
    return {"file": item.filename, "outcome": item.outcome, "reason": item.reason,
            "image": getattr(item, "image_id", None), "existing": item.existing_id, "distance": item.distance,
            "source_class": item.source_class, "accepted": getattr(item, "accepted", None)}


def _counts(items) -> dict:
    counts = {"new": 0, "duplicate": 0, "near-duplicate": 0, "rejected": 0}
    for i in items:
        counts[i.outcome] = counts.get(i.outcome, 0) + 1
    return counts


def _preview_lines(items) -> list[str]:
    c = _counts(items)
    lines = [f"{c['new']} new, {c['duplicate']} exact duplicate(s), {c['near-duplicate']} near duplicate(s), "
             f"{c['rejected']} invalid."]
    for i in items:
        if i.outcome != "new":
            lines.append(f"  {i.outcome:<14} {i.filename}: {i.reason}")
    return lines


@click.command("merge")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only show the preview: nothing is stored.")
@json_option("the preview (and the commit)")
@with_appcontext
def merge_command(paths: tuple[Path, ...], dry_run: bool, as_json: bool) -> None:
    """Merge folders (one subfolder per class), zips, files or another Menagerie instance into the dataset.

    Stages the batch, prints the preview (new, exact and near duplicates, invalid files) and, unless --dry-run,
    commits it taking in the new images only, each in the class named like its folder. Undo the whole merge on
    its batch page.
    """
    from curator.imports.cli import stop_on_sigterm
    with stop_on_sigterm():
        _merge(paths, dry_run, as_json)


def _merge(paths: tuple[Path, ...], dry_run: bool, as_json: bool) -> None:
    from core.db import db
    from curator.imports.cli import report_interrupted
    from curator.imports.service import ImportBusy
    from curator.imports.sources import SourceError
    from curator.imports.storage import ImageStore
    from curator.imports.storing import CLI_WORKERS, WORKER_DIED
    from curator.imports.validation import Limits
    from curator.merge.service import bad_folder_names, ensure_analysed, merge_candidates, stage, unfinished_merges
    from curator.merge.service import dry_run as plan_merge
    cfg = current_app.config
    limits = Limits.from_config(cfg)
    source = ", ".join(str(p) for p in paths)
    store = ImageStore(current_app.instance_path)
    if not dry_run:
        report_interrupted(db.session)
        found = unfinished_merges(db.session, source)
        refused = [u.reason for u in found if not u.resume]
        if refused:
            raise click.ClickException("; ".join(refused) + ". Nothing was done.")
        if found:  # killed between staging and commit: finish that merge instead of staging the files again
            batch = found[0].batch
            click.echo(f"Resuming: {found[0].reason}.", err=True)
            update_old_fingerprints(db.session, store)
            ensure_analysed(db.session, store, batch)
            return _commit_and_report(batch, as_json, resumed=True)
    try:
        candidates = merge_candidates(list(paths), limits)
    except (SourceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    bad = bad_folder_names(candidates)
    if bad and not dry_run:
        raise click.ClickException("folder names that cannot be class names (rename them, or merge from the web "
                                   "page to map them): " + "; ".join(bad.values()) + ". Nothing was stored.")
    if not dry_run:  # what the analysis after staging would otherwise do silently (once after an upgrade)
        update_old_fingerprints(db.session, store)
    bar = progress_bar(len(candidates), "merge")
    try:
        if dry_run:
            items = plan_merge(db.session, store, candidates, limits, progress=bar.update)
            bar.close()
            result = {"batch": None, "dry_run": True, "committed": False, "counts": _counts(items),
                      "items": [_item_row(i) for i in items]}
            emit(result, as_json, "\n".join(["Dry run: nothing was stored."] + _preview_lines(items)))
            return
        batch = stage(db.session, store, candidates, source=source, limits=limits, workers=CLI_WORKERS,
                      progress=bar.update, origin="cli")
    except BrokenProcessPool:
        raise click.ClickException(WORKER_DIED) from None
    except ImportBusy as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
    _commit_and_report(batch, as_json)


def _commit_and_report(batch, as_json: bool, resumed: bool = False) -> None:
    from core.db import db
    from curator.merge.service import MergeError, commit
    preview_lines = _preview_lines(batch.items)
    counts = _counts(batch.items)
    from sqlalchemy.exc import OperationalError
    try:
        decision = commit(db.session, batch)
    except MergeError as exc:
        raise click.ClickException(f"{exc} (merge #{batch.id} stays staged: see /merge/{batch.id})") from None
    except OperationalError as exc:  # the index stayed locked past busy_timeout, or went away
        raise click.ClickException(f"the index could not be written ({exc.orig}): merge #{batch.id} stays staged "
                                   "and nothing was committed; run the same command again to commit it") from None
    result = {"batch": batch.id, "dry_run": False, "committed": True, "resumed": resumed, "decision": decision.id,
              "counts": counts, "added": batch.added, "items": [_item_row(i) for i in batch.items]}
    emit(result, as_json, "\n".join([f"Merge #{batch.id}{' (resumed)' if resumed else ''}:"] + preview_lines +
                                     [f"Committed: {batch.added} image(s) added. Undo it as a whole on the batch "
                                      f"page (/batch/{batch.id})."]))


commands = [merge_command]
