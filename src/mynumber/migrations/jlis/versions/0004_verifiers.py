"""Registered verifiers, consents to 基本4情報提供, login challenges

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "verifiers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kinds", sa.String(length=20), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "four_item_consents",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("verifier_id", sa.String(length=32), nullable=False),
        sa.Column("signature_serial", sa.String(length=40), nullable=False),
        sa.Column("auth_serial", sa.String(length=40), nullable=False),
        sa.Column("resident_code", sa.String(length=11), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.Column("provided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("four_item_consents", schema=None) as batch_op:
        batch_op.create_index(
            "ix_four_item_consents_verifier", ["verifier_id", "granted_at"], unique=False
        )
    op.create_table(
        "login_challenges",
        sa.Column("nonce_digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("nonce_digest"),
    )
    with op.batch_alter_table("login_challenges", schema=None) as batch_op:
        batch_op.create_index("ix_login_challenges_expires", ["expires_at"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("login_challenges", schema=None) as batch_op:
        batch_op.drop_index("ix_login_challenges_expires")
    op.drop_table("login_challenges")
    with op.batch_alter_table("four_item_consents", schema=None) as batch_op:
        batch_op.drop_index("ix_four_item_consents_verifier")
    op.drop_table("four_item_consents")
    op.drop_table("verifiers")
