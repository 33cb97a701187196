"""`manage.py dedup` and `manage.py merge`: the duplicate review and the merge flow from the command line."""
from __future__ import annotations

import json
import sys
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext


def _emit(result: dict, as_json: bool, human: str) -> None:
    click.echo(json.dumps(result, default=str) if as_json else human)


def _bar(desc: str, total: int):
    from tqdm import tqdm
    tqdm.monitor_interval = 0  # no monitor thread: staging forks its workers only from a single thread
    return tqdm(total=total, desc=desc, unit="file", file=sys.stderr, disable=None)


@click.command("dedup")
@click.option("--threshold", "threshold", default=None, metavar="BITS",
              help="Hash distance (pHash or dHash, 0–32 bits) at which pairs are proposed before the thumbnail "
                   "check confirms them (default 16).")
@click.option("--apply", "apply", is_flag=True, help="Resolve every group with its suggested keeper "
                                                      "(copies become 'duplicate'; each group undoable).")
@click.option("--json", "as_json", is_flag=True, help="Print the groups (and resolutions) as JSON.")
@with_appcontext
def dedup_command(threshold: str | None, apply: bool, as_json: bool) -> None:
    """List duplicate groups among the active images with the suggested keeper (highest resolution, then best
    rating, then oldest); --apply resolves them all."""
    from .db import db
    from .dedup_service import DedupError, find_groups, group_summary, parse_threshold, resolve_all_suggested
    from .storage import ImageStore
    try:
        bits = parse_threshold(threshold)
    except DedupError as exc:
        raise click.BadParameter(str(exc), param_hint="--threshold") from None
    groups = find_groups(db.session, ImageStore(current_app.instance_path), hash_threshold=bits)
    result = {"threshold": bits, "groups": [group_summary(g) for g in groups], "applied": False, "decisions": []}
    lines = [f"{len(groups)} duplicate group(s) at threshold {bits} bits."]
    for n, g in enumerate(groups, 1):
        lines.append(f"Group {n} ({g.kind}, distance ≤ {g.max_distance}):")
        for m in g.members:
            img = m.image
            mark = "keep" if m.id == g.keeper_id else "copy"
            rating = f" rating {m.rating:.2f} (#{m.rank})" if m.rating is not None else ""
            lines.append(f"  {mark} #{img.id} {img.width}x{img.height} {img.file_size} B "
                         f"{img.class_name or '(unlabelled)'}{rating} {img.original_filename}")
    if apply and groups:
        try:
            decisions = resolve_all_suggested(db.session, groups)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        result["applied"] = True
        result["decisions"] = [d.id for d in decisions]
        copies = sum(len(g.members) - 1 for g in groups)
        lines.append(f"Resolved {len(groups)} group(s): {copies} image(s) marked duplicate "
                     f"(decisions #{decisions[0].id}–#{decisions[-1].id}; undo each on the History page).")
    elif groups:
        lines.append("Run again with --apply to resolve them all with the suggested keepers.")
    _emit(result, as_json, "\n".join(lines))


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
@click.option("--json", "as_json", is_flag=True, help="Print the preview (and the commit) as JSON.")
@with_appcontext
def merge_command(paths: tuple[Path, ...], dry_run: bool, as_json: bool) -> None:
    """Merge folders (one subfolder per class), zips, files or another Menagerie instance into the dataset.

    Stages the batch, prints the preview (new, exact and near duplicates, invalid files) and, unless --dry-run,
    commits it taking in the new images only, each in the class named like its folder. Undo the whole merge on
    its batch page.
    """
    from .db import db
    from .ingest import CLI_WORKERS, WORKER_DIED
    from .merging import MergeError, bad_folder_names, commit, dry_run as plan_merge, merge_candidates, stage
    from .sources import SourceError
    from .storage import ImageStore
    from .validation import Limits
    cfg = current_app.config
    limits = Limits(max_file_bytes=cfg["MAX_FILE_BYTES"], max_pixels=cfg["MAX_PIXELS"])
    try:
        candidates = merge_candidates(list(paths), limits)
    except (SourceError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    bad = bad_folder_names(candidates)
    if bad and not dry_run:
        raise click.ClickException("folder names that cannot be class names (rename them, or merge from the web "
                                   "page to map them): " + "; ".join(bad.values()) + ". Nothing was stored.")
    source = ", ".join(str(p) for p in paths)
    bar = _bar("merge", len(candidates))
    try:
        if dry_run:
            items = plan_merge(db.session, ImageStore(current_app.instance_path), candidates, limits,
                               progress=bar.update)
            bar.close()
            result = {"batch": None, "dry_run": True, "committed": False, "counts": _counts(items),
                      "items": [_item_row(i) for i in items]}
            _emit(result, as_json, "\n".join(["Dry run: nothing was stored."] + _preview_lines(items)))
            return
        batch = stage(db.session, ImageStore(current_app.instance_path), candidates, source=source, limits=limits,
                      workers=CLI_WORKERS, progress=bar.update)
    except BrokenProcessPool:
        raise click.ClickException(WORKER_DIED) from None
    finally:
        bar.close()
    preview_lines = _preview_lines(batch.items)
    counts = _counts(batch.items)
    try:
        decision = commit(db.session, batch)
    except MergeError as exc:
        raise click.ClickException(f"{exc} (merge #{batch.id} stays staged: see /merge/{batch.id})") from None
    result = {"batch": batch.id, "dry_run": False, "committed": True, "decision": decision.id, "counts": counts,
              "added": batch.added, "items": [_item_row(i) for i in batch.items]}
    _emit(result, as_json, "\n".join([f"Merge #{batch.id}:"] + preview_lines +
                                     [f"Committed: {batch.added} image(s) added. Undo it as a whole on the batch "
                                      f"page (/batch/{batch.id})."]))
