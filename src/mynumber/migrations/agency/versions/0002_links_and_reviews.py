"""Agency: number links with provenance, and the review queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "links",
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("internal_id", sa.String(32), nullable=False),
        sa.Column("number_index", sa.LargeBinary(16), nullable=False),
        sa.Column("number_enc", sa.LargeBinary(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("operator", sa.String(200), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agency_id", "internal_id"),
    )
    op.create_index("ix_links_number", "links", ["agency_id", "number_index"])
    op.create_table(
        "reviews",
        sa.Column(
            "review_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("agency_id", sa.String(64), nullable=False),
        sa.Column("internal_id", sa.String(32), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("claimed_enc", sa.LargeBinary(), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("candidate_enc", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("review_id"),
    )
    op.create_index("ix_reviews_open", "reviews", ["agency_id", "state"])
    op.create_index(
        "uq_reviews_open_member",
        "reviews",
        ["agency_id", "internal_id"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )


def downgrade() -> None:
    op.drop_table("reviews")
    op.drop_table("links")
