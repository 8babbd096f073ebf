"""A slot killed mid-call on a media node joined to a standalone edge (``callcenter edge``;
the node and its supervisor live on, and restart the slot on the same address at once): the
caller and the agent both get a BYE from the edge, which learns of the dead slot from the
node's report on the lost-slots stream. Real Kamailio, pjsua2 slots and SIPp: run under the
global lock."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from callcenter.redis_keys import Keys
from callcenter.testkit.scenarios import agent_scenario, caller_scenario
from callcenter.testkit.sipp import register as sipp_register
from callcenter.testkit.sipp import sipp, sipp_agent
from config.settings import Settings
from tests.foundation.test_up_edge_nodes import Running, edge_record, env_for, running
from tests.foundation.test_up_supervision import wait_for

pytestmark = pytest.mark.sip

__all__ = ["running"]  # the fixture, used by name

EDGE_PORT = 17161
NODE, NODE_HOST, SLOT_BASE, RTP_BASE = "noded", "127.0.0.8", 17400, 54000
AGENT, AGENT_PORT = "127.0.0.9", 17466
CALLER = "13700000051"


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**env_for(settings, **extra), "CALLCENTER_SIP__EDGE_PORT": str(EDGE_PORT)}


def _events(client: redis.Redis, call_id: str) -> list[dict[str, Any]]:
    entries: Any = client.xrange("cc:events")
    return [fields for _id, fields in entries if fields.get("call_id") == call_id]


def _call_of(client: redis.Redis) -> str | None:
    entries: Any = client.xrange("cc:events")
    for _id, fields in entries:
        if fields.get("type") == "call_arrived" and CALLER in fields.get("data", ""):
            return str(fields["call_id"])
    return None


def _register(tmp_path: Path) -> None:
    result = sipp_register(tmp_path, f"127.0.0.1:{EDGE_PORT}", f"{AGENT}:{AGENT_PORT - 1}",
                           "1001", f"sip:1001@{AGENT}:{AGENT_PORT}")  # fmt: skip
    assert result.ok(), result.failure()


def test_a_slot_killed_on_a_joined_node_gets_both_phones_a_bye(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, running: Running
) -> None:
    running.start(["edge"], _env(settings), tmp_path / "edge.log")
    wait_for(lambda: edge_record(redis_client), 30, "the edge's readiness record")
    node_env = _env(
        settings,
        CALLCENTER_SIP__LINES="2",
        CALLCENTER_SIP__WARM_SPARES="2",
        CALLCENTER_SIP__SLOT_BASE_PORT=str(SLOT_BASE),
        CALLCENTER_SIP__RTP_BASE_PORT=str(RTP_BASE),
    )
    running.start(["engine", "--node", NODE, "--host", NODE_HOST], node_env, tmp_path / "n.log")

    def in_rotation() -> bool:
        record = edge_record(redis_client)
        return record is not None and record.in_rotation == 2 and not record.problem

    wait_for(in_rotation, 60, "the node's slots in the edge's rotation")
    _register(tmp_path)
    agent = sipp_agent(
        agent_scenario(tmp_path / "agent.xml", None),
        local_port=AGENT_PORT, media_port=54600, cwd=tmp_path, local_ip=AGENT,
    )  # fmt: skip
    caller = sipp(
        caller_scenario(tmp_path / "caller.xml", [("pause", 600), ("dtmf", "0"),
                        ("wait_bye", 0)], caller=CALLER),
        f"127.0.0.1:{EDGE_PORT}", local_port=17463, media_port=54500, cwd=tmp_path,
        local_ip="127.0.0.3",
    )  # fmt: skip
    phones = {"caller": caller, "agent": agent}
    try:
        call = wait_for(lambda: _call_of(redis_client), 15, "the call at a slot")
        assert isinstance(call, str)

        def has(kind: str) -> bool:
            return any(e.get("type") == kind for e in _events(redis_client, call))

        wait_for(lambda: has("call_queued"), 20, "the call queued")
        slot = str(_events(redis_client, call)[0]["slot"])
        redis_client.xadd(
            f"cc:slot:{slot}:cmd",
            {"type": "offer", "call_id": call, "id": "n-1", "data": '{"agent_uri": "1001"}'},
        )
        wait_for(lambda: has("bridged"), 15, "the caller bridged to the agent")
        time.sleep(0.3)  # the agent's ACK
        assert caller.poll() is None and agent.poll() is None
        pool: Any = redis_client.hgetall(Keys("cc").engine_pool(NODE))
        os.kill(int(pool[f"slot:{slot}"].split()[0]), signal.SIGKILL)
        killed_at = time.monotonic()
        ended: dict[str, float] = {}
        while len(ended) < 2 and time.monotonic() < killed_at + 10:
            for name, phone in phones.items():
                if name not in ended and phone.poll() is not None:
                    ended[name] = time.monotonic() - killed_at
            time.sleep(0.02)
        print("\nBYE after a joined node's slot was killed: "
              + ", ".join(f"{name} {ended[name]:.2f} s" for name in sorted(ended)))  # fmt: skip
        assert set(ended) == {"caller", "agent"}, (tmp_path / "edge.log").read_text()[-3000:]
        assert caller.returncode == 0 and agent.returncode == 0
    finally:
        for phone in phones.values():
            if phone.poll() is None:
                phone.kill()
            phone.wait()
