"""End to end with real SIP: a SIPp caller through the Kamailio edge into the engine's menu,
routing (the router as it runs in production) offers the call to the longest-idle ready agent
of the repair queue, the desktop socket pops the customer before the softphone (a SIPp UAS
registered at the edge) answers, then on call, hang-up, wrap-up, ready."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from callcenter.app import create_app
from callcenter.context import AppContext
from callcenter.testkit.scenarios import agent_scenario, caller_scenario
from callcenter.testkit.sipp import finished, sipp
from tests.conftest import auth
from tests.cti.conftest import Running, agent_ids, until
from tests.cti.sipcases import morning_routing, register, start_behind_edge
from tests.engine.conftest import (  # noqa: F401 (fixtures used by name)
    EngineProcess,
    call_events,
    call_of,
    engine_config_dir,
    pcaps,
    prompt_cache,
    start_engine,
    wait_for,
)

pytestmark = pytest.mark.sip

# Own ports, apart from the engine's and edge's tests (they may run at the same time).
EDGE_PORT = 17050
EDGE = f"127.0.0.1:{EDGE_PORT}"
AGENT_IP, AGENT_PORT = "127.0.0.4", 17612


PAUSED_SECONDS = 1.0


def pci_pause(
    client: TestClient, headers: dict[str, str], redis_client: redis.Redis, call_id: str
) -> float:
    """Pause and resume the recording as the desktop does; the seconds left out."""

    def published(kind: str) -> dict[str, Any] | None:
        found = [e.data for e in call_events(redis_client, call_id) if e.type == kind]
        return found[-1] if found else None

    url = "/api/v1/agents/me/call/recording/"
    assert client.post(url + "pause", headers=headers).status_code == 200
    wait_for(lambda: published("recording_paused"), 5, "the slot to pause the recording")
    assert client.post(url + "pause", headers=headers).status_code == 409  # already paused
    time.sleep(PAUSED_SECONDS)  # the span left out (time itself, nothing to poll)
    assert client.post(url + "resume", headers=headers).status_code == 200
    resumed = wait_for(lambda: published("recording_resumed"), 5, "the slot to resume")
    return float(resumed["paused_s"])


def test_caller_pressing_1_reaches_the_longest_idle_agent_with_the_pop_before_the_answer(
    start_engine: Callable[..., EngineProcess],  # noqa: F811
    ctx: AppContext,
    redis_client: redis.Redis,
    tmp_path: Path,
    pcaps: dict[str, Path],  # noqa: F811
) -> None:
    # routing (ctx) dials agents at this edge
    start_behind_edge(
        start_engine,
        ctx,
        host="127.0.0.1",
        edge_port=EDGE_PORT,
        slot_base_port=17100,
        rtp_base_port=42000,
        lines=3,
        spares=2,
    )
    # Real time, with the wall clock read as 10:00 in Shanghai (both agents' shifts on).
    routing = morning_routing(ctx)
    ids = agent_ids(ctx)
    running = Running(ctx, routing, "router-e2e")
    try:
        register(tmp_path, EDGE, "1001", "pw1001",
                 ip=AGENT_IP, contact_port=AGENT_PORT, local_port=17611)  # fmt: skip
        softphone = sipp(
            agent_scenario(tmp_path / "agent.xml", pcaps["agent"], answer_after_ms=2500),
            "127.0.0.1:9",  # a UAS: the target is not used
            local_port=AGENT_PORT,
            media_port=47140,
            cwd=tmp_path,
            local_ip=AGENT_IP,
        )
        with TestClient(create_app(ctx)) as client:
            agent1001, agent1002 = auth(client, "1001"), auth(client, "1002")
            with client.websocket_connect("/api/v1/agents/me/events", headers=agent1001) as ws:
                assert until(ws, "state")["state"] == "logged_out"
                # 1001 goes ready first: the longest idle of the repair queue's two agents.
                for headers in (agent1001, agent1002):
                    response = client.put(
                        "/api/v1/agents/me/state", headers=headers, json={"state": "ready"}
                    )
                    assert response.json()["state"] == "ready"
                    time.sleep(0.05)  # distinct idle-since times
                steps: list[tuple[str, object]] = [("pause", 800), ("dtmf", "1"), ("pause", 1500)]
                steps += [("dtmf", d) for d in "321201#"]
                steps += [("audio", pcaps["caller"]), ("pause", 8000)]
                caller = sipp(
                    caller_scenario(tmp_path / "caller.xml", steps, caller="13800138000"),
                    EDGE,
                    local_port=17513,
                    media_port=47150,
                    cwd=tmp_path,
                    local_ip="127.0.0.3",
                )
                try:
                    pop = until(ws, "offer", seconds=40)
                except TimeoutError:
                    arrived = call_of(redis_client, "13800138000")
                    seen = call_events(redis_client, arrived) if arrived else []
                    raise AssertionError(
                        f"no offer; call {arrived}: {[(e.type, e.data) for e in seen]}; "
                        f"agent 1001: {routing.agent(ids['1001'])}"
                    ) from None
                call_id = pop["call_id"]
                # The pop is there while the softphone still rings.
                assert routing.agent(ids["1001"])["state"] == "reserved"
                assert "agent_answered" not in [e.type for e in call_events(redis_client, call_id)]
                assert pop["agent_id"] == ids["1001"]
                assert pop["queue"]["code"] == "repair"
                assert pop["customer"]["name"] == "张伟"
                assert pop["customer"]["fee_status"] == "arrears"
                # The digits and menu path are the ones the engine collected and reported.
                queued = next(
                    e for e in call_events(redis_client, call_id) if e.type == "call_queued"
                )
                assert pop["digits"] == queued.data["collected"]
                assert pop["digits"]["room"].startswith("3")
                assert pop["menu_path"] == queued.data["menu_path"]
                assert pop["menu_path"][0]["digit"] == "1"
                offered = [
                    e for e in call_events(redis_client, call_id) if e.type == "agent_offered"
                ]
                assert offered and offered[0].data["agent_uri"] == f"sip:1001@{EDGE}"
                assert until(ws, "answered", seconds=20)["call_id"] == call_id
                assert routing.agent(ids["1001"])["state"] == "on_call"
                assert routing.agent(ids["1002"])["state"] == "ready"
                # PCI pause from the desktop API, through Redis to the slot's recorder
                paused = pci_pause(client, agent1001, redis_client, call_id)
                finished(caller)
                finished(softphone)
                ended = until(ws, "ended", seconds=20)
                assert ended["wrap_up_seconds"] == 45  # repair's wrap-up
                assert routing.agent(ids["1001"])["state"] == "wrap_up"
                response = client.post(
                    "/api/v1/agents/me/wrap-up",
                    headers=agent1001,
                    json={"action": "end", "disposition": "repair_ticket"},
                )
                assert response.json()["state"] == "ready"
        types = [e.type for e in call_events(redis_client, call_id)]
        assert (
            types.index("call_reserved") < types.index("agent_answered") < types.index("call_ended")
        )
        assert routing.call(call_id)["outcome:1"] == "answered"
        # the paused span is absent from the file: shorter than the call by the span
        facts = {e.type: e.data for e in call_events(redis_client, call_id)}
        missing = facts["call_ended"]["duration"] - facts["recording_stopped"]["duration"]
        assert abs(missing - paused) < 0.5, (missing, paused)
    finally:
        running.halt()
