"""recordings: the PCI-paused spans of each recording

Each span is ``{"offset_s", "paused_at", "resumed_at", "seconds", "by"}``: where in the file
the pause falls (nothing was recorded during it) and when it began and ended on the call's
clock. Filled by the call-record consumer from ``recording_paused`` / ``recording_resumed``.

Revision ID: 0007_recording_pauses
Revises: 0006_recordings
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_recording_pauses"
down_revision: str | None = "0006_recordings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("paused_spans", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_column("paused_spans")
