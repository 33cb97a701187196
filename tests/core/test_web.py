"""core.web under a busy database: a write that cannot get the lock answers 503 with Retry-After and says the
answer was not saved (a page, or a notice for an htmx region), never a 500; once the lock is free, the same request
goes through."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.pool import NullPool

from core.db import db
from core.models import Comparison, Image, ImageClass
from core.web import is_busy
from tests.conftest import HX, answer_form
from tests.databases import on_postgres, sqlite_only


@pytest.fixture
def app_config():
    """Wait 300 ms for a lock, not 15 s: the test holds the lock for as long as it likes."""
    if on_postgres():
        return {"AUTH_REQUIRED": False, "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": "-c lock_timeout=300"}}}
    return {"AUTH_REQUIRED": False}


@pytest.fixture
def cats(app, dataset):
    dataset({"cat": 4, "dog": 2}, size=16, imported="service")
    if not on_postgres():
        with app.app_context():
            event.listen(db.engine, "checkout", lambda conn, _rec, _proxy: conn.execute("PRAGMA busy_timeout=300"))
    return app


def hold_write_lock(app, instance_path: Path):
    """Another connection that holds the write lock until closed: BEGIN IMMEDIATE on the SQLite file, or on
    PostgreSQL an exclusive lock on the tables a relabel and a ranking answer write."""
    if not on_postgres():
        holder = sqlite3.connect(instance_path / "menagerie.sqlite3", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        return holder.close
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool)
    conn = engine.connect()
    conn.execute(text("LOCK TABLE image, decision, comparison IN EXCLUSIVE MODE"))

    def release():
        conn.rollback()
        conn.close()
        engine.dispose()
    return release


def image_class_of(app, image_id: int) -> str:
    with app.app_context():
        return db.session.get(Image, image_id).class_name


def test_a_relabel_while_another_holds_the_write_lock_is_a_503_then_goes_through(cats, instance_path):
    """Tried: relabel an image (plain form, then htmx) while another connection holds the write lock; then again
    after it lets go."""
    client = cats.test_client()
    with cats.app_context():
        cat = db.session.scalars(select(Image.id).join(ImageClass).where(ImageClass.name == "cat")).first()
    release = hold_write_lock(cats, instance_path)
    try:
        page = client.post(f"/image/{cat}/relabel", data={"class_name": "dog"})
        body = page.get_data(as_text=True)
        assert page.status_code == 503 and page.headers["Retry-After"].isdigit()
        assert "not saved" in body and "NOT recorded" in body and "<nav" in body
        region = client.post(f"/image/{cat}/relabel", data={"class_name": "dog"}, headers=HX)
        notice = region.get_data(as_text=True)
        assert region.status_code == 503 and region.headers["HX-Retarget"] == "main"
        assert "not saved" in notice and "<nav" not in notice and 'role="alert"' in notice
    finally:
        release()
    assert image_class_of(cats, cat) == "cat"
    assert client.post(f"/image/{cat}/relabel", data={"class_name": "dog"}).status_code == 302
    assert image_class_of(cats, cat) == "dog"


def test_a_ranking_answer_while_locked_is_a_503_and_stored_once_after(cats, instance_path):
    """Tried: an htmx ranking answer while the write lock is held (503, nothing stored), then the same answer sent
    again once the lock is free (stored exactly once)."""
    client = cats.test_client()
    shown = answer_form(client.get("/rank/cat/").get_data(as_text=True), "left", "right", "next_left", "next_right")
    assert {"left", "right"} <= set(shown)
    release = hold_write_lock(cats, instance_path)
    try:
        busy = client.post("/rank/cat/answer", data={**shown, "outcome": "left"}, headers=HX)
        assert busy.status_code == 503 and "not saved" in busy.get_data(as_text=True)
    finally:
        release()
    with cats.app_context():
        assert db.session.scalars(select(Comparison)).all() == []
    assert client.post("/rank/cat/answer", data={**shown, "outcome": "left"}, headers=HX).status_code == 200
    with cats.app_context():
        assert len(db.session.scalars(select(Comparison)).all()) == 1


@sqlite_only
def test_only_lock_errors_count_as_busy(tmp_path):
    """Tried: SQLite's "database is locked" (busy) against "no such table" (a fault, which stays a 500)."""
    from sqlalchemy.exc import OperationalError
    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x)"))
    event.listen(engine, "checkout", lambda conn, _rec, _proxy: conn.execute("PRAGMA busy_timeout=50"))
    engine.dispose()
    holder = sqlite3.connect(tmp_path / "x.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError) as locked, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        holder.close()
    with pytest.raises(OperationalError) as missing, engine.begin() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    engine.dispose()
    assert is_busy(locked.value) and not is_busy(missing.value)
