"""The trainer: snapshots, training runs (launched as subprocesses, watched through their files), galleries,
generation and stickers. Never imports torch: the web process stays light and a crashed run cannot take it down.
"""
from pathlib import Path

from flask import Blueprint

bp = Blueprint("trainer", __name__, template_folder="templates", url_prefix="/train")

from . import views  # noqa: E402,F401  (routes register themselves on bp)


@bp.record_once
def _schedule_at_start(state) -> None:
    """Runs queued while the server was down start now; runs that died meanwhile are marked failed."""
    from curator.db import db
    from .runs import schedule
    with state.app.app_context():
        schedule(db.session, Path(state.app.instance_path))
        db.session.remove()
