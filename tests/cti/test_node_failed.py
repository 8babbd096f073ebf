"""A media node lost with its calls (host gone: supervisor and slots dead at once, nothing
published their end): the edge finds the node dead when its liveness key lapses, ends each of
its calls with ``node_failed``, routing releases the agents on them, the call records say
``node_failed``; the other node's calls are untouched. Real Redis, router and records consumer;
the engine's side is published as its slots publish it (``ivr/slot_streams.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from callcenter.context import AppContext
from callcenter.streams import CallEvent, EventType
from cti.models import Call
from cti.router import Router
from cti.routing import Routing
from ivr import node_calls, wav
from ivr.edge.membership import announce, dead_nodes, members
from ivr.records import CallRecordConsumer
from tests.cti.conftest import TestClock
from tests.cti.test_routing import ready


def slot_publishes(client: redis.Redis, ctx: AppContext, event: CallEvent) -> None:
    """As a slot's publisher does: the event and its side effects in one pipeline."""
    pipe: Any = client.pipeline(transaction=False)
    pipe.xadd(ctx.keys.events, event.to_fields())
    if event.type == EventType.call_arrived:
        pipe.set(ctx.keys.call_slot(event.call_id), event.slot)
    node_calls.track(pipe, ctx.keys, event)
    pipe.execute()


def test_a_dead_nodes_calls_end_as_node_failed_and_free_their_agents(
    ctx: AppContext,
    clock: TestClock,
    router: Router,
    routing: Routing,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    a1002, a1001, a1006 = ready(ctx, clock, "1002", "1001", "1006")
    recording = tmp_path / "c1.wav"
    recording.write_bytes(wav.header(0) + b"\x01\x00" * 8000)  # header never finished

    def call(call_id: str, slot: str) -> None:
        def emit(kind: str, **data: Any) -> None:
            slot_publishes(redis_client, ctx, CallEvent(kind, call_id, slot, "menu", data=data))

        emit(EventType.call_arrived, caller="13911112222", did="4008001234", direction="in")
        emit(EventType.call_queued, queue="repair", priority=0, skills=[], collected={},
             menu_path=["main", "repair"])  # fmt: skip
        router.drain()

    # c1 on the dead node, answered and recorded; c2 on the dead node, ringing its agent;
    # c3 on the surviving node, answered.
    call("c1", "nodec-s00")
    assert routing.call("c1")["agent"] == str(a1002)
    slot_publishes(redis_client, ctx, CallEvent(EventType.agent_answered, "c1", "nodec-s00",
                                                data={"agent_id": a1002}))  # fmt: skip
    slot_publishes(redis_client, ctx, CallEvent(EventType.recording_started, "c1", "nodec-s00",
                                                data={"recording_id": "r-c1",
                                                      "path": str(recording)}))  # fmt: skip
    call("c2", "nodec-s01")
    call("c3", "nodeb-s00")
    slot_publishes(redis_client, ctx, CallEvent(EventType.agent_answered, "c3", "nodeb-s00",
                                                data={"agent_id": a1006}))  # fmt: skip
    router.drain()
    assert [routing.agent(a)["state"] for a in (a1002, a1001, a1006)] == [
        "on_call", "reserved", "on_call"]  # fmt: skip

    # Both nodes announced; then nodec stops renewing (its host is gone).
    for node, slots in (("nodeb", ["sip:127.0.0.2:17200"]), ("nodec", ["sip:127.0.0.4:17300"])):
        announce(redis_client, ctx.keys.prefix, node, slots)
    assert dead_nodes(redis_client, ctx.keys.prefix) == []
    redis_client.delete(ctx.keys.prefix + ":edge:node:nodec:slots")  # its announcement lapsed
    assert set(members(redis_client, ctx.keys.prefix)) == {"nodeb"}
    assert dead_nodes(redis_client, ctx.keys.prefix) == []  # out of rotation, not yet dead
    redis_client.delete(node_calls.alive_key(ctx.keys, "nodec"))  # NODE_DEAD_AFTER_MS passed
    assert dead_nodes(redis_client, ctx.keys.prefix) == ["nodec"]
    assert dead_nodes(redis_client, ctx.keys.prefix) == []  # found dead once

    assert node_calls.reap(redis_client, ctx.keys, "nodec", by="test") == ["c1", "c2"]
    assert node_calls.reap(redis_client, ctx.keys, "nodec", by="test") == []  # ended once
    router.drain()

    entries: Any = redis_client.xrange(ctx.keys.events)
    ended = {
        f["call_id"]: CallEvent.from_fields(f).data
        for _id, f in entries
        if f["type"] == EventType.call_ended
    }
    assert set(ended) == {"c1", "c2"}
    assert {(d["outcome"], d["reason"]) for d in ended.values()} == {("node_failed", "node_failed")}
    stopped = [CallEvent.from_fields(f).data for _id, f in entries
               if f["type"] == EventType.recording_stopped]  # fmt: skip
    assert [(s["recording_id"], s["status"]) for s in stopped] == [("r-c1", "repaired")]
    assert wav.is_header_consistent(recording)

    # The agents on the dead node's calls are free (wrap-up after a talk, ready after an
    # offer), the agent on the other node's call still talks.
    assert routing.agent(a1002)["state"] == "wrap_up"
    assert routing.agent(a1001)["state"] == "ready"
    assert routing.agent(a1006)["state"] == "on_call"
    assert redis_client.hkeys(node_calls.calls_key(ctx.keys, "nodeb")) == ["c3"]

    CallRecordConsumer(ctx, consumer="test").run_once(block_ms=10)
    with ctx.sessions() as session:
        outcomes = {c.id: (c.outcome, c.end_reason) for c in session.query(Call)}
    assert outcomes["c1"] == outcomes["c2"] == ("node_failed", "node_failed")
    assert outcomes["c3"] == (None, None)


def test_a_node_started_again_ends_its_previous_lifes_calls(
    ctx: AppContext, redis_client: redis.Redis
) -> None:
    """``up``'s engine killed together with its slots and started again under the same name:
    before any slot runs it ends the calls its index still holds."""
    from ivr.supervisor import Supervisor

    slot_publishes(redis_client, ctx, CallEvent(EventType.call_arrived, "old1", "node1-s00",
                                                data={"caller": "13911112222"}))  # fmt: skip
    supervisor = Supervisor(ctx, {}, with_edge=False, with_records=False)
    supervisor.cut_calls.reap_previous_life()
    entries: Any = redis_client.xrange(ctx.keys.events)
    ended = [CallEvent.from_fields(f) for _id, f in entries if f["type"] == EventType.call_ended]
    assert [(e.call_id, e.data["outcome"]) for e in ended] == [("old1", "node_failed")]
    assert not redis_client.exists(node_calls.calls_key(ctx.keys, "node1"))
