"""accounts and login failures

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 00:30:00

`account`: people who log in (name, argon2 password hash, role, disabled); never deleted, since their names stay on
the answers and decisions they made. `login_failure`: recent refused logins by name and address, which the login
rate limit counts (in the database, so every gunicorn worker sees the same count). Plain column types only, so the
migration runs on SQLite and PostgreSQL alike; the table is not called "user", a reserved word in PostgreSQL.
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'account',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=32), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False),
        sa.Column('disabled', sa.Boolean(), nullable=False),
        sa.Column('created', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'login_failure',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('created', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failure_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failure_address'), ['address'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failure_created'), ['created'], unique=False)


def downgrade() -> None:
    # Going back forgets every account; the names they left on answers and decisions stay (plain text).
    with op.batch_alter_table('login_failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failure_created'))
        batch_op.drop_index(batch_op.f('ix_login_failure_address'))
        batch_op.drop_index(batch_op.f('ix_login_failure_name'))
    op.drop_table('login_failure')
    op.drop_table('account')
