"""core.migrate: a new instance gets the newest schema; an older one is upgraded at start and keeps its data; on
SQLite and on PostgreSQL alike (the database this run uses: tests/databases.py)."""
from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from app import create_app
from tests.databases import sqlite_only


def newest_revision() -> str:
    from alembic.script import ScriptDirectory

    from core.migrate import alembic_config
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def index_url(database_url, instance_path) -> str:
    return database_url or f"sqlite:///{instance_path / 'menagerie.sqlite3'}"


@sqlite_only
def test_instance_holds_its_sqlite_file(app, instance_path):
    assert (instance_path / "menagerie.sqlite3").exists()


def test_a_new_index_gets_the_newest_schema(app, instance_path, database_url):
    engine = create_engine(index_url(database_url, instance_path))
    try:
        with engine.connect() as conn:
            version = conn.execute(text("select version_num from alembic_version")).scalar_one()
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert version == newest_revision() and {"image", "batch", "decision", "comparison", "snapshot"} <= tables


def test_an_older_schema_is_upgraded_at_start_and_keeps_its_data(instance_path, database_url):
    """Tried: an index left at the first migration, with a class in it, opened by the current app."""
    from alembic import command

    from core.migrate import alembic_config
    instance_path.mkdir(parents=True)
    url = index_url(database_url, instance_path)
    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(text("insert into image_class (name, created) values ('owl', '2026-01-01')"))
    engine.dispose()
    app = create_app({"TESTING": True, "AUTH_REQUIRED": False, "SQLALCHEMY_DATABASE_URI": url},
                     instance_path=instance_path)
    from core.db import db
    with app.app_context():
        db.engine.dispose()
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalar_one() == newest_revision()
            assert conn.execute(text("select name from image_class")).all() == [("owl",)]
        indexes = {i["name"] for i in inspect(engine).get_indexes("comparison")}
    finally:
        engine.dispose()
    assert "ix_comparison_class_live" in indexes


def test_every_migration_goes_down_and_up_again(instance_path, database_url):
    """Tried: the newest schema taken down to nothing by Alembic's downgrades and up again (what a developer does
    when trying a migration), on this run's database."""
    from alembic import command

    from core.migrate import alembic_config
    instance_path.mkdir(parents=True)
    engine = create_engine(index_url(database_url, instance_path))
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), "head")
            command.downgrade(alembic_config(connection), "base")
            command.upgrade(alembic_config(connection), "head")
            assert connection.execute(text("select version_num from alembic_version")).scalar_one() == \
                newest_revision()
    finally:
        engine.dispose()


def test_several_processes_starting_at_once_upgrade_once(tmp_path, database_url):
    """Tried: four processes creating the app on one new index at the same moment (gunicorn workers starting), each
    with an instance folder of its own, so only the database itself can keep them apart on PostgreSQL."""
    import subprocess
    import sys

    from app import ROOT
    url = database_url or f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    script = ("import sys; from app import create_app; "
              "create_app({'AUTH_REQUIRED': False, 'SQLALCHEMY_DATABASE_URI': sys.argv[1]}, instance_path=sys.argv[2])")
    starts = [subprocess.Popen([sys.executable, "-c", script, url, str(tmp_path / f"instance-{i}")], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True) for i in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in starts]
    assert [p.returncode for p in starts] == [0] * 4, errors
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select version_num from alembic_version")).scalars().all() == \
                [newest_revision()]
    finally:
        engine.dispose()
