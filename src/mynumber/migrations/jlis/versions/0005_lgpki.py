"""J-LIS: LGPKI organisation certificates (the municipalities' document signers), kiosk
sessions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "organisation_certificates",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("municipality_code", sa.String(length=6), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("serial"),
    )
    with op.batch_alter_table("organisation_certificates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_organisation_certificates_municipality", ["municipality_code"], unique=False
        )

    op.create_table(
        "kiosk_sessions",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("kiosk_id", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("statement_digest", sa.String(length=64), nullable=True),
        sa.Column("serial", sa.String(length=40), nullable=True),
        sa.Column("document_id", sa.String(length=26), nullable=True),
        sa.Column("municipality_code", sa.String(length=6), nullable=True),
        sa.PrimaryKeyConstraint("session_id"),
    )
    with op.batch_alter_table("kiosk_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_kiosk_sessions_expires", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("kiosk_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_kiosk_sessions_expires")
    op.drop_table("kiosk_sessions")
    with op.batch_alter_table("organisation_certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_organisation_certificates_municipality")
    op.drop_table("organisation_certificates")
