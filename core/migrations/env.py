"""Alembic environment: runs against the connection core.migrate hands over (no alembic.ini needed)."""
from alembic import context

from core import models  # noqa: F401  (registers the tables on Base.metadata)
from core.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
