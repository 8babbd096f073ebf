"""Consultation (attended transfer) in routing and on the desktops, through the real Redis
contract: the API sends the commands, the test publishes the engine's events as the engine
does, the router applies them. Also: routing's ring timer withdraws the offer at the engine
before the call rings anyone else. (With real SIP: tests/engine/test_engine_consult.py and
tests/cti/test_e2e_consult.py.)"""

from __future__ import annotations

import json
from typing import cast

from fastapi.testclient import TestClient

from callcenter.context import AppContext
from cti.router import Router
from cti.routing import Routing
from tests.conftest import auth
from tests.cti.conftest import EngineSide, TestClock, agent_ids, until
from tests.cti.test_routing import ready


def on_call(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, call_id: str
) -> tuple[int, int]:
    """1001 answers a repair call; 1002 is ready (the consultation target)."""
    ids = agent_ids(ctx)
    first, second = ids["1001"], ids["1002"]
    client.put("/api/v1/agents/me/state", headers=auth(client, "1001"), json={"state": "ready"})
    engine.queue(call_id, "repair")
    router.drain()
    engine.publish("agent_answered", call_id, agent_id=first)
    router.drain()
    client.put("/api/v1/agents/me/state", headers=auth(client, "1002"), json={"state": "ready"})
    return first, second


def start_consult(
    client: TestClient, router: Router, engine: EngineSide, call_id: str, target: int
) -> None:
    response = client.post(
        "/api/v1/agents/me/call/consult",
        headers=auth(client, "1001"),
        json={"kind": "agent", "target": "1002", "action": "start"},
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["mode"], data["agent_id"], data["target"]) == (
        "consult",
        target,
        "sip:1002@127.0.0.1:5060",
    )
    # what the engine reports: the caller on hold, the target's phone ringing
    engine.publish("held", call_id, reason="consult")
    engine.publish(
        "consult_started",
        call_id,
        kind="agent",
        to=data["target"],
        target_uri=data["target"],
        agent_id=target,
        ring_timeout=15,
    )
    router.drain()


