"""Calls the edge turns away are reported: one ``call_refused`` event each on the center's
events stream (the metrics and call records count them, docs/metrics.md "refused"), with the
reason, the caller and the number dialled; a hostile From never reaches the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from callcenter.events import CallRefused, from_call_event
from callcenter.streams import CallEvent
from tests.edge.conftest import DID, EdgeFactory, Sipp, wait_for

pytestmark = pytest.mark.sip

CALLER = "127.0.0.3"


def refused(client: redis.Redis) -> list[CallEvent]:
    entries: Any = client.xrange("cc:events")
    events = [CallEvent.from_fields(fields) for _id, fields in entries]
    return [e for e in events if e.type == "call_refused"]


def test_busy_and_unknown_number_are_reported_as_refused_calls(
    start_edge: EdgeFactory, sipp: Sipp, redis_client: redis.Redis
) -> None:
    start_edge([])  # no line at all: every call to the DID is turned away busy
    busy = sipp.run(
        sipp.scenario("invite_rejected.xml", 486), f"{CALLER}:15301", "-m", "1", "-s", DID
    )
    assert busy.ok(), busy.errors
    unknown = sipp.run(
        sipp.scenario("invite_rejected.xml", 404), f"{CALLER}:15301", "-m", "1", "-s", "4009999999"
    )
    assert unknown.ok(), unknown.errors
    wait_for(lambda: len(refused(redis_client)) == 2, 5, "both refusals reported")
    events = refused(redis_client)
    by_reason = {e.data["reason"]: e for e in events}
    assert set(by_reason) == {"no_slot", "unknown_did"}
    assert by_reason["no_slot"].data == {
        "caller": "13800138000",
        "did": DID,
        "reason": "no_slot",
        "source": CALLER,
    }
    assert by_reason["unknown_did"].data["did"] == "4009999999"
    for event in events:
        assert event.node == "edge" and event.call_id.startswith("refused-")
        assert len(event.call_id) == len("refused-") + 32  # a hash of the SIP Call-ID
        typed = from_call_event(event)
        assert isinstance(typed, CallRefused) and typed.caller == "13800138000"
        assert event.at.endswith("+00:00")  # ISO 8601 in UTC, as the engine writes


def test_a_hostile_from_is_not_copied(
    start_edge: EdgeFactory, sipp: Sipp, redis_client: redis.Redis, tmp_path: Path
) -> None:
    start_edge([])
    # a From user trying to close the JSON string and add its own reason (escaped, so the
    # request still parses and reaches the routing logic)
    scenario = sipp.scenario("invite_rejected.xml", 486, caller="138%22%7D%2C%22reason%22")
    result = sipp.run(scenario, f"{CALLER}:15301", "-m", "1", "-s", DID)
    assert result.ok(), result.errors
    wait_for(lambda: refused(redis_client), 5, "the refusal reported")
    (event,) = refused(redis_client)
    assert event.data == {"caller": "", "did": DID, "reason": "no_slot", "source": CALLER}
    json.dumps(event.data)  # it parsed: the From did not break the JSON
