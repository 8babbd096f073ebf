"""Typed events keep the wire format: every event type read from an entry shaped as its
producer writes it, and written back, gives the same entry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from callcenter import events
from callcenter.events import EVENT_CLASSES, InvalidEvent, from_wire
from callcenter.streams import CallEvent, EventType

AT = "2026-12-06T03:04:05.678901+00:00"

# One entry per type, its data as the producer writes it (ivr/slot.py, ivr/menu.py,
# ivr/cut_calls.py, ivr/originate_forwarding.py, cti/lua/routing.lua, ticketing/jobs.py).
SAMPLES: dict[EventType, dict[str, Any]] = {
    EventType.call_arrived: {
        "caller": "13800138000",
        "did": "4008001234",
        "direction": "in",
        "sip_call_id": "a84b4c76e66710",
        "source": "127.0.0.1:5062",
    },
    EventType.menu_entered: {"node": "main", "kind": "menu", "prompt_started_at": AT},
    EventType.digit_received: {"digit": "1", "method": "rfc2833"},
    EventType.menu_chosen: {"digit": "1", "target": "repairs"},
    EventType.menu_invalid: {"digits": "9", "then_playing": ["main.invalid", "main.prompt"]},
    EventType.menu_timeout: {"then_playing": ["main.timeout"]},
    EventType.digits_collected: {"variable": "satisfaction", "value": "5", "node": "survey"},
    EventType.call_queued: {
        "queue": "repairs",
        "priority": 0,
        "skills": ["zh"],
        "collected": {"unit": "1201"},
        "menu_path": [{"node": "main", "digit": "1", "target": "repairs"}],
        "caller": "13800138000",
        "did": "4008001234",
        "queued_epoch": 1796000000.25,
        "previous_queue": "general",
    },
    EventType.callback_requested: {
        "number": "13800138000",
        "purpose": "callback",
        "mode": "agent",
        "queue": "callbacks",
        "agent_first": True,
        "ticket_id": 7,
        "ticket_number": "GD20261206-0001",
        "callback_id": 3,
        "attempt": 1,
        "result_url": "/api/v1/callbacks/3/attempts",
    },
    EventType.agent_offered: {
        "agent_uri": "sip:1001@127.0.0.1",
        "agent_id": 1,
        "queue": "repairs",
        "ring_timeout": 15,
    },
    EventType.agent_ringing: {"agent_uri": "sip:1001@127.0.0.1"},
    EventType.agent_answered: {"agent_uri": "sip:1001@127.0.0.1", "agent_id": None},
    EventType.agent_missed: {
        "agent_uri": "sip:1001@127.0.0.1",
        "agent_id": 1,
        "reason": "no_answer",
        "queue": "repairs",
    },
    EventType.bridged: {"agent_uri": "sip:1001@127.0.0.1", "agent_id": 1, "queue": "repairs"},
    EventType.held: {"reason": "consult"},
    EventType.unheld: {},
    EventType.transferred: {
        "kind": "agent",
        "to": "sip:1002@127.0.0.1",
        "agent_id": 2,
        "agent_uri": "sip:1002@127.0.0.1",
        "consult": True,
        "answered": False,
        "by": "agent",
    },
    EventType.consult_started: {
        "kind": "number",
        "to": "13900139000",
        "target_uri": "sip:13900139000@127.0.0.1:5070",
        "agent_id": None,
        "ring_timeout": 20,
    },
    EventType.consult_answered: {
        "kind": "agent",
        "to": "1002",
        "target_uri": "sip:1002@127.0.0.1",
        "agent_id": 2,
    },
    EventType.consult_ended: {
        "kind": "agent",
        "to": "1002",
        "target_uri": "sip:1002@127.0.0.1",
        "agent_id": 2,
        "reason": "rejected",
        "answered": False,
        "code": 486,
        "seconds": 3.25,
        "detail": "Busy Here",
    },
    EventType.supervisor_joined: {"mode": "whisper", "uri": "sip:lead1@127.0.0.1"},
    EventType.recording_started: {"recording_id": "r-1", "path": "/var/rec/r-1.wav"},
    EventType.recording_stopped: {
        "recording_id": "r-1",
        "path": "/var/rec/r-1.wav",
        "duration": 0,
        "bytes": 0,
        "sha256": None,
        "status": "failed",
        "error": "OSError: disk full",
    },
    EventType.recording_paused: {"recording_id": "r-1", "offset_s": 12.5, "by": 3},
    EventType.recording_resumed: {
        "recording_id": "r-1",
        "offset_s": 12.5,
        "paused_s": 20.1,
        "by": 3,
    },
    EventType.caller_hung_up: {"state": "queued"},
    EventType.agent_hung_up: {"agent_uri": "sip:1001@127.0.0.1"},
    EventType.abandoned: {"queue": "repairs", "waited": 12.5},
    EventType.call_ended: {
        "reason": "caller_hung_up",
        "outcome": "answered",
        "queue": "repairs",
        "duration": 81.234,
    },
    EventType.slot_failed: {"reason": "slot process exited with code -9"},
    EventType.originated: {
        "number": "13800138000",
        "purpose": "callback",
        "mode": "survey",
        "ticket_id": None,
        "callback_id": 3,
    },
    EventType.announced: {
        "queue": "repairs",
        "position": 2,
        "expected_wait": 40,
        "source": "engine",
    },
    EventType.command_failed: {
        "command_id": "c-9",
        "command": "transfer",
        "reason": "no such agent",
        "kind": "agent",
        "mode": "consult",
        "agent_id": 2,
    },
    EventType.call_reserved: {
        "queue": "repairs",
        "agent_id": 1,
        "agent_uri": "sip:1001@127.0.0.1",
        "callback": True,
        "offer": 2,
    },
    EventType.call_overflowed: {
        "from_queue": "repairs",
        "to_queue": "general",
        "reason": "wait",
        "waited": 120,
    },
    EventType.callback_scheduled: {"queue": "repairs", "number": "13800138000", "position": 1},
    EventType.wrap_up_ended: {"agent_id": 1, "disposition": "resolved", "by": "routing"},
    EventType.call_refused: {
        "caller": "13900000001",
        "did": "4008001234",
        "reason": "no_slot",
        "source": "127.0.0.3",
    },
}


def entry(kind: EventType, data: dict[str, Any]) -> dict[str, str]:
    return CallEvent(
        type=kind.value, call_id="call-1", slot="slot3", node="main", at=AT, data=data
    ).to_fields()


def test_every_event_type_has_a_class_and_a_sample() -> None:
    assert set(EVENT_CLASSES) == set(EventType)
    assert set(SAMPLES) == set(EventType)
    assert all(cls.TYPE is kind for kind, cls in EVENT_CLASSES.items())


@pytest.mark.parametrize("kind", list(EventType), ids=str)
def test_round_trip_keeps_the_entry(kind: EventType) -> None:
    wire = entry(kind, SAMPLES[kind])
    event = from_wire(wire)
    assert type(event) is EVENT_CLASSES[kind]
    assert event.type is kind
    assert (event.call_id, event.slot, event.node, event.at) == ("call-1", "slot3", "main", AT)
    back = event.to_wire()
    assert {k: v for k, v in back.items() if k != "data"} == {
        k: v for k, v in wire.items() if k != "data"
    }
    assert json.loads(back["data"]) == SAMPLES[kind]
    # bytes as redis-py returns them read the same
    raw = {k.encode(): v.encode() for k, v in wire.items()}
    assert from_wire(raw) == event


def test_fields_are_read_into_attributes_and_unknown_keys_ride_along() -> None:
    event = from_wire(entry(EventType.recording_stopped, SAMPLES[EventType.recording_stopped]))
    assert isinstance(event, events.RecordingStopped)
    assert (event.size, event.sha256, event.status, event.paused) == (0, None, "failed", None)
    newer = from_wire(entry(EventType.agent_ringing, {"agent_uri": "sip:1@h", "ring_no": 2}))
    assert isinstance(newer, events.AgentRinging) and newer.extra == {"ring_no": 2}
    assert json.loads(newer.to_wire()["data"]) == {"agent_uri": "sip:1@h", "ring_no": 2}


def test_an_entry_lacking_a_required_key_reads_it_as_none_and_is_written_back_as_it_was() -> None:
    wire = entry(EventType.agent_answered, {"agent_id": 1})
    event = from_wire(wire)
    assert isinstance(event, events.AgentAnswered)
    assert (event.agent_uri, event.agent_id) == (None, 1)
    assert event.to_wire() == wire


def test_a_written_event_leaves_out_optional_keys_it_does_not_have() -> None:
    event = events.CallEnded(call_id="c", reason="caller_hung_up", outcome=None)
    assert json.loads(event.to_wire()["data"]) == {"reason": "caller_hung_up", "outcome": None}


def test_bad_entries_are_refused_with_the_reason() -> None:
    with pytest.raises(InvalidEvent, match="'call_exploded' is not an EventType"):
        from_wire(entry(EventType.held, {}) | {"type": "call_exploded"})
    with pytest.raises(InvalidEvent, match="data is list"):
        from_wire(entry(EventType.held, {}) | {"data": "[1]"})
    with pytest.raises(InvalidEvent, match="not an event entry"):
        from_wire({"type": "held"})