def test_consult_an_agent_then_complete(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    first, second = on_call(client, ctx, router, engine, "c1")
    headers = {1: auth(client, "1001"), 2: auth(client, "1002")}
    with (
        client.websocket_connect("/api/v1/agents/me/events", headers=headers[1]) as ws1,
        client.websocket_connect("/api/v1/agents/me/events", headers=headers[2]) as ws2,
    ):
        until(ws1, "state")
        until(ws2, "state")
        start_consult(client, router, engine, "c1", second)
        assert routing.agent(first)["state"] == "on_hold"
        assert routing.agent(second)["state"] == "reserved"
        assert routing.call("c1")["transfer_to"] == str(second)
        assert until(ws1, "consult_started")["target_agent_id"] == second
        offer = until(ws2, "consult_offer")
        assert (offer["from_agent_id"], offer["caller"], offer["queue"]) == (
            first,
            "13911112222",
            "repair",
        )
        # a second consultation while one is pending is refused
        again = client.post(
            "/api/v1/agents/me/call/consult",
            headers=headers[1],
            json={"kind": "agent", "target": "1003", "action": "start"},
        )
        assert again.status_code == 409
        engine.publish("consult_answered", "c1", kind="agent", agent_id=second)
        router.drain()
        assert routing.agent(second)["state"] == "on_call"
        assert routing.agent(second)["call_id"] == "c1"
        assert routing.call("c1")["agent"] == str(first)  # still the consulting agent's call
        assert until(ws1, "consult_answered")["target_agent_id"] == second
        assert until(ws2, "consult_answered")["call_id"] == "c1"
        # the target does not control the call during the consultation
        refused = client.post("/api/v1/agents/me/call/hold", headers=headers[2])
        assert refused.status_code == 409 and "consult" in refused.json()["message"]
        complete = client.post(
            "/api/v1/agents/me/call/consult",
            headers=headers[1],
            json={"kind": "agent", "target": "1002", "action": "complete"},
        )
        assert complete.status_code == 200 and complete.json()["data"]["mode"] == "complete"
        engine.publish(
            "transferred",
            "c1",
            kind="agent",
            to="sip:1002@127.0.0.1:5060",
            agent_id=second,
            consult=True,
        )
        engine.publish("bridged", "c1", agent_id=second)
        router.drain()
        assert routing.agent(first)["state"] == "wrap_up"
        assert routing.agent(second)["state"] == "on_call"
        assert routing.call("c1")["agent"] == str(second)
        assert routing.call("c1")["transfer_to"] == ""
        told = until(ws1, "transferred")
        assert (told["consult"], told["from_agent_id"], told["agent_id"]) == (True, first, second)
        assert until(ws2, "transferred")["agent_id"] == second
        assert until(ws1, "ended")["call_id"] == "c1"  # wrap-up for the consulting agent
        # the new owner controls the call now
        assert client.post("/api/v1/agents/me/call/hold", headers=headers[2]).status_code == 200
        engine.publish("call_ended", "c1")
        router.drain()
        assert routing.agent(second)["state"] == "wrap_up"
        assert until(ws2, "ended")["call_id"] == "c1"
    assert [c.type for c in engine.commands("c1")] == ["offer", "transfer", "transfer", "hold"]


def test_consult_cancelled_or_target_hung_up_puts_the_target_back_to_ready(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    first, second = on_call(client, ctx, router, engine, "c2")
    for reason in ("cancelled", "target_hung_up"):
        start_consult(client, router, engine, "c2", second)
        engine.publish("consult_answered", "c2", kind="agent", agent_id=second)
        router.drain()
        assert routing.agent(second)["state"] == "on_call"
        engine.publish(
            "consult_ended", "c2", kind="agent", agent_id=second, reason=reason, answered=True
        )
        engine.publish("unheld", "c2", reason="consult_ended")
        router.drain()
        assert routing.agent(second)["state"] == "ready"
        assert routing.agent(second)["reason"] is None
        assert routing.agent(first)["state"] == "on_call"  # back with the caller
        assert routing.call("c2")["transfer_to"] == ""
    entries = cast(list[tuple[str, dict[str, str]]], ctx.redis.xrange(ctx.keys.agent_events))
    changes = [
        json.loads(fields["data"])["transition"]
        for _id, fields in entries
        if fields["type"] == "agent_state_changed" and fields["agent_id"] == str(second)
    ]
    assert changes.count("end_consult") == 2


def test_consult_not_answered_is_a_missed_offer_declined_is_not(
    client: TestClient,
    ctx: AppContext,
    router: Router,
    engine: EngineSide,
    routing: Routing,
) -> None:
    first, second = on_call(client, ctx, router, engine, "c3")
    start_consult(client, router, engine, "c3", second)
    engine.publish("consult_ended", "c3", kind="agent", agent_id=second, reason="declined")
    router.drain()
    assert routing.agent(second)["state"] == "ready"
    assert routing.agent(second)["misses_in_a_row"] == 0
    start_consult(client, router, engine, "c3", second)
    engine.publish("consult_ended", "c3", kind="agent", agent_id=second, reason="no_answer")
    engine.publish("unheld", "c3", reason="consult_ended")
    router.drain()
    target = routing.agent(second)
    assert (target["state"], target["reason"], target["misses_in_a_row"]) == (
        "not_ready",
        "missed",
        1,
    )
    assert routing.agent(first)["state"] == "on_call"
    assert routing.call("c3")["state"] == "connected"  # the caller is still the agent's


def test_caller_leaving_during_a_consultation_frees_both_agents(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    first, second = on_call(client, ctx, router, engine, "c4")
    start_consult(client, router, engine, "c4", second)
    engine.publish("consult_answered", "c4", kind="agent", agent_id=second)
    router.drain()
    # another router may apply call_ended before consult_ended: the end alone frees the target
    engine.publish("caller_hung_up", "c4")
    engine.publish("call_ended", "c4", reason="caller_hung_up")
    router.drain()
    assert routing.agent(first)["state"] == "wrap_up"
    assert routing.agent(second)["state"] == "ready"
    engine.publish("consult_ended", "c4", kind="agent", agent_id=second, reason="caller_hung_up")
    router.drain()
    assert routing.agent(second)["state"] == "ready"  # late: ignored


def test_the_engine_refusing_a_consultation_releases_the_target(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    first, second = on_call(client, ctx, router, engine, "c6")
    with client.websocket_connect("/api/v1/agents/me/events", headers=auth(client, "1001")) as ws:
        until(ws, "state")
        response = client.post(
            "/api/v1/agents/me/call/consult",
            headers=auth(client, "1001"),
            json={"kind": "agent", "target": "1002", "action": "start"},
        )
        command = response.json()
        assert routing.agent(second)["state"] == "reserved"
        engine.publish(
            "command_failed",
            "c6",
            command_id=command["command_id"],
            command="transfer",
            kind="agent",
            mode="consult",
            agent_id=second,
            reason="no line left for a consultation (4 per slot)",
        )
        router.drain()
        assert routing.agent(second)["state"] == "ready"
        assert routing.call("c6")["transfer_to"] == ""
        failed = until(ws, "command_failed")
        assert failed["command_id"] == command["command_id"] and "no line" in failed["reason"]
    assert routing.agent(first)["state"] == "on_call"


def test_target_hanging_up_from_the_desktop_ends_only_the_consultation(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    first, second = on_call(client, ctx, router, engine, "c7")
    start_consult(client, router, engine, "c7", second)
    engine.publish("consult_answered", "c7", kind="agent", agent_id=second)
    router.drain()
    response = client.post("/api/v1/agents/me/call/hangup", headers=auth(client, "1002"))
    assert response.status_code == 200
    # the engine sees the target's agent_id and ends the consultation, not the call
    assert response.json()["data"] == {"by": "agent", "agent_id": second}
    assert routing.agent(first)["state"] == "on_hold"


def test_ring_timer_withdraws_the_offer_before_the_next_agent_is_offered(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    """Routing's backstop fired (the engine had not reported the miss): the slot gets
    ``cancel_offer`` for the first agent before the ``offer`` for the next one."""
    first, second = ready(ctx, clock, "1001", "1002")
    engine.queue("w1", "repair")
    router.drain()
    clock.advance(18.5)  # past the 15 s ring timeout and the 3 s grace
    router.drain()
    sent = [(c.type, c.data.get("agent_id")) for c in engine.commands("w1")]
    assert sent == [("offer", first), ("cancel_offer", first), ("offer", second)]
    assert routing.agent(first)["reason"] == "missed"
    # the engine's own report of that miss comes after: nothing changes twice
    engine.publish("agent_missed", "w1", agent_id=first, reason="ring_timeout")
    router.drain()
    assert routing.agent(second)["state"] == "reserved"
    assert routing.agent(first)["misses_in_a_row"] == 1
    # no next agent: the withdrawal alone (the caller waits again)
    clock.advance(18.5)
    router.drain()
    sent = [(c.type, c.data.get("agent_id")) for c in engine.commands("w1")]
    assert sent[-1] == ("cancel_offer", second)
    assert routing.call("w1")["state"] == "waiting"


def test_consult_a_configured_number_then_complete(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    first, _second = on_call(client, ctx, router, engine, "n1")
    headers = auth(client, "1001")
    bad = client.post(
        "/api/v1/agents/me/call/consult",
        headers=headers,
        json={"kind": "number", "target": "13900000000", "action": "start"},
    )
    assert bad.status_code == 422 and "configured" in bad.json()["message"]
    response = client.post(
        "/api/v1/agents/me/call/consult",
        headers=headers,
        json={"kind": "number", "target": "property_office", "action": "start"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["number"] == "02161230000"
    assert routing.call("n1")["state"] == "connected"  # nothing reserved for a number
    engine.publish("held", "n1", reason="consult")
    engine.publish("consult_started", "n1", kind="number", to="property_office", agent_id=None)
    engine.publish("consult_answered", "n1", kind="number", to="property_office", agent_id=None)
    router.drain()
    assert routing.agent(first)["state"] == "on_hold"
    engine.publish("transferred", "n1", kind="number", to="property_office", consult=True)
    router.drain()
    assert routing.agent(first)["state"] == "wrap_up"
    assert routing.call("n1")["state"] == "transferred"


def test_a_consult_answer_reported_after_routings_backstop_still_counts(
    client: TestClient,
    ctx: AppContext,
    clock: TestClock,
    router: Router,
    engine: EngineSide,
    routing: Routing,
) -> None:
    """Routing's ring timer gave up on the target (the engine had not reported yet), but the
    target had picked up: they talk with the agent, so the answer is what counts, as for a
    caller's late answer. Before, the target stayed not ready ``missed`` while on the phone."""
    first, second = on_call(client, ctx, router, engine, "c9")
    start_consult(client, router, engine, "c9", second)
    clock.advance(18.5)  # past the 15 s ring timeout and the 3 s grace
    router.drain()
    assert routing.agent(second)["reason"] == "missed"
    sent = [(c.type, c.data.get("agent_id")) for c in engine.commands("c9")]
    assert sent[-1] == ("cancel_offer", second)
    # the engine's answer arrives after that (its cancel_offer found the phone answered)
    engine.publish("consult_answered", "c9", kind="agent", agent_id=second)
    router.drain()
    target = routing.agent(second)
    assert (target["state"], target["call_id"], target["misses_in_a_row"]) == ("on_call", "c9", 0)
    assert routing.call("c9")["transfer_to"] == str(second)
    assert routing.call("c9")["agent"] == str(first)  # still the consulting agent's call
    # the hand-over then goes as usual
    engine.publish(
        "transferred",
        "c9",
        kind="agent",
        to="sip:1002@127.0.0.1:5060",
        agent_id=second,
        consult=True,
    )
    router.drain()
    assert routing.agent(first)["state"] == "wrap_up"
    assert routing.agent(second)["state"] == "on_call"
    assert routing.call("c9")["agent"] == str(second)


def test_a_late_consult_answer_does_not_take_a_target_already_on_another_call(
    client: TestClient,
    ctx: AppContext,
    clock: TestClock,
    router: Router,
    engine: EngineSide,
    routing: Routing,
) -> None:
    """The late answer counts only while the consultation is still open to that target: a
    second consultation to someone else, or the target gone on, leave it ignored."""
    _first, second = on_call(client, ctx, router, engine, "c10")
    start_consult(client, router, engine, "c10", second)
    clock.advance(18.5)
    router.drain()
    # 1001 consults 1003 instead; 1002's answer for the first attempt arrives late
    third = agent_ids(ctx)["1003"]
    client.put("/api/v1/agents/me/state", headers=auth(client, "1003"), json={"state": "ready"})
    response = client.post(
        "/api/v1/agents/me/call/consult",
        headers=auth(client, "1001"),
        json={"kind": "agent", "target": "1003", "action": "start"},
    )
    assert response.status_code == 200, response.text
    engine.publish("consult_started", "c10", kind="agent", agent_id=third, ring_timeout=15)
    router.drain()
    engine.publish("consult_answered", "c10", kind="agent", agent_id=second)
    router.drain()
    assert routing.agent(second)["state"] == "not_ready"
    assert routing.call("c10")["transfer_to"] == str(third)
    assert routing.agent(third)["state"] == "reserved"


def test_completing_before_the_target_answers_hands_the_ringing_offer_over(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    """Semi-attended transfer: 1001 completes while 1002's phone still rings. 1001 goes to
    wrap-up at once; the call waits for 1002 as after a blind transfer: 1002 answering takes
    it, 1002 not answering is a missed offer and the caller waits in line again."""
    first, second = on_call(client, ctx, router, engine, "c11")
    headers = auth(client, "1001")
    with client.websocket_connect("/api/v1/agents/me/events", headers=headers) as ws1:
        until(ws1, "state")
        start_consult(client, router, engine, "c11", second)
        complete = client.post(
            "/api/v1/agents/me/call/consult",
            headers=headers,
            json={"kind": "agent", "target": "1002", "action": "complete"},
        )
        assert complete.status_code == 200, complete.text
        # the engine drops 1001's leg and keeps 1002's phone ringing
        engine.publish(
            "transferred",
            "c11",
            kind="agent",
            to="sip:1002@127.0.0.1:5060",
            agent_id=second,
            consult=True,
            answered=False,
        )
        router.drain()
        told = until(ws1, "transferred")
        assert (told["consult"], told["answered"], told["agent_id"]) == (True, False, second)
    assert routing.agent(first)["state"] == "wrap_up"
    assert routing.agent(second)["state"] == "reserved"
    assert routing.call("c11")["state"] == "transferring"
    engine.publish("agent_answered", "c11", agent_id=second)
    router.drain()
    assert routing.agent(second)["state"] == "on_call"
    assert routing.call("c11")["agent"] == str(second)
    assert routing.call("c11")["state"] == "connected"

    # the same, but 1002 does not answer: the caller waits in the queue again
    client.post(
        "/api/v1/agents/me/wrap-up", headers=headers, json={"action": "end", "then_state": "ready"}
    )
    engine.publish("call_ended", "c11")
    router.drain()
    client.post(
        "/api/v1/agents/me/wrap-up",
        headers=auth(client, "1002"),
        json={"action": "end", "then_state": "ready"},
    )
    first, second = on_call(client, ctx, router, engine, "c12")
    start_consult(client, router, engine, "c12", second)
    client.post(
        "/api/v1/agents/me/call/consult",
        headers=headers,
        json={"kind": "agent", "target": "1002", "action": "complete"},
    )
    engine.publish(
        "transferred",
        "c12",
        kind="agent",
        to="sip:1002@127.0.0.1:5060",
        agent_id=second,
        consult=True,
        answered=False,
    )
    router.drain()
    engine.publish("agent_missed", "c12", agent_id=second, reason="ring_timeout")
    router.drain()
    assert (routing.agent(second)["state"], routing.agent(second)["reason"]) == (
        "not_ready",
        "missed",
    )
    assert routing.call("c12")["state"] == "waiting"
