"""`manage.py dedup`: the duplicate review from the command line."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from core.cli import emit, json_option, progress_bar


def update_old_fingerprints(session, store) -> None:
    """Fingerprints of an older version recomputed with a progress bar on stderr (once after an upgrade: every
    image's, minutes at 100,000), before a command that compares the dataset's images."""
    from curator.dedup.service import old_fingerprints, refresh_fingerprints
    old = old_fingerprints(session)
    if old:
        with progress_bar(old, "fingerprints of an older version") as bar:
            done = refresh_fingerprints(session, store, progress=lambda files, _total: bar.update(files - bar.n))
        if done.unreadable:
            click.echo(f"{done.unreadable} stored file(s) could not be read: their old fingerprints are kept.",
                       err=True)


@click.command("dedup")
@click.option("--threshold", "threshold", default=None, metavar="BITS",
              help="pHash distance (0–32 bits; dHash gets 4 fewer) within which pairs are proposed before the "
                   "thumbnail comparison confirms them (default 16); calibrate it on the Calibrate page.")
@click.option("--apply", "apply", is_flag=True, help="Resolve every group with its suggested keeper "
                                                      "(copies become 'duplicate'; each group undoable).")
@json_option("the groups (and resolutions)")
@with_appcontext
def dedup_command(threshold: str | None, apply: bool, as_json: bool) -> None:
    """List duplicate groups among the active images with the suggested keeper (highest resolution, then not JPEG,
    WebP or GIF, then best rating, then oldest); --apply resolves them all."""
    from core.db import db
    from curator.dedup.service import DedupError, find_groups, group_summary, parse_threshold, resolve_all_suggested
    from curator.imports.storage import ImageStore
    try:
        bits = parse_threshold(threshold)
    except DedupError as exc:
        raise click.BadParameter(str(exc), param_hint="--threshold") from None
    store = ImageStore(current_app.instance_path)
    update_old_fingerprints(db.session, store)
    groups = find_groups(db.session, store, hash_threshold=bits)
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
            if m.why is not None:
                lines.append(f"       why: {m.why_text}")
    if apply and groups:
        decisions = resolve_all_suggested(db.session, groups)
        result["applied"] = True
        result["decisions"] = [d.id for d in decisions]
        copies = sum(len(g.members) - 1 for g in groups)
        lines.append(f"Resolved {len(groups)} group(s): {copies} image(s) marked duplicate "
                     f"(decisions #{decisions[0].id}–#{decisions[-1].id}; undo each on the History page).")
    elif groups:
        lines.append("Run again with --apply to resolve them all with the suggested keepers.")
    emit(result, as_json, "\n".join(lines))


commands = [dedup_command]
