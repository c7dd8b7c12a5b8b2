"""Portal: public-funds accounts, their review queue and events, per-transaction challenges

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
        "accounts",
        sa.Column("resident_code", sa.String(11), nullable=False),
        sa.Column("bank", sa.String(4), nullable=False),
        sa.Column("branch", sa.String(3), nullable=False),
        sa.Column("number", sa.String(7), nullable=False),
        sa.Column("holder_kana", sa.Text(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("certificate_serial", sa.String(40), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("resident_code"),
    )
    op.create_index("ix_accounts_account", "accounts", ["bank", "branch", "number"])
    op.create_table(
        "account_reviews",
        sa.Column(
            "review_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("resident_code", sa.String(11), nullable=False),
        sa.Column("bank", sa.String(4), nullable=False),
        sa.Column("branch", sa.String(3), nullable=False),
        sa.Column("number", sa.String(7), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("shared_with", sa.Text(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("justification", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("review_id"),
    )
    op.create_index("ix_account_reviews_state", "account_reviews", ["state"])
    op.create_index(
        "uq_account_reviews_open_person",
        "account_reviews",
        ["resident_code"],
        unique=True,
        sqlite_where=sa.text("state = 'open'"),
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_table(
        "account_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("resident_code", sa.String(11), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_account_events_person", "account_events", ["resident_code", "seq"])
    op.create_table(
        "account_challenges",
        sa.Column("nonce_digest", sa.String(64), nullable=False),
        sa.Column("resident_code", sa.String(11), nullable=False),
        sa.Column("statement_digest", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("nonce_digest"),
    )
    op.create_index("ix_account_challenges_expires", "account_challenges", ["expires_at"])
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(length=120), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("account_challenges")
    op.drop_table("account_events")
    op.drop_table("account_reviews")
    op.drop_table("accounts")
