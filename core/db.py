"""The one SQLAlchemy handle, the SQLite settings every connection gets, and how services own transactions."""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session

T = TypeVar("T")


class Base(DeclarativeBase):
    """Declarative base for the typed (Mapped[...]) models."""


db = SQLAlchemy(model_class=Base)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets readers and one writer work at once (several gunicorn workers, a CLI import while serving);
    busy_timeout makes a second writer wait instead of failing; foreign keys keep references honest.

    synchronous=NORMAL: in WAL mode a commit then waits for no fsync (30-40 ms each on the test machine's disk: a
    tenth of importing 600 stickers, and most of a ranking vote). The index can never be corrupted by it; only a
    power cut or OS crash can undo the last commits, which matches the image files, written without fsync too (an
    undone import leaves its files unreferenced, and importing them again reuses them)."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=15000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()



@event.listens_for(Engine, "connect")
def _postgres_settings(dbapi_connection, _record) -> None:
    """A writer waits at most 15 s for a lock (like SQLite's busy_timeout), then core.web answers 503; a transaction
    left idle by a crashed request ends after 60 s. A lock_timeout given in the URL's options is kept."""
    if type(dbapi_connection).__module__.startswith("psycopg"):
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        if dbapi_connection.execute("SHOW lock_timeout").fetchone()[0] == "0":
            dbapi_connection.execute("SET lock_timeout = '15s'")
        dbapi_connection.execute("SET idle_in_transaction_session_timeout = '60s'")
        dbapi_connection.autocommit = autocommit

def transactional(write: Callable[..., T]) -> Callable[..., T]:
    """How every service function that writes owns its transaction: `write(session, ...)` runs as one transaction,
    committed when it returns, rolled back (nothing changed) when it raises, and the error passed on. Inside a
    service, call the undecorated helpers, so one call is always exactly one commit."""
    @functools.wraps(write)
    def in_one_transaction(session: Session, *args, **kwargs) -> T:
        try:
            result = write(session, *args, **kwargs)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        return result
    return in_one_transaction


def standalone_session(url: str) -> Session:
    """A session on the index outside any Flask app: for a job's process (core.jobs), which has no app. Same
    connection settings as the app's (the SQLite pragmas above apply to every engine); the caller closes it, and
    `session.get_bind().dispose()` ends its connections."""
    from sqlalchemy import create_engine
    return Session(create_engine(url))
