"""Municipality: the seal register (印鑑登録)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "seals",
        sa.Column("seal_id", _ID, autoincrement=True, nullable=False),
        sa.Column("municipality_code", sa.String(length=6), nullable=False),
        sa.Column("resident_code", sa.String(length=11), nullable=False),
        sa.Column("card_number", sa.String(length=16), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=False),
        sa.Column("media_type", sa.String(length=20), nullable=False),
        sa.Column("image_digest", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seal_id"),
    )
    op.create_index(
        "uq_seals_one_active",
        "seals",
        ["municipality_code", "resident_code"],
        unique=True,
        sqlite_where=sa.text("state = 'active'"),
        postgresql_where=sa.text("state = 'active'"),
    )
    op.create_index(
        "uq_seals_card_number", "seals", ["municipality_code", "card_number"], unique=True
    )
    op.create_table(
        "seal_events",
        sa.Column("seq", _ID, autoincrement=True, nullable=False),
        sa.Column("seal_id", sa.BigInteger(), nullable=False),
        sa.Column("municipality_code", sa.String(length=6), nullable=False),
        sa.Column("resident_code", sa.String(length=11), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index(
        "ix_seal_events_resident",
        "seal_events",
        ["municipality_code", "resident_code", "seq"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_seal_events_resident", table_name="seal_events")
    op.drop_table("seal_events")
    op.drop_index("uq_seals_card_number", table_name="seals")
    op.drop_index("uq_seals_one_active", table_name="seals")
    op.drop_table("seals")
