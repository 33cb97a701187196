"""The account tables come from migration 0005 exactly as core/models.py declares them."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.db import Base, db


def test_migrations_build_the_tables_the_models_declare(app):
    """Tried: the migrated test index compared with the models by Alembic's autogenerate: no table, column or
    index of the accounts differs."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    mine = [d for d in diff if "account" in repr(d) or "login_failure" in repr(d)]
    assert mine == []
