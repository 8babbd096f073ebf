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
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter import call_phases
from callcenter.consumers import ConsumerHost
from callcenter.context import AppContext, build_context
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


Handler = Callable[[Session, Call, CallEvent, datetime], None]


def _arrived(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    data = event.data
    call.caller_number = str(data.get("caller", ""))
    call.did = str(data.get("did", ""))
    call.direction = "out" if data.get("direction") == "out" else "in"
    call.arrived_at = at
    call.slot = event.slot or call.slot


def _refused(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    # turned away at the edge: a record of its own so no caller goes uncounted
    data = event.data
    call.caller_number = str(data.get("caller", ""))[:64]
    call.did = str(data.get("did", ""))[:32]
    call.direction = "in"
    call.arrived_at = call.ended_at = at
    call.outcome = "refused"
    call.end_reason = str(data.get("reason") or "other")[:32]


def _menu_chosen(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    data = event.data
    step = {"node": event.node, "digit": data.get("digit"), "target": data.get("target")}
    call.menu_path = [*call.menu_path, step]


def _digits_collected(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    data = event.data
    call.collected = {**call.collected, str(data.get("variable")): data.get("value")}
    call.menu_path = [
        *call.menu_path,
        {"node": event.node, "digits": data.get("value"), "target": None},
    ]


def _queued(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    data = event.data
    call.queue_code = str(data.get("queue") or "") or None
    call.priority = int(data.get("priority") or 0)
    if call.queued_at is None:
        call.queued_at = at
    if data.get("collected"):
        call.collected = {**call.collected, **data["collected"]}


def _answered(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    if call.answered_at is None:
        call.answered_at = at
    call.agent_id = _agent_id(session, event.data) or call.agent_id


def _ended(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    data = event.data
    call.ended_at = at
    call.outcome = str(data.get("outcome") or "") or None
    call.end_reason = str(data.get("reason") or "") or None


def _slot_failed(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    call.end_reason = "slot_failed"


def _reserved(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    if event.data.get("agent_id") is not None:
        call.agent_id = _agent_id(session, event.data) or call.agent_id


def _transferred(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    # a consultation completed: the target agent now has the call (a blind transfer reports
    # the new agent's agent_answered instead)
    data = event.data
    if data.get("consult") and data.get("kind") == "agent":
        call.agent_id = _agent_id(session, data) or call.agent_id


def _wrap_up_ended(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    if event.data.get("disposition"):
        call.disposition = str(event.data["disposition"])


def _recording_id(event: CallEvent) -> str:
    return str(event.data.get("recording_id") or event.call_id)


def _recording_started(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    recording_id = _recording_id(event)
    if session.get(Recording, recording_id) is None:
        session.add(
            Recording(
                id=recording_id,
                call_id=call.id,
                path=str(event.data["path"]),
                started_at=at,
                status="recording",
            )
        )


def _recording_paused(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    recording = session.get(Recording, _recording_id(event))
    if recording is not None:
        recording.paused_spans = mark_pause(recording.paused_spans, event.type, at, event.data)


def _recording_stopped(session: Session, call: Call, event: CallEvent, at: datetime) -> None:
    data = event.data
    recording_id = _recording_id(event)
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


# What each event type changes in the call's row (and its recording's); an event type absent
# here is only kept in the timeline.
HANDLERS: dict[str, Handler] = {
    EventType.call_arrived: _arrived,
    EventType.call_refused: _refused,
    EventType.menu_chosen: _menu_chosen,
    EventType.digits_collected: _digits_collected,
    EventType.call_queued: _queued,
    EventType.agent_answered: _answered,
    EventType.call_ended: _ended,
    EventType.slot_failed: _slot_failed,
    EventType.call_reserved: _reserved,
    EventType.transferred: _transferred,
    EventType.wrap_up_ended: _wrap_up_ended,
    EventType.recording_started: _recording_started,
    EventType.recording_paused: _recording_paused,
    EventType.recording_resumed: _recording_paused,
    EventType.recording_stopped: _recording_stopped,
}


def apply_event(session: Session, stream_id: str, event: CallEvent) -> bool:
    """Apply one event; False when this stream entry was applied before (replay)."""
    if session.scalar(select(CallEventRow.id).where(CallEventRow.stream_id == stream_id)):
        return False
    at = _when(event.at)
    call = session.get(Call, event.call_id)
    if call is None:
        call = Call(id=event.call_id, menu_path=[], collected={})
        session.add(call)
    if event.slot and not call.slot:
        call.slot = event.slot
    handler = HANDLERS.get(event.type)
    if handler is not None:
        handler(session, call, event, at)
    if event.type in call_phases.ENDING_EVENTS and call.ended_at is None:
        # nothing more comes for the call (call_phases.py): its end is known from here on
        call.ended_at = at
    call.last_event_id = stream_id
    session.flush()  # the call row exists before its timeline row (foreign key)
    session.add(
        CallEventRow(
            call_id=call.id,
            stream_id=stream_id,
            type=event.type,
            at=at,
            data={"node": event.node, "slot": event.slot, **event.data},
        )
    )
    return True


class CallRecordConsumer:
    """The group ``calls`` on the events stream (callcenter/consumers.py hosts it): every
    event type goes to :func:`apply_event`, one transaction each."""

    def __init__(self, ctx: AppContext, consumer: str | None = None) -> None:
        self.ctx = ctx
        self.stream = ctx.keys.events
        self.consumer = consumer or f"{ctx.settings.node_id}-calls"
        self.stop_event = threading.Event()
        self._applied = 0
        self.host = ConsumerHost(
            ctx.redis,
            streams=[self.stream],
            group=GROUP,
            consumer=self.consumer,
            handlers=dict.fromkeys(EventType, self._apply),
            # From the start of the stream: calls that happened before the first run count.
            create_at="0",
            # the event itself is wrong (a database outage raises other errors and is
            # retried): skip it rather than block every later call
            skip=(KeyError, ValueError, TypeError),
        )

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    @stopping.setter
    def stopping(self, value: bool) -> None:
        if value:
            self.stop_event.set()

    def ensure_group(self) -> None:
        self.host.ensure_group()

    def _apply(self, stream_id: str, fields: dict[str, str]) -> None:
        event = CallEvent.from_fields(fields)
        with self.ctx.sessions() as session, session.begin():
            if apply_event(session, stream_id, event):
                self._applied += 1
        if event.type == EventType.recording_stopped:
            # after commit: the worker post-processes the finished file
            enqueue_processing(self.ctx, str(event.data.get("recording_id") or event.call_id))

    def run_once(self, block_ms: int = 1000) -> int:
        """Pending entries first (a previous life's unacknowledged work), then new ones;
        returns how many events were applied (a replayed one is not)."""
        self.ensure_group()
        self.host.recheck_pending()
        self._applied = 0
        self.host.read_pending()
        self.host.step(block_ms)
        return self._applied

    def run(self) -> None:
        self.ensure_group()
        self.host.run(self.stop_event)


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
