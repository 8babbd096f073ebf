"""The contract between the engine (``ivr/``) and the rest: call event and command shapes.

Events are past-tense facts; each is one entry on the ``events`` stream whose fields are
``type``, ``call_id``, ``slot``, ``node``, ``at`` (ISO 8601 UTC) and ``data`` (JSON).
Agent state changes go on their own ``agent_events`` stream, same fields with ``agent_id``.
Commands are imperatives on a slot's command stream with ``type``, ``call_id``, ``id``
(a unique command id) and ``data`` (JSON). Neither side imports the other.

The keys of each event type's ``data`` are the fields of its class in ``callcenter/events.py``
(the comments below are a summary); readers parse entries there, once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    call_arrived = "call_arrived"  # data: caller, did, direction
    menu_entered = "menu_entered"  # data: node, kind
    digit_received = "digit_received"  # data: digit, node
    menu_chosen = "menu_chosen"  # data: node, digit, target
    menu_invalid = "menu_invalid"  # data: node, digits
    menu_timeout = "menu_timeout"  # data: node
    digits_collected = "digits_collected"  # data: node, variable, value
    call_queued = "call_queued"  # data: queue, priority, skills, collected, menu_path
    callback_requested = "callback_requested"  # data: queue, number
    agent_offered = "agent_offered"  # data: agent_uri, agent_id, queue
    agent_ringing = "agent_ringing"  # data: agent_uri
    agent_answered = "agent_answered"  # data: agent_uri, agent_id
    agent_missed = "agent_missed"  # data: agent_uri, agent_id, reason
    bridged = "bridged"  # data: agent_uri
    held = "held"
    unheld = "unheld"
    transferred = "transferred"  # data: to (queue / agent / number), kind; consult (bool)
    # Consultation (attended transfer): the caller waits on hold while the agent talks to a
    # colleague or a configured number, then hands the caller over or comes back.
    consult_started = "consult_started"  # data: kind (agent/number), to, target_uri, agent_id
    consult_answered = "consult_answered"  # data: kind, to, target_uri, agent_id
    consult_ended = "consult_ended"  # data: kind, to, agent_id, reason, answered, code
    supervisor_joined = "supervisor_joined"  # data: mode (listen/whisper/barge), uri
    recording_started = "recording_started"  # data: recording_id, path
    recording_stopped = (
        "recording_stopped"  # data: recording_id, path, duration, bytes, sha256, status
    )
    # PCI pause: nothing is recorded from here; offset_s: seconds into the file, by: agent_id
    recording_paused = "recording_paused"  # data: recording_id, offset_s, by
    recording_resumed = "recording_resumed"  # data: recording_id, offset_s, paused_s, by
    caller_hung_up = "caller_hung_up"
    agent_hung_up = "agent_hung_up"
    abandoned = "abandoned"  # caller hung up while queued; data: queue, waited
    call_ended = "call_ended"  # data: reason, outcome
    slot_failed = "slot_failed"  # data: reason (the slot died with this call on it)
    originated = "originated"  # data: number, purpose (callback, click_to_call)
    announced = "announced"  # data: queue, position, expected_wait, source (engine/routing)
    command_failed = "command_failed"  # data: command_id, command, reason (slot refused it)
    # Published by routing (cti/) on the same stream, with node="routing" and slot="":
    call_reserved = "call_reserved"  # data: queue, agent_id, agent_uri (routing picked an agent)
    call_overflowed = "call_overflowed"  # data: from_queue, to_queue, waited
    callback_scheduled = "callback_scheduled"  # data: queue, number, position kept
    wrap_up_ended = "wrap_up_ended"  # data: agent_id, disposition
    # Published by the SIP edge (node="edge"): a call turned away before it reached a slot.
    call_refused = "call_refused"  # data: caller, did, reason, source


class AgentEventType(StrEnum):
    """On the ``agent_events`` stream (published by cti/): every agent state transition."""

    logged_in = "agent_logged_in"  # data: agent_id, extension, queues, shift
    logged_out = "agent_logged_out"  # data: agent_id, reason
    state_changed = "agent_state_changed"  # data: agent_id, from, to, reason, call_id, queues
    queues_changed = "agent_queues_changed"  # data: agent_id, queues {code: level}


class CommandType(StrEnum):
    offer = "offer"  # data: agent_uri, agent_id, ring_timeout
    hangup = "hangup"
    hold = "hold"
    unhold = "unhold"
    transfer = "transfer"  # data: kind (queue/agent/number), target, mode (blind/consult/
    # complete/cancel), agent_id (the target agent), ring_timeout
    listen = "listen"  # data: supervisor_uri
    whisper = "whisper"
    barge = "barge"
    originate = "originate"  # data: number, agent_uri, purpose, ticket_id
    pause_recording = "pause_recording"
    resume_recording = "resume_recording"
    play = "play"  # data: prompt (announcement to the caller, e.g. queue position)
    requeue = "requeue"  # data: queue (overflow decided by routing)
    # routing withdrew an offer (its ring timer fired): stop ringing that agent now
    cancel_offer = "cancel_offer"  # data: agent_id, reason


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class CallEvent:
    type: str
    call_id: str
    slot: str = ""
    node: str = ""
    at: str = field(default_factory=now_iso)
    data: dict[str, Any] = field(default_factory=dict)

    def to_fields(self) -> dict[str, str]:
        return {
            "type": self.type,
            "call_id": self.call_id,
            "slot": self.slot,
            "node": self.node,
            "at": self.at,
            "data": json.dumps(self.data, ensure_ascii=False),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str] | dict[bytes, bytes]) -> CallEvent:
        f = {_s(k): _s(v) for k, v in fields.items()}
        return cls(
            type=f["type"],
            call_id=f["call_id"],
            slot=f.get("slot", ""),
            node=f.get("node", ""),
            at=f.get("at", now_iso()),
            data=json.loads(f.get("data") or "{}"),
        )


@dataclass(frozen=True)
class Command:
    type: str
    call_id: str
    id: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_fields(self) -> dict[str, str]:
        return {
            "type": self.type,
            "call_id": self.call_id,
            "id": self.id,
            "data": json.dumps(self.data, ensure_ascii=False),
        }

    @classmethod
    def from_fields(cls, fields: dict[str, str] | dict[bytes, bytes]) -> Command:
        f = {_s(k): _s(v) for k, v in fields.items()}
        return cls(
            type=f["type"], call_id=f["call_id"], id=f["id"], data=json.loads(f.get("data") or "{}")
        )


def _s(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
