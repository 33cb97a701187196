"""Schema migrations, applied automatically when the app starts.

A file lock serialises concurrent starts (several gunicorn workers, a CLI command while the server runs), so two
processes never race to upgrade the same SQLite file. On PostgreSQL the servers may not share a folder, so the
upgrade also holds a transaction-level advisory lock on the database itself (PostgreSQL's DDL is transactional:
the second process waits, then finds the schema at head and does nothing).
"""
from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
ADVISORY_LOCK = 0x6D656E61  # "mena": the key every Menagerie process upgrading a PostgreSQL database locks


def alembic_config(connection=None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, lock_path: Path) -> None:
    """Bring the database to the newest schema. `lock_path` is the instance's lock file; a SQLite file elsewhere
    (MENAGERIE_DATABASE_URL) is locked beside itself, since instances sharing it do not share a folder."""
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if database and database != ":memory:":
        lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
            command.upgrade(alembic_config(connection), "head")


def new_revision(engine: Engine, message: str) -> None:
    """Write a new migration from the difference between the models and the database (for developers)."""
    with engine.begin() as connection:
        command.revision(alembic_config(connection), message=message, autogenerate=True)
