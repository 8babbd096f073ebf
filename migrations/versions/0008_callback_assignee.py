"""callbacks: the agent a callback (回访) is assigned to

A lead gives a satisfaction callback to one agent; it then shows on that agent's desktop and
is not placed through the callback queue (until its deadline passes).

Revision ID: 0008_callback_assignee
Revises: 0007_recording_pauses
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_callback_assignee"
down_revision: str | None = "0007_recording_pauses"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assigned_agent_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_callbacks_assigned_agent_id_agents", "agents", ["assigned_agent_id"], ["id"]
        )
        batch_op.create_index(
            "ix_callbacks_assigned_status", ["assigned_agent_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_index("ix_callbacks_assigned_status")
        batch_op.drop_constraint("fk_callbacks_assigned_agent_id_agents", type_="foreignkey")
        batch_op.drop_column("assigned_agent_id")
