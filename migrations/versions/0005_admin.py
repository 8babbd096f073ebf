"""admin: when a user's credentials last changed (tokens issued before it stop working)

A password change, a disable or a role change sets ``users.credentials_changed_at``; a bearer
token or session issued before that instant is refused.

Revision ID: 0005_admin
Revises: 0004_ticket_numbers
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_admin"
down_revision: str | None = "0004_ticket_numbers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("credentials_changed_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("credentials_changed_at")
