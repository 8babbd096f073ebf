"""Recordings (one WAV per call, every leg mixed), their post-processed media, QA evaluations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db import Base, utcnow


class Recording(Base):
    __tablename__ = "recordings"
    # Search (GET /api/v1/recordings) is newest first with at most one of these filters
    # leading: each index gives the first page without a sort (docs/recordings.md).
    __table_args__ = (
        Index("ix_recordings_started_at", "started_at"),
        Index("ix_recordings_agent_started", "agent_id", "started_at"),
        Index("ix_recordings_queue_started", "queue_code", "started_at"),
        Index("ix_recordings_caller_started", "caller_number", "started_at"),
        Index("ix_recordings_qa_status_started", "qa_status", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id"), index=True)
    path: Mapped[str] = mapped_column(String(512))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    duration_seconds: Mapped[float] = mapped_column(default=0.0)
    bytes: Mapped[int] = mapped_column(default=0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    # complete: closed normally; repaired: header rebuilt after a slot died (incomplete call)
    status: Mapped[str] = mapped_column(String(16), default="recording")
    retention_until: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]
    # Added by 0006_recordings. Copied from the call (who answered, who called, which queue)
    # so a search reads one table; the call record stays the source.
    agent_id: Mapped[int | None] = mapped_column()
    caller_number: Mapped[str | None] = mapped_column(String(64))
    queue_code: Mapped[str | None] = mapped_column(String(40))
    # unscored, scored, disputed
    qa_status: Mapped[str] = mapped_column(
        String(16), default="unscored", server_default="unscored"
    )
    legal_hold: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # where the WAV is in the recording store (None until post-processing put it there)
    storage_key: Mapped[str | None] = mapped_column(String(512))
    # Added by 0007_recording_pauses: the PCI-paused spans, absent from the file; each
    # {"offset_s", "paused_at", "resumed_at", "seconds", "by"} (ivr/records.py fills them)
    paused_spans: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))


class RecordingMedia(Base):
    """What post-processing found and made for one recording (recordings.jobs)."""

    __tablename__ = "recording_media"

    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # ok; checksum-mismatch (the WAV differs from the engine's SHA-256: kept, flagged);
    # file-missing; transcode-failed
    problem: Mapped[str | None] = mapped_column(String(32))
    wav_key: Mapped[str | None] = mapped_column(String(512))
    wav_bytes: Mapped[int] = mapped_column(default=0)
    wav_sha256: Mapped[str | None] = mapped_column(String(64))
    duration_seconds: Mapped[float] = mapped_column(default=0.0)
    silence_share: Mapped[float] = mapped_column(default=0.0)
    audio_key: Mapped[str | None] = mapped_column(String(512))
    audio_format: Mapped[str | None] = mapped_column(String(16))
    audio_bytes: Mapped[int] = mapped_column(default=0)
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    audio_verified: Mapped[bool] = mapped_column(default=False)
    # the player's waveform: one peak (0-100, share of full scale) per PEAK_SECONDS
    peaks: Mapped[list[Any]] = mapped_column(default=list)


class Evaluation(Base):
    """A QA score of one recording on a scorecard."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_agent_created", "agent_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    evaluator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    scorecard: Mapped[str] = mapped_column(String(40))
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    total: Mapped[float] = mapped_column(default=0.0)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Added by 0006_recordings: the agent may dispute an evaluation once.
    disputed_at: Mapped[datetime | None]
    dispute_reason: Mapped[str | None] = mapped_column(Text)
