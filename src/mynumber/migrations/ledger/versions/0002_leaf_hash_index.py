"""Ledger: index leaves by hash (a writer finds its record after a crash)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_leaves_leaf_hash", "leaves", ["leaf_hash"])


def downgrade() -> None:
    op.drop_index("ix_leaves_leaf_hash", table_name="leaves")
