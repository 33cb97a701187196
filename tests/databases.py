"""Which database a test runs on: the instance's SQLite file, or (MENAGERIE_TEST_POSTGRES) a fresh PostgreSQL
database per test.

MENAGERIE_TEST_POSTGRES is a server URL such as `postgresql+psycopg://postgres@127.0.0.1:54329/postgres` (the
database named in it is only used to create and drop the per-test ones; .ci/run starts such a server). Each test
gets a database of its own, so tests never see each other's rows, and it is dropped afterwards even when the test
left connections open (a gunicorn it started, a leaked session): those are terminated first.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest


def postgres_server() -> str | None:
    """The PostgreSQL server URL the suite runs on, or None on SQLite."""
    return os.environ.get("MENAGERIE_TEST_POSTGRES") or None


def on_postgres() -> bool:
    return postgres_server() is not None


# Tests that only make sense on the SQLite file (its pragmas, the .sqlite3 file itself, SQLite's write lock):
# `@sqlite_only` on a test skips it, with this reason, when the suite runs on PostgreSQL.
sqlite_only = pytest.mark.skipif(on_postgres(), reason="about the SQLite file itself; this run is on PostgreSQL")


def _admin_engine(server: str):
    """AUTOCOMMIT: CREATE/DROP DATABASE may not run inside a transaction; NullPool: no idle connection stays."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool
    return create_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)


@contextmanager
def fresh_database(tmp_path: Path):
    """Yield None (use the instance's SQLite file), or the URL of a new, empty PostgreSQL database dropped after."""
    server = postgres_server()
    if not server:
        yield None
        return
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"menagerie_test_{uuid.uuid4().hex[:16]}"
    admin = _admin_engine(server)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
