"""Consultation end to end with real SIP: a SIPp caller through the Kamailio edge and the
engine's menu, routing (the router as in production) gives the call to 1001, whose desktop
consults 1002 through the API; both softphones are SIPp UAS registered at the edge. Checked:
the engine's events, both desktops' messages and both agents' routing states."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from callcenter.app import create_app
from callcenter.context import AppContext
from callcenter.testkit.config import queues_toml
from callcenter.testkit.scenarios import agent_scenario, caller_scenario, ringing_scenario
from callcenter.testkit.sipp import finished, sipp
from cti import services
from cti.routing import Routing
from tests.conftest import TEST_REDIS_URL, auth
from tests.cti import sipcases
from tests.cti.conftest import ZONE, Running, agent_ids, until
from tests.engine.conftest import (  # noqa: F401 (fixtures used by name)
    EngineProcess,
    call_events,
    engine_config_dir,
    events,
    pcaps,
    prompt_cache,
    start_engine,
    wait_for,
)

pytestmark = [pytest.mark.sip, pytest.mark.usefixtures("no_sipp_left")]

EDGE_PORT = 17050
EDGE = f"127.0.0.1:{EDGE_PORT}"
AGENT_IP = "127.0.0.4"
PHONES = {"1001": (17611, 17612, 47170), "1002": (17613, 17614, 47180)}  # register, SIP, RTP
# general rings an agent 4 s (routing's backstop 3 s later): the consultation target too
SHORT_RING = queues_toml(general={"ring_timeout_seconds": 4})


def register(tmp_path: Path, user: str) -> None:
    register_port, sip_port, _media = PHONES[user]
    sipcases.register(
        tmp_path,
        EDGE,
        user,
        f"pw{user}",
        ip=AGENT_IP,
        contact_port=sip_port,
        local_port=register_port,
    )


def softphone(tmp_path: Path, user: str, scenario: Path) -> subprocess.Popen[bytes]:
    _register, sip_port, media = PHONES[user]
    return sipp(
        scenario,
        "127.0.0.1:9",  # a UAS: the target is not used
        local_port=sip_port,
        media_port=media,
        cwd=tmp_path,
        local_ip=AGENT_IP,
    )


@pytest.fixture
def center(
    start_engine: Callable[..., EngineProcess],  # noqa: F811
    ctx: AppContext,
    tmp_path: Path,
) -> Iterator[tuple[Routing, dict[str, int], TestClient]]:
    """Engine + edge, the router in real time (the wall clock read as 10:00 in Shanghai, so
    the day shift is on), the API, 1001 and 1002 registered at the edge."""
    start_engine(
        lines=2,
        spares=2,
        edge=True,
        edge_port=EDGE_PORT,
        slot_base_port=17100,
        rtp_base_port=42000,
    )
    ctx.settings.sip.edge_port = EDGE_PORT  # routing dials agents at this edge
    now = time.time()
    offset = datetime.fromtimestamp(now, ZONE).replace(hour=10, minute=0).timestamp() - now
    routing = Routing(ctx.redis, ctx.keys, ctx.config, clock=lambda: time.time() + offset)
    services.use_routing(ctx, routing)
    running = Running(ctx, routing, "router-e2e-consult")
    try:
        register(tmp_path, "1001")
        register(tmp_path, "1002")
        with TestClient(create_app(ctx)) as client:
            yield routing, agent_ids(ctx), client
    finally:
        running.halt()


def call_to_1001(
    tmp_path: Path,
    client: TestClient,
    ws1: WebSocketTestSession,
    pcaps: dict[str, Path],  # noqa: F811
) -> tuple[subprocess.Popen[bytes], str]:
    """1001 ready; a caller presses 0 (general), 1001's softphone answers."""
    response = client.put(
        "/api/v1/agents/me/state", headers=auth(client, "1001"), json={"state": "ready"}
    )
    assert response.json()["state"] == "ready"
    steps: list[tuple[str, object]] = [("pause", 800), ("dtmf", "0"), ("audio", pcaps["caller"])]
    caller = sipp(
        caller_scenario(tmp_path / "caller.xml", [*steps, ("wait_bye", 0)]),
        EDGE,
        local_port=17523,
        media_port=47160,
        cwd=tmp_path,
        local_ip="127.0.0.3",
    )

    def seen() -> list[tuple[str, str, Any]]:
        client_redis = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
        return [(e.type, e.call_id[-10:], e.data) for _i, e in events(client_redis)]

    try:
        call_id = str(until(ws1, "offer", seconds=30)["call_id"])
        answered = until(ws1, "answered", seconds=20)
    except TimeoutError:
        raise AssertionError(f"1001 did not get the call; events: {seen()}") from None
    assert answered["call_id"] == call_id, seen()
    return caller, call_id


