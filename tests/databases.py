"""Which database a test runs on: the instance's SQLite file, or (MENAGERIE_TEST_POSTGRES) a fresh PostgreSQL
database per test."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def fresh_database(tmp_path: Path):
    server = os.environ.get("MENAGERIE_TEST_POSTGRES")
    if not server:
        yield None
        return
    raise NotImplementedError("PostgreSQL test databases: to be built (issue 14)")
