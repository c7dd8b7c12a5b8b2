"""JPKI certificates and CRL state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "certificates",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=14), nullable=False),
        sa.Column("resident_code", sa.String(length=11), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("serial"),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index("ix_certificates_resident", ["resident_code"], unique=False)

    op.create_table(
        "crl_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.Column("built_revision", sa.BigInteger(), nullable=True),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=True),
        sa.Column("der", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # The single state row, so that concurrent first writers update rather than insert it.
    op.execute("INSERT INTO crl_state (id, crl_number, revision) VALUES (1, 0, 0)")


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("crl_state")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_certificates_resident")

    op.drop_table("certificates")
