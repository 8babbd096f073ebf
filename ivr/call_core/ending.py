"""The recording's start and the call's end: what is reported, in which order."""

from __future__ import annotations

from typing import Any

from callcenter.streams import EventType
from ivr.call_core.actions import Actions, EmitEvent, ReportStatus, StopAnnouncements, TearDown
from ivr.call_core.state import CLOSE_PUMP_SECONDS, Conversation, LegsView
from ivr.call_core.transfer import consult_ended


def recording_started(conv: Conversation, path: str, *, now: float, wall_now: float) -> Actions:
    """The recorder writes the call to ``path`` from ``now`` (monotonic)."""
    conv.recording.start(conv.call_id, path, now=now)
    status = {
        "status": "recording",
        "call_id": conv.call_id,
        "recording_id": conv.recording.id,
        "path": path,
        "started": wall_now,
    }
    started = {"recording_id": conv.recording.id, "path": path}
    return [ReportStatus(status), EmitEvent(EventType.recording_started, started)]


def end_call(
    conv: Conversation, reason: str, outcome: str, legs: LegsView, *, now: float, wall_now: float
) -> Actions:
    """End the call now: no more announcements, a consultation in progress ends with it,
    then every leg goes; ``Finish`` follows from the timers once the legs are gone."""
    if conv.clock.closed:
        return []
    conv.end_reason, conv.outcome = reason, outcome
    actions: Actions = [StopAnnouncements()]
    if conv.consult is not None:  # its target leg, its event
        actions += consult_ended(
            conv, reason, reconnect=False, agent_present="agent" in legs.roles, wall_now=wall_now
        )
    # call_ended is sent after the recorder's flush: stamp the end now
    conv.clock.close(close_at=now + CLOSE_PUMP_SECONDS, wall_now=wall_now)
    return [*actions, TearDown()]


def finished(conv: Conversation, recording: dict[str, Any] | None, *, wall_now: float) -> Actions:
    """The legs are gone and the recorder flushed: the recording's facts (``recording``,
    None when the call was not recorded), then ``call_ended`` stamped at the call's end."""
    actions: Actions = []
    if recording is not None:
        stopped = {"recording_id": conv.recording.id, "path": conv.recording.path, **recording}
        if recording.get("status") != "failed":
            stopped["paused"] = conv.recording.paused
        actions.append(EmitEvent(EventType.recording_stopped, stopped))
    ended = conv.clock.ended_at if conv.clock.ended_at is not None else wall_now
    data = {
        "reason": conv.end_reason,
        "outcome": conv.outcome,
        "queue": conv.routing.queue,
        "duration": round(ended - conv.started, 3),
    }
    return [*actions, EmitEvent(EventType.call_ended, data, at=ended)]
