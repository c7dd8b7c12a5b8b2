"""Municipality: when each issuance's access record reached the transparency log (DESIGN I6)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL for the issuances made before: the next reconcile records them too.
    with op.batch_alter_table("issuances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("logged_at", sa.DateTime(timezone=True), nullable=True))
        # who else the document shows (each gets an access record); unknown before: ""
        batch_op.add_column(sa.Column("others", sa.Text(), nullable=False, server_default=""))
        batch_op.create_index("ix_issuances_logged_at", ["logged_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("issuances", schema=None) as batch_op:
        batch_op.drop_column("others")
        batch_op.drop_index("ix_issuances_logged_at")
        batch_op.drop_column("logged_at")
