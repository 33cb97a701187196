"""pixel hashes are xxh3-128 now: forget the sha256 ones

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 12:40:00

The pixel hash changed from sha256 to xxh3-128 (curator/hashing.py). An old and a new hash of the same pixels never
match, so the old ones are cleared; curator.dedup.same_pixels computes a missing pixel hash from the stored file when a
duplicate search needs it (it already did for JPEGs, which are fingerprinted at reduced size).
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE image SET pixel_hash = NULL WHERE pixel_hash IS NOT NULL")


def downgrade() -> None:
    op.execute("UPDATE image SET pixel_hash = NULL WHERE pixel_hash IS NOT NULL")  # xxh3 ones mean nothing to 0002
