"""Shapes of the recordings and QA API (apart from the tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

QaStatus = Literal["unscored", "scored", "disputed"]


class RecordingItem(BaseModel):
    id: str
    call_id: str
    agent: str | None = Field(description="the answering agent's extension")
    caller: str | None
    queue: str | None
    started_at: datetime
    duration_s: float
    ticket: str | None = Field(description="the number of the call's ticket, if any")
    qa_status: str
    status: str
    legal_hold: bool


class RecordingPage(BaseModel):
    items: list[RecordingItem]
    limit: int
    offset: int
    has_more: bool
    next_offset: int | None


class PausedSpan(BaseModel):
    """A PCI pause: nothing was recorded from ``paused_at`` to ``resumed_at``; the file
    goes on at ``offset_s`` seconds."""

    offset_s: float = Field(description="seconds into the recording where the pause falls")
    paused_at: datetime
    resumed_at: datetime | None = Field(description="None while the pause lasts")
    seconds: float | None = Field(description="the length of the span left out of the file")
    by: int | None = Field(default=None, description="the agent who paused")


class RecordingPublic(BaseModel):
    id: str
    call_id: str
    duration_seconds: float
    bytes: int
    sha256: str | None
    status: str
    audio_url: str
    paused_spans: list[PausedSpan] = Field(
        default_factory=list, description="PCI pauses: spans absent from the file"
    )


class LinkRequest(BaseModel):
    format: Literal["wav", "opus"] | None = Field(
        default=None, description="default: the compact Opus transcode once verified, else WAV"
    )


class LinkPublic(BaseModel):
    url: str
    expires_at: datetime
    format: str
    download_url: str | None


class MediaPublic(BaseModel):
    recording_id: str
    problem: str | None
    duration_seconds: float
    silence_share: float
    wav_bytes: int
    wav_sha256: str | None
    audio_format: str | None
    audio_bytes: int
    audio_sha256: str | None
    audio_verified: bool
    peak_seconds: float
    peaks: list[Any]


class LegalHold(BaseModel):
    hold: bool
    reason: str = Field(min_length=1, max_length=500)


class ErasureRequest(BaseModel):
    number: str = Field(min_length=3, max_length=64, pattern=r"^\+?[0-9]+$")
    reason: str = Field(min_length=1, max_length=500)


class ScorecardItemPublic(BaseModel):
    code: str
    name: dict[str, str]
    weight: float
    max_score: int
    phrases: list[str]
    guidance: str


class ScorecardPublic(BaseModel):
    code: str
    name: dict[str, str]
    default: bool
    items: list[ScorecardItemPublic]


class EvaluationCreate(BaseModel):
    recording_id: str = Field(min_length=1, max_length=64)
    scorecard: str | None = Field(default=None, description="default: qa.toml default_scorecard")
    scores: dict[str, Any] = Field(description="item code -> score (0..the item's max_score)")
    comment: str | None = Field(default=None, max_length=4000)


class EvaluationPublic(BaseModel):
    id: int
    recording_id: str
    call_id: str | None
    agent: str | None
    evaluator: str | None
    scorecard: str
    scores: dict[str, Any]
    total: float
    comment: str | None
    created_at: datetime
    disputed_at: datetime | None
    dispute_reason: str | None


class DisputeCreate(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class TrendWeek(BaseModel):
    week: str
    count: int
    average: float | None


class AgentTrend(BaseModel):
    agent: str
    weeks: list[TrendWeek]


class SampleAgent(BaseModel):
    agent: str
    candidates: int
    recordings: list[RecordingItem]


class WeeklySample(BaseModel):
    week: str
    per_agent: int
    min_answered_seconds: int
    agents: list[SampleAgent]
