"""Card management: cards and their events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HOLDING = "state IN ('active', 'suspended')"
_PENDING = "state IN ('applied', 'produced')"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "cards",
        sa.Column("card_id", sa.String(length=32), nullable=False),
        sa.Column("resident_code", sa.String(length=11), nullable=False),
        sa.Column("application_id", sa.String(length=23), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("period_of_stay_end", sa.Date(), nullable=True),
        sa.Column("issued_on", sa.Date(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("chip_id", sa.String(length=64), nullable=True),
        sa.Column("is_smartphone", sa.Boolean(), nullable=False),
        sa.Column("face", sa.JSON(), nullable=True),
        sa.Column("fee_yen", sa.Integer(), nullable=False),
        sa.Column("replaces", sa.String(length=32), nullable=True),
        sa.Column("superseded_by", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("card_id"),
        sa.UniqueConstraint("application_id"),
        sa.UniqueConstraint("chip_id"),
    )
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.create_index("ix_cards_resident", ["resident_code"], unique=False)
        batch_op.create_index(
            "uq_cards_holding_resident",
            ["resident_code"],
            unique=True,
            sqlite_where=sa.text(_HOLDING),
            postgresql_where=sa.text(_HOLDING),
        )
        batch_op.create_index(
            "uq_cards_pending_resident",
            ["resident_code"],
            unique=True,
            sqlite_where=sa.text(_PENDING),
            postgresql_where=sa.text(_PENDING),
        )

    op.create_table(
        "card_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("card_id", sa.String(length=32), nullable=False),
        sa.Column("resident_code", sa.String(length=11), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_state", sa.String(length=12), nullable=True),
        sa.Column("to_state", sa.String(length=12), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("card_events", schema=None) as batch_op:
        batch_op.create_index("ix_card_events_card", ["card_id", "seq"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("card_events", schema=None) as batch_op:
        batch_op.drop_index("ix_card_events_card")
    op.drop_table("card_events")
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_cards_pending_resident",
            sqlite_where=sa.text(_PENDING),
            postgresql_where=sa.text(_PENDING),
        )
        batch_op.drop_index(
            "uq_cards_holding_resident",
            sqlite_where=sa.text(_HOLDING),
            postgresql_where=sa.text(_HOLDING),
        )
        batch_op.drop_index("ix_cards_resident")
    op.drop_table("cards")
