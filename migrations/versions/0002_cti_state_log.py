"""cti: agent state log rows carry their stream entry id (idempotent replays) and the actor

Revision ID: 0002_cti
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_cti"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agent_state_changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stream_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("actor", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("transition", sa.String(length=24), nullable=True))
        batch_op.create_unique_constraint(
            op.f("uq_agent_state_changes_stream_id"), ["stream_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("agent_state_changes", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_agent_state_changes_stream_id"), type_="unique")
        batch_op.drop_column("transition")
        batch_op.drop_column("actor")
        batch_op.drop_column("stream_id")
