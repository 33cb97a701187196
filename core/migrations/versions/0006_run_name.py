"""run names

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 03:30:00

`run.name`: a human name for a training run, shown wherever the id was (the id stays in URLs and folders). Runs
created before this have none: the pages show a name derived from the id until someone sets one.
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_column('name')
