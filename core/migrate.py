"""Schema migrations, applied automatically when the app starts.

A file lock serialises concurrent starts (several gunicorn workers, a CLI command while the server runs), so two
processes never race to upgrade the same SQLite file.
"""
from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, lock_path: Path) -> None:
    """Bring the database to the newest schema."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")


def new_revision(engine: Engine, message: str) -> None:
    """Write a new migration from the difference between the models and the database (for developers)."""
    with engine.begin() as connection:
        command.revision(alembic_config(connection), message=message, autogenerate=True)
