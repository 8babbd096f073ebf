"""tickets: the Idempotency-Key a user sent with a new ticket, and that ticket

A ticket POST whose commit was cut (the database restarting: 503 ``database-unavailable``)
could be stored twice by the client's retry. The key is written in the ticket's transaction,
unique per user, so a retry with the same key finds the ticket instead of making another.

Revision ID: 0009_ticket_idempotency_keys
Revises: 0008_callback_assignee
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_ticket_idempotency_keys"
down_revision: str | None = "0008_callback_assignee"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_idempotency_keys",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_idempotency_keys_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ticket_idempotency_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "key", name=op.f("pk_ticket_idempotency_keys")),
    )
    op.create_index(
        op.f("ix_ticket_idempotency_keys_ticket_id"),
        "ticket_idempotency_keys",
        ["ticket_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_ticket_idempotency_keys_ticket_id"), table_name="ticket_idempotency_keys"
    )
    op.drop_table("ticket_idempotency_keys")
