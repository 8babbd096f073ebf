"""recordings: search columns and indexes, post-processed media, legal hold, QA disputes

The call's agent, caller number and queue are copied onto the recording (filled from the
call records here, then by the call-record consumer and post-processing) so a search over
millions of recordings reads one table through one index.

Revision ID: 0006_recordings
Revises: 0005_admin
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_recordings"
down_revision: str | None = "0005_admin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_INDEXES = {
    "ix_recordings_started_at": ["started_at"],
    "ix_recordings_agent_started": ["agent_id", "started_at"],
    "ix_recordings_queue_started": ["queue_code", "started_at"],
    "ix_recordings_caller_started": ["caller_number", "started_at"],
    "ix_recordings_qa_status_started": ["qa_status", "started_at"],
}


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("caller_number", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("queue_code", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("qa_status", sa.String(length=16), nullable=False, server_default="unscored")
        )
        batch_op.add_column(
            sa.Column("legal_hold", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("storage_key", sa.String(length=512), nullable=True))
        for name, columns in SEARCH_INDEXES.items():
            batch_op.create_index(name, columns, unique=False)
    op.execute(
        sa.text(
            "UPDATE recordings SET "
            "agent_id = (SELECT calls.agent_id FROM calls WHERE calls.id = recordings.call_id), "
            "caller_number = (SELECT calls.caller_number FROM calls "
            "WHERE calls.id = recordings.call_id), "
            "queue_code = (SELECT calls.queue_code FROM calls WHERE calls.id = recordings.call_id)"
        )
    )
    op.execute(
        sa.text(
            "UPDATE recordings SET qa_status = 'scored' WHERE id IN "
            "(SELECT recording_id FROM evaluations)"
        )
    )
    op.create_table(
        "recording_media",
        sa.Column("recording_id", sa.String(length=64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("problem", sa.String(length=32), nullable=True),
        sa.Column("wav_key", sa.String(length=512), nullable=True),
        sa.Column("wav_bytes", sa.Integer(), nullable=False),
        sa.Column("wav_sha256", sa.String(length=64), nullable=True),
        sa.Column("duration_seconds", sa.Double(), nullable=False),
        sa.Column("silence_share", sa.Double(), nullable=False),
        sa.Column("audio_key", sa.String(length=512), nullable=True),
        sa.Column("audio_format", sa.String(length=16), nullable=True),
        sa.Column("audio_bytes", sa.Integer(), nullable=False),
        sa.Column("audio_sha256", sa.String(length=64), nullable=True),
        sa.Column("audio_verified", sa.Boolean(), nullable=False),
        sa.Column("peaks", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_recording_media_recording_id_recordings"),
        ),
        sa.PrimaryKeyConstraint("recording_id", name=op.f("pk_recording_media")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disputed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("dispute_reason", sa.Text(), nullable=True))
        batch_op.create_index(
            "ix_evaluations_agent_created", ["agent_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_agent_created")
        batch_op.drop_column("dispute_reason")
        batch_op.drop_column("disputed_at")
    op.drop_table("recording_media")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        for name in SEARCH_INDEXES:
            batch_op.drop_index(name)
        batch_op.drop_column("storage_key")
        batch_op.drop_column("legal_hold")
        batch_op.drop_column("qa_status")
        batch_op.drop_column("queue_code")
        batch_op.drop_column("caller_number")
        batch_op.drop_column("agent_id")
