"""Deleting recordings: retention per queue, and erasure of everything kept about a caller's
number. A recording on legal hold is never deleted. Every deletion writes an audit entry.

Order of a deletion: the row is marked deleted and the audit entry written in one
transaction, then the files are removed. A crash in between leaves a file of a deleted
recording, which reconciliation lists (``deleted-recording-file``) and the next retention
run removes; it never leaves a live row without its file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from callcenter.audit import record as record_audit
from callcenter.context import AppContext
from callcenter.db import utcnow
from cti.models import Call, CallEvent
from recordings.erasure import (
    RecordsErased,
    erase_customers,
    erase_routing_states,
    erase_tickets,
    number_forms,
)
from recordings.models import Recording, RecordingMedia
from recordings.playback import engine_file, store
from recordings.storage import Storage, StorageError

log = logging.getLogger("recordings.retention")

# call timeline entries that carry what the caller keyed in
DIGIT_EVENTS = ("digits_collected", "digit_received", "menu_chosen", "menu_invalid")


def _files(ctx: AppContext, session: Session, recording: Recording) -> list[tuple[Storage, str]]:
    files: list[tuple[Storage, str]] = []
    # an engine path outside the recordings directory: nothing local to remove
    with contextlib.suppress(StorageError):
        files.append(engine_file(ctx, recording))
    if recording.storage_key:
        files.append((store(ctx), recording.storage_key))
    media = session.get(RecordingMedia, recording.id)
    if media is not None and media.audio_key:
        files.append((store(ctx), media.audio_key))
    return files


def _remove(files: list[tuple[Storage, str]]) -> list[str]:
    removed = []
    for storage, key in files:
        try:
            if storage.delete(key):
                removed.append(f"{storage.name}:{key}")
        except (OSError, StorageError) as exc:
            log.error("could not delete %s from the %s store: %s", key, storage.name, exc)
    return removed


def _retention_cutoffs(ctx: AppContext, now: datetime) -> tuple[dict[str, datetime], datetime]:
    queues = ctx.config.queues
    default = now - timedelta(days=queues.recording_retention_days)
    per_queue = {
        code: now - timedelta(days=queue.recording_retention_days)
        for code, queue in queues.queues.items()
        if queue.recording_retention_days is not None
    }
    return per_queue, default


def expired(ctx: AppContext, session: Session, now: datetime) -> list[Recording]:
    per_queue, default = _retention_cutoffs(ctx, now)
    live = (Recording.deleted_at.is_(None), Recording.legal_hold.is_(False))
    found: list[Recording] = []
    for code, cutoff in per_queue.items():
        found += session.scalars(
            select(Recording).where(
                *live, Recording.queue_code == code, Recording.started_at < cutoff
            )
        )
    found += session.scalars(
        select(Recording).where(
            *live,
            or_(Recording.queue_code.is_(None), Recording.queue_code.not_in(list(per_queue))),
            Recording.started_at < default,
        )
    )
    return found


def apply_retention(ctx: AppContext, *, actor: str, now: datetime | None = None) -> list[str]:
    """Delete every recording past its queue's retention; the ids deleted."""
    moment = now or utcnow()
    deleted: list[str] = []
    plan: list[tuple[str, list[tuple[Storage, str]]]] = []
    with ctx.sessions() as session, session.begin():
        for recording in expired(ctx, session, moment):
            files = _files(ctx, session, recording)
            recording.deleted_at = moment
            record_audit(
                session,
                actor=actor,
                action="recording.deleted",
                object_type="recording",
                object_id=recording.id,
                details={
                    "reason": "retention",
                    "queue": recording.queue_code,
                    "started_at": recording.started_at.isoformat(),
                    "call_id": recording.call_id,
                    "files": [f"{s.name}:{k}" for s, k in files],
                },
            )
            plan.append((recording.id, files))
        leftovers = _deleted_files_left(ctx, session)
    for recording_id, files in plan:
        _remove(files)
        deleted.append(recording_id)
    _remove(leftovers)
    return deleted


def _deleted_files_left(ctx: AppContext, session: Session) -> list[tuple[Storage, str]]:
    """Files of recordings deleted earlier that are still there (a crash after commit)."""
    left = []
    for recording in session.scalars(
        select(Recording).where(
            Recording.deleted_at.is_not(None), Recording.deleted_at > utcnow() - timedelta(days=7)
        )
    ):
        for storage, key in _files(ctx, session, recording):
            if storage.exists(key):
                left.append((storage, key))
    return left


