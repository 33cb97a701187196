"""core.migrate: a new instance gets the newest schema; an older one is upgraded at start and keeps its data."""
from __future__ import annotations

import sqlite3

from app import create_app


def test_instance_holds_database_and_schema_is_migrated(app, instance_path):
    db_file = instance_path / "menagerie.sqlite3"
    assert db_file.exists()
    with sqlite3.connect(db_file) as conn:
        version = conn.execute("select version_num from alembic_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert version == newest_revision() and {"image", "batch", "decision", "comparison", "snapshot"} <= tables


def newest_revision() -> str:
    from alembic.script import ScriptDirectory

    from core.migrate import alembic_config
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_an_older_schema_is_upgraded_at_start_and_keeps_its_data(instance_path):
    """Tried: an index left at the first migration, with a class in it, opened by the current app."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from core.migrate import alembic_config
    instance_path.mkdir(parents=True)
    engine = create_engine(f"sqlite:///{instance_path / 'menagerie.sqlite3'}")
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        connection.execute(text("insert into image_class (name, created) values ('owl', '2026-01-01')"))
    engine.dispose()
    create_app({"TESTING": True}, instance_path=instance_path)
    with sqlite3.connect(instance_path / "menagerie.sqlite3") as conn:
        assert conn.execute("select version_num from alembic_version").fetchone()[0] == newest_revision()
        assert conn.execute("select name from image_class").fetchall() == [("owl",)]
        indexes = {r[0] for r in conn.execute("select name from sqlite_master where type='index'")}
    assert "ix_comparison_class_live" in indexes
