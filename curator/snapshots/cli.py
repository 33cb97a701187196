"""`python manage.py snapshot`: freeze the current selection as a snapshot (the same code as the Snapshots page)."""
from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from core.cli import emit, json_option
from diffusion.config import FITS


@click.command("snapshot")
@click.option("--image-size", default=32, show_default=True, type=int, help="Training size in pixels (square).")
@click.option("--top-k", type=int, help="Take each class's N best images by ranking (hand-selected first) "
                                        "instead of every active image.")
@click.option("--fit", type=click.Choice(FITS), default="crop", show_default=True,
              help="Fill the square and centre-crop, or fit inside and pad.")
@click.option("--background", default="white", show_default=True,
              help="Colour to composite transparency over, or 'alpha' to keep it.")
@click.option("--name", help="A name to recognise the snapshot by (default: its id).")
@click.option("--include-generated", is_flag=True,
              help="Also take images a run generated and a curator accepted (left out by default).")
@json_option("the snapshot (id, counts, changes)")
@with_appcontext
def snapshot_command(image_size: int, top_k: int | None, fit: str, background: str, name: str | None,
                     include_generated: bool, as_json: bool) -> None:
    """Freeze the active images (or each class's top-k) with their preprocessing as an immutable snapshot."""
    from core.db import db
    from curator.snapshots.service import SnapshotError, create_snapshot, diff_with_previous, generated_note
    instance = Path(current_app.instance_path)
    try:
        snap = create_snapshot(db.session, instance, image_size=image_size, fit=fit, background=background,
                               selection="top-k" if top_k else "active", top_k=top_k, name=name,
                               include_generated=include_generated)
    except SnapshotError as exc:
        raise click.ClickException(str(exc)) from None
    diff = diff_with_previous(db.session, instance, snap)
    result = {"id": snap.id, "name": snap.name, "manifest": str(snap.manifest_path), "image_size": snap.image_size,
              "fit": snap.fit, "background": snap.background, "selection": snap.selection, "counts": snap.counts,
              "images": sum(snap.counts.values()), "changes": diff.to_dict(),
              "generated": generated_note(instance, snap)}
    counts = ", ".join(f"{c} {n}" for c, n in snap.counts.items())
    change = ("first snapshot" if diff.previous_id is None
              else "no change from " + diff.previous_id if diff.unchanged
              else f"+{diff.added} / -{diff.removed} images since {diff.previous_id}")
    left_out = result["generated"].get("left_out", 0)
    generated = ("generated images included" if include_generated
                 else f"{left_out} generated image(s) left out (--include-generated takes them)" if left_out else "")
    emit(result, as_json, f"Snapshot {snap.id}: {result['images']} images ({counts}) at {snap.image_size} px, {snap.fit}, "
               f"background {snap.background}; {change}" + (f"; {generated}" if generated else "")
               + f".\nManifest: {snap.manifest_path}")


commands = [snapshot_command]
