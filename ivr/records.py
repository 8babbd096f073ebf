"""Call records: the consumer group ``calls`` turns the event stream into SQL rows.

Each stream entry is applied in one transaction that also inserts the timeline row keyed by
the entry's stream id (unique): an entry applied twice (a crash between commit and XACK) is
recognised and only acknowledged. A restarted consumer first re-reads its own pending
entries (delivered, never acknowledged), then continues with new ones, so nothing is lost
and nothing is written twice. It runs as a child process of the engine supervisor.
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.context import AppContext, build_context
from callcenter.db import database_down
from callcenter.streams import CallEvent, EventType
from config.settings import Settings
from cti.models import Agent, Call
from cti.models import CallEvent as CallEventRow
from recordings.jobs import enqueue_processing
from recordings.models import Recording

log = logging.getLogger("ivr.records")

GROUP = "calls"


def _when(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _agent_id(session: Session, data: dict[str, Any]) -> int | None:
    """The agent row for an event: its id if it exists, else from the URI's extension."""
    raw = data.get("agent_id")
    if raw is not None:
        try:
            agent = session.get(Agent, int(raw))
        except (TypeError, ValueError):
            agent = None
        if agent is not None:
            return agent.id
    uri = str(data.get("agent_uri") or "")
    extension = uri.removeprefix("sip:").removeprefix("sips:").split("@", 1)[0]
    if extension:
        found: int | None = session.scalar(select(Agent.id).where(Agent.extension == extension))
        return found
    return None


def mark_pause(spans: list[Any] | None, kind: str, at: datetime, data: dict[str, Any]) -> list[Any]:
    """The recording's paused spans after a pause or resume (a new list: JSON columns only
    notice assignment). A resume closes the open span; one without an open span, or a second
    pause, changes nothing (the slot refuses both, so only a replay could bring them)."""
    out = [dict(span) for span in spans or []]
    open_span = out[-1] if out and out[-1].get("resumed_at") is None else None
    if kind == EventType.recording_paused and open_span is None:
        out.append(
            {
                "offset_s": float(data.get("offset_s") or 0.0),
                "paused_at": at.isoformat(),
                "resumed_at": None,
                "seconds": None,
                "by": data.get("by"),
            }
        )
    elif kind == EventType.recording_resumed and open_span is not None:
        paused_at = _when(str(open_span["paused_at"]))
        seconds = data.get("paused_s")
        open_span["resumed_at"] = at.isoformat()
        open_span["seconds"] = round(
            float(seconds) if seconds is not None else (at - paused_at).total_seconds(), 3
        )
    return out


def apply_event(session: Session, stream_id: str, event: CallEvent) -> bool:
    """Apply one event; False when this stream entry was applied before (replay)."""
    if session.scalar(select(CallEventRow.id).where(CallEventRow.stream_id == stream_id)):
        return False
    at = _when(event.at)
    data = event.data
    call = session.get(Call, event.call_id)
    if call is None:
        call = Call(id=event.call_id, menu_path=[], collected={})
        session.add(call)
    if event.slot and not call.slot:
        call.slot = event.slot
    kind = event.type
    if kind == EventType.call_arrived:
        call.caller_number = str(data.get("caller", ""))
        call.did = str(data.get("did", ""))
        call.direction = "out" if data.get("direction") == "out" else "in"
        call.arrived_at = at
        call.slot = event.slot or call.slot
    elif kind == EventType.call_refused:
        # turned away at the edge: a record of its own so no caller goes uncounted
        call.caller_number = str(data.get("caller", ""))[:64]
        call.did = str(data.get("did", ""))[:32]
        call.direction = "in"
        call.arrived_at = call.ended_at = at
        call.outcome = "refused"
        call.end_reason = str(data.get("reason") or "other")[:32]
    elif kind == EventType.menu_chosen:
        call.menu_path = [
            *call.menu_path,
            {"node": event.node, "digit": data.get("digit"), "target": data.get("target")},
        ]
    elif kind == EventType.digits_collected:
        call.collected = {**call.collected, str(data.get("variable")): data.get("value")}
        call.menu_path = [
            *call.menu_path,
            {"node": event.node, "digits": data.get("value"), "target": None},
        ]
    elif kind == EventType.call_queued:
        call.queue_code = str(data.get("queue") or "") or None
        call.priority = int(data.get("priority") or 0)
        if call.queued_at is None:
            call.queued_at = at
        if data.get("collected"):
            call.collected = {**call.collected, **data["collected"]}
    elif kind == EventType.agent_answered:
        if call.answered_at is None:
            call.answered_at = at
        call.agent_id = _agent_id(session, data) or call.agent_id
    elif kind == EventType.call_ended:
        call.ended_at = at
        call.outcome = str(data.get("outcome") or "") or None
        call.end_reason = str(data.get("reason") or "") or None
    elif kind == EventType.slot_failed:
        call.end_reason = "slot_failed"
    elif kind == EventType.call_reserved and data.get("agent_id") is not None:
        call.agent_id = _agent_id(session, data) or call.agent_id
    elif kind == EventType.transferred and data.get("consult") and data.get("kind") == "agent":
        # a consultation completed: the target agent now has the call (a blind transfer
        # reports the new agent's agent_answered instead)
        call.agent_id = _agent_id(session, data) or call.agent_id
    elif kind == EventType.wrap_up_ended and data.get("disposition"):
        call.disposition = str(data["disposition"])
    elif kind == EventType.recording_started:
        recording_id = str(data.get("recording_id") or event.call_id)
        if session.get(Recording, recording_id) is None:
            session.add(
                Recording(
                    id=recording_id,
                    call_id=call.id,
                    path=str(data["path"]),
                    started_at=at,
                    status="recording",
                )
            )
    elif kind in (EventType.recording_paused, EventType.recording_resumed):
        recording = session.get(Recording, str(data.get("recording_id") or event.call_id))
        if recording is not None:
            recording.paused_spans = mark_pause(recording.paused_spans, kind, at, data)
    elif kind == EventType.recording_stopped:
        recording_id = str(data.get("recording_id") or event.call_id)
        recording = session.get(Recording, recording_id)
        if recording is None:
            recording = Recording(
                id=recording_id, call_id=call.id, path=str(data["path"]), started_at=at
            )
            session.add(recording)
        if recording.paused_spans and recording.paused_spans[-1].get("resumed_at") is None:
            # the call ended while paused: the span runs to the end
            recording.paused_spans = mark_pause(
                recording.paused_spans, EventType.recording_resumed, at, {}
            )
        recording.ended_at = at
        # copied for the recording search (recordings/search.py reads one table)
        recording.agent_id = call.agent_id
        recording.caller_number = call.caller_number
        recording.queue_code = call.queue_code
        recording.duration_seconds = float(data.get("duration") or 0)
        recording.bytes = int(data.get("bytes") or 0)
        recording.sha256 = data.get("sha256")
        recording.status = str(data.get("status") or "complete")
    call.last_event_id = stream_id
    session.flush()  # the call row exists before its timeline row (foreign key)
    session.add(
        CallEventRow(
            call_id=call.id,
            stream_id=stream_id,
            type=kind,
            at=at,
            data={"node": event.node, "slot": event.slot, **data},
        )
    )
    return True


