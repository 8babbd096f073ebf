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


class RecordingPublic(BaseModel):
    id: str
    call_id: str
    duration_seconds: float
    bytes: int
    sha256: str | None
    status: str
    audio_url: str


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
