"""answers on screens of several images ("pick the best of 4")

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00

A comparison row can now hold an answer on a screen of more than two images: the first two shown stay in left_id
and right_id, the others go to `others` (a JSON list of image ids, in screen order), and the picks, best first, to
`picks`; outcome is "best" (the best only) or "order" (every image ordered). Existing pair answers keep NULL in
both, so they read exactly as before.
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('comparison', schema=None) as batch_op:
        batch_op.add_column(sa.Column('others', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('picks', sa.JSON(), nullable=True))


def downgrade() -> None:
    # Answers on screens of several images mean nothing to 0003's pair-only rows: they go with the columns.
    op.execute("DELETE FROM comparison WHERE others IS NOT NULL OR picks IS NOT NULL")
    with op.batch_alter_table('comparison', schema=None) as batch_op:
        batch_op.drop_column('picks')
        batch_op.drop_column('others')