@dataclass
class Erasure:
    calls: list[str] = field(default_factory=list)
    recordings_deleted: list[str] = field(default_factory=list)
    recordings_held: list[str] = field(default_factory=list)
    events_redacted: int = 0
    screen_pops_deleted: int = 0
    records: RecordsErased = field(default_factory=RecordsErased)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "recordings_deleted": self.recordings_deleted,
            "recordings_held": self.recordings_held,
            "events_redacted": self.events_redacted,
            "screen_pops_deleted": self.screen_pops_deleted,
            **self.records.to_dict(),
        }


def number_fingerprint(number: str) -> str:
    """What the audit log keeps of an erased number (not the number itself)."""
    return hashlib.sha256(number.encode()).hexdigest()[:16]


def erase_number(
    ctx: AppContext, number: str, *, actor: str, reason: str, remote_addr: str | None = None
) -> Erasure:
    """Erase what is kept about calls from ``number``: their recordings (unless on legal
    hold), the digits keyed in (call record, timeline and routing state), the caller number
    itself, the screen-pop data in Redis, the customer record and ticket contacts with that
    number (``recordings/erasure.py``). One audit entry per deletion."""
    result = Erasure()
    files: list[tuple[Storage, str]] = []
    moment = utcnow()
    fingerprint = number_fingerprint(number)
    forms = number_forms(number)
    with ctx.sessions() as session, session.begin():

        def audit(
            *, action: str, object_type: str, object_id: str, extra: dict[str, Any] | None = None
        ) -> None:
            details = {"reason": reason, "number": fingerprint, **(extra or {})}
            record_audit(
                session,
                actor=actor,
                action=action,
                object_type=object_type,
                object_id=object_id,
                details=details,
                remote_addr=remote_addr,
            )

        calls = list(session.scalars(select(Call).where(Call.caller_number.in_(forms))))
        for call in calls:
            result.calls.append(call.id)
            for recording in session.scalars(
                select(Recording).where(
                    Recording.call_id == call.id, Recording.deleted_at.is_(None)
                )
            ):
                if recording.legal_hold:
                    result.recordings_held.append(recording.id)
                    continue
                these = _files(ctx, session, recording)
                files += these
                recording.deleted_at = moment
                recording.caller_number = None
                result.recordings_deleted.append(recording.id)
                record_audit(
                    session,
                    actor=actor,
                    action="recording.erased",
                    object_type="recording",
                    object_id=recording.id,
                    details={
                        "reason": reason,
                        "number": fingerprint,
                        "call_id": call.id,
                        "files": [f"{s.name}:{k}" for s, k in these],
                    },
                    remote_addr=remote_addr,
                )
            redacted = _redact_call(session, call)
            result.events_redacted += redacted
            record_audit(
                session,
                actor=actor,
                action="call.redacted",
                object_type="call",
                object_id=call.id,
                details={"reason": reason, "number": fingerprint, "events": redacted},
                remote_addr=remote_addr,
            )
        for call_id in result.calls:
            key = ctx.keys.routing(f"call:{call_id}:pop")
            if ctx.redis.delete(key):
                result.screen_pops_deleted += 1
                record_audit(
                    session,
                    actor=actor,
                    action="screen_pop.erased",
                    object_type="call",
                    object_id=call_id,
                    details={"reason": reason, "number": fingerprint},
                    remote_addr=remote_addr,
                )
        erase_routing_states(ctx, calls, audit, result.records)
        erase_tickets(session, forms, audit, result.records)
        erase_customers(session, forms, audit, result.records)
    _remove(files)
    return result


def _redact_call(session: Session, call: Call) -> int:
    call.caller_number = ""
    call.collected = {}
    call.menu_path = [
        {key: value for key, value in step.items() if key not in {"digit", "digits"}}
        for step in (call.menu_path or [])
        if isinstance(step, dict)
    ]
    redacted = 0
    for event in session.scalars(select(CallEvent).where(CallEvent.call_id == call.id)):
        data = dict(event.data or {})
        if event.type in DIGIT_EVENTS:
            event.data = {"node": data.get("node"), "slot": data.get("slot"), "redacted": True}
            redacted += 1
        elif event.type == "call_queued" and data.get("collected"):
            event.data = {**data, "collected": {}, "redacted": True}
            redacted += 1
        elif "caller" in data or "number" in data:
            event.data = {k: v for k, v in data.items() if k not in {"caller", "number"}} | {
                "redacted": True
            }
            redacted += 1
    return redacted
