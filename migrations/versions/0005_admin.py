"""admin: when a user's credentials last changed; stored versions of the declarative files

A password change or a disable sets ``users.credentials_changed_at``; a bearer token or
session issued before that instant is refused. ``config_versions`` keeps every document an
admin stored for a declarative file (who, when, the document, the diff).

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
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("file", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("rollback_of", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_versions")),
        sa.UniqueConstraint("file", "version", name=op.f("uq_config_versions_file")),
    )


def downgrade() -> None:
    op.drop_table("config_versions")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("credentials_changed_at")
