"""Reader of the engine's event stream for callback calls (回访), consumer group ``tickets``.

The engine originates a callback with the command's ``call_id`` (``callback-<id>-<attempt>``)
and reports that call on ``{prefix}:events`` like any other. This reader records:

- ``digits_collected`` with ``data.variable == "satisfaction"`` (survey mode): the customer's
  1–5 key → an answered attempt with that score;
- ``call_ended`` whose ``data.outcome`` is not ``answered`` (no answer, busy, failed): an
  unanswered attempt, retried within the window.

In agent mode the agent records the result through the API. The reader runs inside the
periodic scan job (no extra process); entries are acknowledged after they are handled, and
handling is idempotent (an attempt already recorded is left alone). An entry whose handling
failed (the database down) stays pending and is read first by the next run.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime

from sqlalchemy import select

from callcenter import events
from callcenter.consumers import ConsumerHost, EntryHandler
from callcenter.context import AppContext
from callcenter.streams import EventType
from ticketing.attempts import record_attempt
from ticketing.change import SYSTEM
from ticketing.models import CallbackAttempt

log = logging.getLogger(__name__)

GROUP = "tickets"
CALL_ID = re.compile(r"^callback-(\d+)-(\d+)$")
UNANSWERED = {"no_answer": "no_answer", "busy": "busy"}


def _host(ctx: AppContext, handlers: dict[str, EntryHandler] | None = None) -> ConsumerHost:
    return ConsumerHost(
        ctx.redis,
        streams=[ctx.keys.events],
        group=GROUP,
        consumer=ctx.settings.node_id,
        handlers=handlers or {},
        count=500,
    )


def ensure_group(ctx: AppContext) -> None:
    """Create the group at the stream's end (idempotent); done before the first callback."""
    _host(ctx).ensure_group()


def consume(ctx: AppContext, *, now: datetime | None = None, batch: int = 500) -> dict[str, int]:
    """Handle every pending event for callback calls; returns what was recorded."""
    counts = {"read": 0, "answered": 0, "unanswered": 0}

    def record(entry_id: str, fields: dict[str, str]) -> None:
        outcome = _handle(ctx, events.from_wire(fields), now)
        if outcome:
            counts[outcome] += 1

    # The two event types a callback call's outcome is read from (the rest is acknowledged).
    host = _host(ctx, dict.fromkeys((EventType.digits_collected, EventType.call_ended), record))
    host.count = batch
    host.ensure_group()
    while read := host.step(0):
        counts["read"] += read
    return counts


def _handle(ctx: AppContext, event: events.Event, now: datetime | None) -> str | None:
    match = CALL_ID.match(event.call_id)
    if match is None:
        return None
    callback_id = int(match.group(1))
    if not _attempt_open(ctx, callback_id, event.call_id):
        return None
    if isinstance(event, events.DigitsCollected) and event.variable == "satisfaction":
        score = int(str(event.value if event.value is not None else "").strip() or "0")
        if not 1 <= score <= 5:
            raise ValueError(f"satisfaction key {score!r} is not 1-5")
        record_attempt(
            ctx,
            callback_id,
            outcome="answered",
            score=score,
            call_id=event.call_id,
            actor=SYSTEM,
            now=now,
            note="survey / 自动语音回访",
        )
        return "answered"
    if isinstance(event, events.CallEnded):
        outcome = str(event.outcome or event.reason or "")
        if outcome == "answered":
            return None
        record_attempt(
            ctx,
            callback_id,
            outcome=UNANSWERED.get(outcome, "failed" if outcome else "no_answer"),
            call_id=event.call_id,
            actor=SYSTEM,
            now=now,
            note=f"call ended: {outcome}",
        )
        return "unanswered"
    return None


def _attempt_open(ctx: AppContext, callback_id: int, call_id: str) -> bool:
    """Is this call's attempt still waiting for its outcome (placed, nothing recorded)?"""
    with ctx.sessions() as session:
        outcome = session.scalar(
            select(CallbackAttempt.outcome).where(
                CallbackAttempt.callback_id == callback_id, CallbackAttempt.call_id == call_id
            )
        )
    return outcome == "placed"
