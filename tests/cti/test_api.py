"""The desktop flow through the API and the event WebSocket (TestClient), the lead's actions,
and the screen pop's content."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from callcenter.context import AppContext
from cti.models import Call
from cti.router import Router
from cti.routing import Routing
from tests.conftest import auth, token
from tests.cti.conftest import EngineSide, TestClock, agent_ids, until
from ticketing.models import Ticket


def demo_customer_tickets(ctx: AppContext) -> None:
    with ctx.sessions() as session, session.begin():
        from cti.screenpop import find_customer

        customer = find_customer(session, "13800138000")
        assert customer is not None
        for n, (status, closed) in enumerate([("dispatched", None), ("closed", datetime.now(UTC))]):
            session.add(
                Ticket(
                    number=f"GD20261130-000{n}",
                    category="water_leak",
                    status=status,
                    reporter="张伟",
                    unit="3-2-1201",
                    what="卫生间漏水" if n == 0 else "门禁卡失效",
                    when_text="今天上午",
                    contact="13800138000",
                    customer_id=customer.id,
                    created_by="1001",
                    closed_at=closed,
                )
            )
        session.add(
            Call(
                id="earlier-call",
                caller_number="13800138000",
                customer_id=customer.id,
                queue_code="repair",
                outcome="answered",
                arrived_at=datetime.now(UTC) - timedelta(days=2),
            )
        )


def test_agent_desktop_flow_with_header_token(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    demo_customer_tickets(ctx)
    headers = auth(client, "1001")
    response = client.post("/api/v1/agents/me/login", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "not_ready"
    assert response.json()["queues"] == {"callback": 5, "general": 7, "repair": 9}
    again = client.post("/api/v1/agents/me/login", headers=headers)  # a reloaded desktop
    assert again.status_code == 200 and again.json()["since"] == response.json()["since"]
    with client.websocket_connect("/api/v1/agents/me/events", headers=headers) as ws:
        snapshot = until(ws, "state")
        assert snapshot["snapshot"] and snapshot["state"] == "not_ready"
        response = client.put("/api/v1/agents/me/state", headers=headers, json={"state": "ready"})
        assert response.json()["state"] == "ready"
        assert until(ws, "state")["state"] == "ready"
        idle = client.post("/api/v1/agents/me/call/recording/pause", headers=headers)
        assert idle.status_code == 409 and "no call in progress" in idle.json()["message"]
        engine.queue(
            "call-1",
            "repair",
            caller="+86 138-0013-8000",
            menu_path=["main", "repair_room", "repair"],
            collected={"room": "321201"},
        )
        router.drain()
        pop = until(ws, "offer")
        # The pop arrives while the phone rings: nobody has answered yet.
        assert routing.agent(pop["agent_id"])["state"] == "reserved"
        assert pop["call_id"] == "call-1"
        assert pop["caller"]["number"] == "13800138000"
        assert pop["customer"]["name"] == "张伟"
        assert pop["customer"]["member"] is True
        assert pop["customer"]["fee_status"] == "arrears"
        assert pop["customer"]["arrears_amount"] == "1280.00"
        assert [u["code"] for u in pop["customer"]["units"]] == ["3-2-1201"]
        assert [t["number"] for t in pop["open_tickets"]] == ["GD20261130-0000"]
        assert len(pop["recent_tickets"]) == 2
        assert [c["id"] for c in pop["recent_calls"]] == ["earlier-call"]
        assert pop["menu_path"] == ["main", "repair_room", "repair"]
        assert pop["digits"] == {"room": "321201"}
        assert pop["queue"]["code"] == "repair" and pop["queue"]["name"]["zh-CN"] == "报修"
        assert pop["wait_seconds"] == 0.0
        engine.publish("agent_answered", "call-1", agent_id=pop["agent_id"])
        router.drain()
        assert until(ws, "answered")["call_id"] == "call-1"
        assert client.get("/api/v1/agents/me", headers=headers).json()["state"] == "on_call"
        # PCI pause/resume: a command to the call's slot each, a repeat refused by name
        pause = "/api/v1/agents/me/call/recording/pause"
        resume = "/api/v1/agents/me/call/recording/resume"
        refused = client.post(resume, headers=headers)
        assert refused.status_code == 409 and "not paused" in refused.json()["message"]
        response = client.post(pause, headers=headers)
        assert response.status_code == 200 and response.json()["type"] == "pause_recording"
        assert response.json()["data"] == {"agent_id": pop["agent_id"]}
        refused = client.post(pause, headers=headers)
        assert refused.status_code == 409 and "already paused" in refused.json()["message"]
        assert client.post(resume, headers=headers).json()["type"] == "resume_recording"
        response = client.post("/api/v1/agents/me/call/hold", headers=headers)
        assert response.status_code == 200 and response.json()["type"] == "hold"
        response = client.post("/api/v1/agents/me/call/hangup", headers=headers)
        assert response.status_code == 200
        assert [c.type for c in engine.commands("call-1")] == [
            "offer",
            "pause_recording",
            "resume_recording",
            "hold",
            "hangup",
        ]
        engine.publish("call_ended", "call-1", reason="agent_hung_up", outcome="answered")
        router.drain()
        ended = until(ws, "ended")
        assert ended["wrap_up_seconds"] == 45
        response = client.post(
            "/api/v1/agents/me/wrap-up", headers=headers, json={"action": "extend", "seconds": 60}
        )
        assert response.status_code == 200 and response.json()["state"] == "wrap_up"
        response = client.post(
            "/api/v1/agents/me/wrap-up",
            headers=headers,
            json={"action": "end", "disposition": "ticket_created"},
        )
        assert response.json()["state"] == "ready"
        assert until(ws, "state")["state"] == "ready"
        response = client.post("/api/v1/agents/me/logout", headers=headers)
        assert response.json()["state"] == "logged_out"
    with ctx.sessions() as session:
        assert session.get(Call, "earlier-call") is not None


def test_websocket_bearer_header_and_refusals(client: TestClient, ctx: AppContext) -> None:
    bearer = token(client, "1002")
    with client.websocket_connect(
        "/api/v1/agents/me/events", headers={"Authorization": f"Bearer {bearer}"}
    ) as ws:
        assert until(ws, "state")["state"] == "logged_out"
        ws.send_text("ping")
        assert until(ws, "pong") == {"type": "pong"}
    assert refused_code(client, "/api/v1/agents/me/events") == 4401
    assert refused_code(client, "/api/v1/agents/me/events", "forged.token") == 4401
    # a token in the URL is not read at all (tokens do not travel in URLs)
    assert refused_code(client, f"/api/v1/agents/me/events?token={bearer}") == 4401
    qa = token(client, "qa1")
    assert refused_code(client, "/api/v1/agents/me/events", qa) == 4403


def refused_code(client: TestClient, url: str, bearer: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(url, headers=headers),
    ):
        pass
    return refused.value.code


def test_state_api_errors_are_clear(client: TestClient, ctx: AppContext) -> None:
    headers = auth(client, "1003")
    response = client.put("/api/v1/agents/me/state", headers=headers, json={"state": "not_ready"})
    assert response.status_code == 422 and "reason" in response.json()["message"]
    response = client.put(
        "/api/v1/agents/me/state", headers=headers, json={"state": "not_ready", "reason": "nap"}
    )
    assert response.status_code == 422 and "nap" in response.json()["message"]
    response = client.put("/api/v1/agents/me/state", headers=headers, json={"state": "asleep"})
    assert response.status_code == 422
    response = client.post("/api/v1/agents/me/call/hangup", headers=headers)
    assert response.status_code == 409 and response.json()["error_id"] == "calls.no-call"
    assert client.get("/api/v1/agents/me", headers=headers).json()["state"] == "logged_out"
    # The state change implies login when logged out.
    response = client.put(
        "/api/v1/agents/me/state", headers=headers, json={"state": "not_ready", "reason": "break"}
    )
    assert response.json()["state"] == "not_ready" and response.json()["reason"] == "break"
    response = client.post("/api/v1/agents/me/wrap-up", headers=headers, json={"action": "end"})
    assert response.status_code == 409 and "wrap" in response.json()["message"]
    response = client.post("/api/v1/agents/me/login", headers=auth(client, "qa1"))
    assert response.status_code == 403


def test_lead_actions(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    lead = auth(client, "lead1")
    agents = agent_ids(ctx)
    response = client.put(
        f"/api/v1/agents/{agents['1005']}/state", headers=lead, json={"state": "ready"}
    )
    assert response.status_code == 200 and response.json()["state"] == "ready"
    assert (
        client.put(
            f"/api/v1/agents/{agents['1005']}/state",
            headers=auth(client, "1001"),
            json={"state": "ready"},
        ).status_code
        == 403
    )
    listed = client.get("/api/v1/agents?state=ready", headers=lead).json()
    assert [a["extension"] for a in listed] == ["1005"]
    response = client.put(
        f"/api/v1/agents/{agents['1005']}/queues", headers=lead, json={"queues": {"fees": 4}}
    )
    assert response.json()["queues"] == {"fees": 4}
    bad = client.put(
        f"/api/v1/agents/{agents['1005']}/queues", headers=lead, json={"queues": {"nope": 4}}
    )
    assert bad.status_code == 422 and "nope" in bad.json()["message"]
    assert routing.agent(agents["1005"])["queues"] == {"fees": 4}
    engine.queue("lead-call", "fees")
    router.drain()
    engine.publish("agent_answered", "lead-call", agent_id=agents["1005"])
    router.drain()
    for mode in ("listen", "whisper", "barge"):
        response = client.post(
            "/api/v1/calls/lead-call/supervise",
            headers=lead,
            json={"mode": mode, "extension": "1012"},
        )
        assert response.status_code == 200, response.text
    sent = engine.commands("lead-call")
    assert [c.type for c in sent] == ["offer", "listen", "whisper", "barge"]
    assert sent[1].data["supervisor_uri"] == "sip:1012@127.0.0.1:5060"
    missing = client.post(
        "/api/v1/calls/no-such-call/supervise",
        headers=lead,
        json={"mode": "listen", "extension": "1012"},
    )
    assert missing.status_code == 409
    status = client.get("/api/v1/queues/status", headers=lead).json()
    fees = next(q for q in status["queues"] if q["queue"] == "fees")
    assert fees["agents_by_state"] == {"on_call": 1} and fees["stats"]["answered"] == 1
    assert status["staffing"]["alert"] is True
    assert client.get("/api/v1/shifts/staffing", headers=lead).json()["minimum"] == 8


def test_transfer_to_queue_agent_and_configured_number(
    client: TestClient,
    ctx: AppContext,
    router: Router,
    engine: EngineSide,
    routing: Routing,
    clock: TestClock,
) -> None:
    headers = auth(client, "1001")
    other = auth(client, "1002")
    agents = agent_ids(ctx)
    client.put("/api/v1/agents/me/state", headers=headers, json={"state": "ready"})
    engine.queue("tx", "repair")
    router.drain()
    engine.publish("agent_answered", "tx", agent_id=agents["1001"])
    router.drain()
    bad = client.post(
        "/api/v1/agents/me/call/transfer",
        headers=headers,
        json={"kind": "number", "target": "13900000000"},
    )
    assert bad.status_code == 422 and "configured" in bad.json()["message"]
    busy = client.post(
        "/api/v1/agents/me/call/transfer", headers=headers, json={"kind": "agent", "target": "1002"}
    )
    assert busy.status_code == 409  # 1002 is logged out
    client.put("/api/v1/agents/me/state", headers=other, json={"state": "ready"})
    response = client.post(
        "/api/v1/agents/me/call/transfer", headers=headers, json={"kind": "agent", "target": "1002"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["target"] == "sip:1002@127.0.0.1:5060"
    assert routing.agent(agents["1002"])["state"] == "reserved"
    engine.publish("transferred", "tx", kind="agent", to="1002")
    engine.publish("agent_answered", "tx", agent_id=agents["1002"])
    router.drain()
    assert routing.agent(agents["1001"])["state"] == "wrap_up"
    assert routing.agent(agents["1002"])["state"] == "on_call"
    response = client.post(
        "/api/v1/agents/me/call/transfer", headers=other, json={"kind": "queue", "target": "fees"}
    )
    assert response.status_code == 200
    engine.publish("transferred", "tx", kind="queue", to="fees")
    router.drain()
    assert routing.agent(agents["1002"])["state"] == "wrap_up"
    assert routing.call("tx")["queue"] == "fees" and routing.call("tx")["state"] == "waiting"


def test_transfer_to_a_configured_number(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    headers = auth(client, "1001")
    agent = agent_ids(ctx)["1001"]
    client.put("/api/v1/agents/me/state", headers=headers, json={"state": "ready"})
    for call_id, answered in (("num-1", False), ("num-2", True)):
        engine.queue(call_id, "repair")
        router.drain()
        engine.publish("agent_answered", call_id, agent_id=agent)
        router.drain()
        response = client.post(
            "/api/v1/agents/me/call/transfer",
            headers=headers,
            json={"kind": "number", "target": "property_office"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["data"]["number"] == "02161230000"
        # The engine drops the agent's leg at once: wrap-up starts now.
        assert routing.agent(agent)["state"] == "wrap_up"
        assert routing.call(call_id)["state"] == "transferring"
        if answered:
            engine.publish("transferred", call_id, kind="number", to="sip:02161230000@trunk")
            router.drain()
            assert routing.call(call_id)["state"] == "transferred"
        else:
            # Nobody answers at the number: the caller waits in line again.
            engine.publish("agent_missed", call_id, agent_uri="sip:02161230000@trunk")
            router.drain()
            assert routing.call(call_id)["state"] in {"waiting", "reserved"}
        services_ready = client.post(
            "/api/v1/agents/me/wrap-up", headers=headers, json={"action": "end"}
        )
        assert services_ready.json()["state"] in {"ready", "reserved"}
        router.drain()
        if not answered:
            assert engine.offers(call_id) == [agent, agent]
            engine.publish("agent_answered", call_id, agent_id=agent)
            engine.publish("call_ended", call_id)
            router.drain()
            client.post("/api/v1/agents/me/wrap-up", headers=headers, json={"action": "end"})


def test_click_to_call_rings_the_agent_first_via_the_trunk(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    headers = auth(client, "1001")
    client.post("/api/v1/agents/me/login", headers=headers)
    refused = client.post(
        "/api/v1/agents/me/click-to-call", headers=headers, json={"number": "13912345678"}
    )
    assert refused.status_code == 422 and "customers" in refused.json()["message"]
    response = client.post(
        "/api/v1/agents/me/click-to-call", headers=headers, json={"number": "138 0013 8000"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["number"] == "13800138000" and body["trunk"] == "telecom"
    (command,) = engine.engine_commands("originate")
    assert command.call_id == body["call_id"]
    assert command.data["agent_uri"] == "sip:1001@127.0.0.1:5060"
    assert command.data["purpose"] == "click_to_call" and command.data["trunk"] == "telecom"
    agent = agent_ids(ctx)["1001"]
    assert routing.agent(agent)["state"] == "reserved"
    engine.publish("agent_answered", body["call_id"], agent_id=agent)
    router.drain()
    assert routing.agent(agent)["state"] == "on_call"
    engine.publish("call_ended", body["call_id"])
    router.drain()
    assert routing.agent(agent)["state"] == "wrap_up"


def test_unknown_caller_pops_an_empty_record_to_fill_and_link(
    client: TestClient, ctx: AppContext, router: Router, engine: EngineSide
) -> None:
    headers = auth(client, "1001")
    client.put("/api/v1/agents/me/state", headers=headers, json={"state": "ready"})
    with client.websocket_connect("/api/v1/agents/me/events", headers=headers) as ws:
        engine.queue("unknown", "general", caller="021-5555 0101")
        router.drain()
        pop = until(ws, "offer")
    assert pop["customer"] is None
    assert pop["caller"] == {"raw": "021-5555 0101", "number": "02155550101", "kind": "landline"}
    assert pop["open_tickets"] == [] and pop["recent_calls"] == []
    assert pop["new_customer"]["phone"] == "02155550101"
    created = client.post(
        "/api/v1/customers",
        headers=headers,
        json={"name": "李雷", "phone": pop["new_customer"]["phone"], "unit": "5-1-0302"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["units"][0]["code"] == "5-1-0302"
    again = client.post(
        "/api/v1/customers", headers=headers, json={"name": "重复", "phone": "02155550101"}
    )
    assert again.status_code == 409
    found = client.get("/api/v1/customers/lookup?number=02155550101", headers=headers).json()
    assert found["customer"]["name"] == "李雷"
    linked = client.post(
        f"/api/v1/customers/{found['customer']['id']}/phones",
        headers=headers,
        json={"phone": "+86 139 0000 1111"},
    )
    assert {p["number"] for p in linked.json()["phones"]} == {"02155550101", "13900001111"}
    taken = client.post(
        f"/api/v1/customers/{found['customer']['id']}/phones",
        headers=headers,
        json={"phone": "13800138000"},
    )
    assert taken.status_code == 409 and "13800138000" in taken.json()["message"]


def test_screen_pop_webhook_receives_the_same_payload(
    ctx: AppContext, router: Router, engine: EngineSide, clock: TestClock
) -> None:
    import http.server
    import json
    import threading

    received: list[dict[str, Any]] = []
    arrived = threading.Event()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()
            arrived.set()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ctx.settings.screen_pop_webhook_url = f"http://127.0.0.1:{server.server_port}/pop"
        from cti import services

        agent = agent_ids(ctx)["1001"]
        services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="t")
        engine.queue("hooked", "general", caller="13800138000")
        router.drain()
        assert arrived.wait(10)
        stored = ctx.redis.get(ctx.keys.routing("call:hooked:pop"))
        assert received[0] == json.loads(str(stored))
        assert received[0]["customer"]["name"] == "张伟"
    finally:
        server.shutdown()
        server.server_close()


def test_openapi_documents_the_cti_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/v1/agents/me/login",
        "/api/v1/agents/me/state",
        "/api/v1/agents/me/logout",
        "/api/v1/agents/me/call/transfer",
        "/api/v1/agents/me/wrap-up",
        "/api/v1/agents/me/click-to-call",
        "/api/v1/agents/{agent_id}/queues",
        "/api/v1/calls/{call_id}/supervise",
        "/api/v1/queues/status",
        "/api/v1/customers",
    ):
        assert path in paths, path


def test_lead_socket_shows_staffing_alert_and_agent_states(
    client: TestClient, ctx: AppContext, router: Router
) -> None:
    bearer = token(client, "lead1")
    assert refused_code(client, "/api/v1/leads/events", token(client, "1001")) == 4403
    with client.websocket_connect(
        "/api/v1/leads/events", headers={"Authorization": f"Bearer {bearer}"}
    ) as ws:
        first = until(ws, "staffing")
        assert first["alert"] is True and first["minimum"] == 8
        headers = auth(client, "1003")
        client.put("/api/v1/agents/me/state", headers=headers, json={"state": "ready"})
        change = until(ws, "state")
        assert (change["agent_id"], change["state"]) == (agent_ids(ctx)["1003"], "not_ready")
        assert until(ws, "state")["state"] == "ready"
        router._last_alert = False  # as if the alert had been off: the router announces it
        router.check_staffing()
        assert "below the minimum of 8" in until(ws, "staffing")["message"]
