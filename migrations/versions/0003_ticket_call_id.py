"""tickets: call_id without a foreign key (a screen-pop ticket may precede its call record)

The ticket of a live call is registered before the ``calls`` consumer has written the call's
row from the event stream, so a foreign key refused it. The id is kept as the link (indexed);
the call record joins it when it arrives.

Revision ID: 0003_ticket_call_id
Revises: 0002_cti
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_ticket_call_id"
down_revision: str | None = "0002_cti"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_tickets_call_id_calls"), type_="foreignkey")
        batch_op.create_index(op.f("ix_tickets_call_id"), ["call_id"], unique=False)


def downgrade() -> None:
    # The old schema cannot hold a reference to a call that was never recorded: such
    # references are dropped (the ticket itself stays).
    op.execute(
        sa.text(
            "UPDATE tickets SET call_id = NULL WHERE call_id IS NOT NULL "
            "AND call_id NOT IN (SELECT id FROM calls)"
        )
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_tickets_call_id"))
        batch_op.create_foreign_key(
            op.f("fk_tickets_call_id_calls"), "calls", ["call_id"], ["id"]
        )