class CallRecordConsumer:
    def __init__(self, ctx: AppContext, consumer: str | None = None) -> None:
        self.ctx = ctx
        self.stream = ctx.keys.events
        self.consumer = consumer or f"{ctx.settings.node_id}-calls"
        self.stopping = False

    def ensure_group(self) -> None:
        try:
            # From the start of the stream: calls that happened before the first run count.
            self.ctx.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _handle(self, entries: list[tuple[str, dict[str, str]]]) -> int:
        applied = 0
        for stream_id, fields in entries:
            try:
                event = CallEvent.from_fields(fields)
            except (KeyError, ValueError) as exc:
                log.error("skipping malformed event %s: %s", stream_id, exc)
                self.ctx.redis.xack(self.stream, GROUP, stream_id)
                continue
            try:
                with self.ctx.sessions() as session, session.begin():
                    if apply_event(session, stream_id, event):
                        applied += 1
                if event.type == EventType.recording_stopped:
                    # after commit: the worker post-processes the finished file
                    enqueue_processing(
                        self.ctx, str(event.data.get("recording_id") or event.call_id)
                    )
            except (KeyError, ValueError, TypeError) as exc:
                # the event itself is wrong (a database outage raises other errors and is
                # retried): skip it rather than block every later call
                log.error("skipping event %s (%s): %r", stream_id, event.type, exc)
            self.ctx.redis.xack(self.stream, GROUP, stream_id)
        return applied

    def run_once(self, block_ms: int = 1000) -> int:
        """Pending entries first (a previous life's unacknowledged work), then new ones."""
        self.ensure_group()
        client: Any = self.ctx.redis
        applied = 0
        while True:
            pending = client.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=100)
            entries = pending[0][1] if pending else []
            if not entries:
                break
            applied += self._handle(entries)
        fresh = client.xreadgroup(
            GROUP, self.consumer, {self.stream: ">"}, count=100, block=block_ms
        )
        for _stream, entries in fresh or []:
            applied += self._handle(entries)
        return applied

    def run(self) -> None:
        while not self.stopping:
            try:
                self.run_once()
            except redis.RedisError:
                log.exception("event stream unavailable; retrying")
                time.sleep(1)
            except Exception as exc:
                if database_down(exc):  # the entries stay pending: written once it is back
                    log.warning("the database did not answer (%s); retrying", exc)
                else:
                    log.exception("applying call events failed; retrying")
                time.sleep(1)


def run_consumer_process(settings: Settings) -> None:
    """Entry of the consumer child process forked by the supervisor."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s call-records %(levelname)s %(message)s"
    )
    ctx = build_context(settings)
    consumer = CallRecordConsumer(ctx)

    def _stop(_signum: int, _frame: Any) -> None:
        consumer.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        consumer.run()
    finally:
        ctx.close()