def consult(client: TestClient, action: str) -> dict[str, Any]:
    response = client.post(
        "/api/v1/agents/me/call/consult",
        headers=auth(client, "1001"),
        json={"kind": "agent", "target": "1002", "action": action},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def types(client: redis.Redis, call_id: str) -> list[str]:
    return [e.type for e in call_events(client, call_id)]


@pytest.mark.queues_toml(SHORT_RING)
def test_consult_1002_then_complete_hands_the_caller_over(
    center: tuple[Routing, dict[str, int], TestClient],
    redis_client: redis.Redis,
    tmp_path: Path,
    pcaps: dict[str, Path],  # noqa: F811
) -> None:
    routing, ids, client = center
    phone1 = softphone(tmp_path, "1001", agent_scenario(tmp_path / "a1.xml", pcaps["agent"]))
    phone2 = softphone(
        tmp_path, "1002", agent_scenario(tmp_path / "a2.xml", pcaps["agent"], answer_after_ms=1000)
    )
    headers1, headers2 = auth(client, "1001"), auth(client, "1002")
    with (
        client.websocket_connect("/api/v1/agents/me/events", headers=headers1) as ws1,
        client.websocket_connect("/api/v1/agents/me/events", headers=headers2) as ws2,
    ):
        until(ws1, "state")
        until(ws2, "state")
        caller, call_id = call_to_1001(tmp_path, client, ws1, pcaps)
        client.put("/api/v1/agents/me/state", headers=headers2, json={"state": "ready"})
        consult(client, "start")
        assert until(ws1, "consult_started")["target_agent_id"] == ids["1002"]
        assert until(ws2, "consult_offer")["from_agent_id"] == ids["1001"]
        until(ws2, "consult_answered", seconds=15)
        until(ws1, "consult_answered")
        wait_for(lambda: routing.agent(ids["1002"])["state"] == "on_call", 5, "1002 on call")
        assert routing.agent(ids["1001"])["state"] == "on_hold"  # the caller hears music
        consult(client, "complete")
        transferred = until(ws1, "transferred", seconds=15)
        assert (transferred["consult"], transferred["agent_id"]) == (True, ids["1002"])
        assert until(ws1, "ended")["call_id"] == call_id  # 1001: wrap-up
        assert until(ws2, "transferred")["from_agent_id"] == ids["1001"]
        wait_for(lambda: routing.call(call_id).get("agent") == str(ids["1002"]), 5, "hand-over")
        assert routing.agent(ids["1001"])["state"] == "wrap_up"
        assert routing.agent(ids["1002"])["state"] == "on_call"
        finished(phone1)  # 1001's leg got its BYE
        bridged = [e.data for e in call_events(redis_client, call_id) if e.type == "bridged"]
        assert [b["agent_id"] for b in bridged] == [ids["1001"], ids["1002"]]
        # the new owner hangs up from the desktop: the call ends, 1002 goes to wrap-up
        assert client.post("/api/v1/agents/me/call/hangup", headers=headers2).status_code == 200
        assert until(ws2, "ended", seconds=15)["call_id"] == call_id
        assert routing.agent(ids["1002"])["state"] == "wrap_up"
        finished(caller)
        finished(phone2)
    sequence = types(redis_client, call_id)
    for earlier, later in (
        ("agent_answered", "held"),
        ("held", "consult_started"),
        ("consult_started", "consult_answered"),
        ("consult_answered", "transferred"),
        ("transferred", "call_ended"),
    ):
        assert sequence.index(earlier) < sequence.index(later), sequence
    assert "consult_ended" not in sequence


@pytest.mark.queues_toml(SHORT_RING)
def test_consult_not_answered_then_cancelled_brings_1001_back(
    center: tuple[Routing, dict[str, int], TestClient],
    redis_client: redis.Redis,
    tmp_path: Path,
    pcaps: dict[str, Path],  # noqa: F811
) -> None:
    routing, ids, client = center
    phone1 = softphone(tmp_path, "1001", agent_scenario(tmp_path / "a1.xml", pcaps["agent"]))
    ringing = softphone(tmp_path, "1002", ringing_scenario(tmp_path / "ring.xml", None))
    headers1, headers2 = auth(client, "1001"), auth(client, "1002")
    with (
        client.websocket_connect("/api/v1/agents/me/events", headers=headers1) as ws1,
        client.websocket_connect("/api/v1/agents/me/events", headers=headers2) as ws2,
    ):
        until(ws1, "state")
        until(ws2, "state")
        caller, call_id = call_to_1001(tmp_path, client, ws1, pcaps)
        client.put("/api/v1/agents/me/state", headers=headers2, json={"state": "ready"})
        consult(client, "start")
        until(ws2, "consult_offer")
        # 1002's phone rings 4 s, nobody answers: the engine gives up, routing counts a miss
        ended = until(ws1, "consult_ended", seconds=15)
        assert (ended["reason"], ended["answered"]) == ("no_answer", False)
        assert until(ws2, "missed")["call_id"] == call_id
        wait_for(lambda: routing.agent(ids["1001"])["state"] == "on_call", 5, "1001 unheld")
        target = routing.agent(ids["1002"])
        assert (target["state"], target["reason"]) == ("not_ready", "missed")
        assert routing.call(call_id)["transfer_to"] == ""
        finished(ringing)  # it got the CANCEL
        # 1002 back, consulted again, answers; 1001 cancels: 1002 ready, the caller back
        phone2 = softphone(tmp_path, "1002", agent_scenario(tmp_path / "a2.xml", pcaps["agent"]))
        client.put("/api/v1/agents/me/state", headers=headers2, json={"state": "ready"})
        consult(client, "start")
        until(ws1, "consult_answered", seconds=15)
        wait_for(lambda: routing.agent(ids["1002"])["state"] == "on_call", 5, "1002 on call")
        consult(client, "cancel")
        cancelled = until(ws1, "consult_ended", seconds=15)
        assert (cancelled["reason"], cancelled["answered"]) == ("cancelled", True)
        assert until(ws2, "consult_ended")["reason"] == "cancelled"
        wait_for(lambda: routing.agent(ids["1002"])["state"] == "ready", 5, "1002 ready")
        wait_for(lambda: routing.agent(ids["1001"])["state"] == "on_call", 5, "1001 unheld")
        finished(phone2)  # its leg got a BYE
        assert client.post("/api/v1/agents/me/call/hangup", headers=headers1).status_code == 200
        assert until(ws1, "ended", seconds=15)["call_id"] == call_id
        finished(caller)
        finished(phone1)
    sequence = types(redis_client, call_id)
    assert sequence.count("consult_ended") == 2 and "transferred" not in sequence
    assert sequence.count("unheld") == 2


@pytest.mark.queues_toml(SHORT_RING)
def test_caller_hanging_up_during_the_consultation(
    center: tuple[Routing, dict[str, int], TestClient],
    redis_client: redis.Redis,
    tmp_path: Path,
    pcaps: dict[str, Path],  # noqa: F811
) -> None:
    routing, ids, client = center
    phone1 = softphone(tmp_path, "1001", agent_scenario(tmp_path / "a1.xml", pcaps["agent"]))
    phone2 = softphone(tmp_path, "1002", agent_scenario(tmp_path / "a2.xml", pcaps["agent"]))
    headers1, headers2 = auth(client, "1001"), auth(client, "1002")
    client.put("/api/v1/agents/me/state", headers=headers1, json={"state": "ready"})
    with client.websocket_connect("/api/v1/agents/me/events", headers=headers1) as ws1:
        until(ws1, "state")
        # the caller hangs up by itself 9 s after pressing 0: during the consultation
        steps: list[tuple[str, object]] = [("pause", 800), ("dtmf", "0"), ("pause", 9000)]
        caller = sipp(
            caller_scenario(tmp_path / "caller.xml", steps),
            EDGE,
            local_port=17523,
            media_port=47160,
            cwd=tmp_path,
            local_ip="127.0.0.3",
        )
        call_id = str(until(ws1, "answered", seconds=30)["call_id"])
        client.put("/api/v1/agents/me/state", headers=headers2, json={"state": "ready"})
        consult(client, "start")
        until(ws1, "consult_answered", seconds=15)
        ended = until(ws1, "consult_ended", seconds=20)
        assert ended["reason"] == "caller_hung_up"
        assert until(ws1, "ended", seconds=15)["call_id"] == call_id
        finished(caller)
        finished(phone1)
        finished(phone2)
    wait_for(lambda: routing.agent(ids["1002"])["state"] == "ready", 5, "1002 ready")
    assert routing.agent(ids["1001"])["state"] == "wrap_up"
    assert routing.call(call_id)["state"] == "ended"
    sequence = types(redis_client, call_id)
    assert sequence.index("consult_ended") < sequence.index("call_ended")
