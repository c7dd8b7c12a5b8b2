"""Municipality: issued documents, their fees, and support measures (支援措置)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_resident", ["municipality_code", "resident_code", "seq"], unique=False
        )
    op.create_table(
        "issuances",
        sa.Column("document_id", sa.String(length=26), nullable=False),
        sa.Column("municipality_code", sa.String(length=6), nullable=False),
        sa.Column("resident_code", sa.String(length=11), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("content_digest", sa.String(length=64), nullable=False),
        sa.Column("pdf_digest", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("requester", sa.Text(), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=True),
        sa.Column("card", sa.String(length=64), nullable=True),
        sa.Column("request_key", sa.String(length=200), nullable=True),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("fee", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("document_id"),
    )
    with op.batch_alter_table("issuances", schema=None) as batch_op:
        batch_op.create_index(
            "uq_issuances_request_key", ["municipality_code", "request_key"], unique=True
        )
        batch_op.create_index(
            "ix_issuances_resident",
            ["municipality_code", "resident_code", "issued_at"],
            unique=False,
        )
    op.create_table(
        "fees",
        sa.Column("document_id", sa.String(length=26), nullable=False),
        sa.Column("municipality_code", sa.String(length=6), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("requester", sa.Text(), nullable=False),
        sa.Column("charged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("document_id"),
    )
    op.create_table(
        "support_measures",
        sa.Column("municipality_code", sa.String(length=6), nullable=False),
        sa.Column("resident_code", sa.String(length=11), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("municipality_code", "resident_code"),
    )


def downgrade() -> None:
    op.drop_table("support_measures")
    op.drop_table("fees")
    with op.batch_alter_table("issuances", schema=None) as batch_op:
        batch_op.drop_index("ix_issuances_resident")
        batch_op.drop_index("uq_issuances_request_key")
    op.drop_table("issuances")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_resident")
