"""Agency: own records, agency codes, the intermediate server's copy

Revision ID: 0001
Revises:
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("internal_id", sa.String(32), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agency_id", "internal_id"),
    )
    op.create_table(
        "codes",
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("internal_id", sa.String(32), nullable=False),
        sa.Column("code", sa.String(26), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agency_id", "internal_id"),
        sa.UniqueConstraint("agency_id", "code", name="uq_agency_codes_code"),
    )
    op.create_table(
        "copies",
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("code", sa.String(26), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("internal_id", sa.String(32), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agency_id", "code", "item"),
    )


def downgrade() -> None:
    op.drop_table("copies")
    op.drop_table("codes")
    op.drop_table("records")
