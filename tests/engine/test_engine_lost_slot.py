"""A slot killed mid-call (kill -9; its node and supervisor live on) hangs up both phones.

The call is bridged caller → edge → slot → edge → agent; nothing on the dead slot can send a
BYE, so the edge must: the supervisor, seeing the slot die, has its edge end the dialogs it
tracks for that slot (the caller's leg and the agent's). Real Kamailio, pjsua2 and SIPp: run
under the global lock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from callcenter.testkit.scenarios import agent_scenario, caller_scenario
from callcenter.testkit.sipp import sipp, sipp_agent
from tests.engine.conftest import EDGE_PORT, EngineProcess, call_events, call_of, wait_for
from tests.engine.test_engine_edge import register

pytestmark = pytest.mark.sip

EDGE = f"127.0.0.1:{EDGE_PORT}"
BYE_WITHIN_SECONDS = 10.0


def _hung_up_at(peers: dict[str, subprocess.Popen[bytes]], since: float) -> dict[str, float]:
    """Seconds from ``since`` until each SIPp peer ended (it ends once it answered a BYE)."""
    ended: dict[str, float] = {}
    deadline = since + BYE_WITHIN_SECONDS
    while len(ended) < len(peers) and time.monotonic() < deadline:
        for name, peer in peers.items():
            if name not in ended and peer.poll() is not None:
                ended[name] = time.monotonic() - since
        time.sleep(0.02)
    return ended


def test_a_slot_killed_mid_call_gets_both_phones_a_bye_from_the_edge(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    engine = start_engine(lines=2, spares=2, edge=True)
    register(tmp_path, "1001", "pw1001", "sip:1001@127.0.0.4:16652", 200)
    agent_run = sipp_agent(
        agent_scenario(tmp_path / "agent.xml", None),
        local_port=16652,
        media_port=46500,
        cwd=tmp_path,
        local_ip="127.0.0.4",
    )
    caller = caller_scenario(
        tmp_path / "caller.xml",
        [("pause", 600), ("dtmf", "0"), ("wait_bye", 0)],
        caller="13700000031",
    )
    caller_run = sipp(
        caller, EDGE, local_port=16653, media_port=46510, cwd=tmp_path, local_ip="127.0.0.3"
    )
    peers: dict[str, subprocess.Popen[bytes]] = {"caller": caller_run, "agent": agent_run}
    try:
        call = wait_for(lambda: call_of(redis_client, "13700000031"), 10, "the call at a slot")
        slot = call_events(redis_client, call)[0].slot
        wait_for(
            lambda: any(e.type == "call_queued" for e in call_events(redis_client, call)),
            10,
            "queued",
        )
        redis_client.xadd(
            f"cc:slot:{slot}:cmd",
            {"type": "offer", "call_id": call, "id": "l-1", "data": '{"agent_uri": "1001"}'},
        )
        wait_for(
            lambda: any(e.type == "bridged" for e in call_events(redis_client, call)),
            10,
            "the caller bridged to the agent",
        )
        time.sleep(0.3)  # the agent's ACK
        assert caller_run.poll() is None and agent_run.poll() is None

        os.kill(engine.slot_pid(slot), signal.SIGKILL)
        killed_at = time.monotonic()
        ended = _hung_up_at(peers, killed_at)
        print(
            "\nBYE after the slot's kill: "
            + ", ".join(f"{name} {ended[name]:.2f} s" for name in sorted(ended))
        )
        assert set(ended) == {"caller", "agent"}, (
            f"no BYE within {BYE_WITHIN_SECONDS} s to {sorted(set(peers) - set(ended))}\n"
            + engine.log()
        )
        # each SIPp ended its scenario cleanly: it received the BYE and answered it
        assert caller_run.returncode == 0 and agent_run.returncode == 0, engine.log()
        wait_for(
            lambda: any(e.type == "call_ended" for e in call_events(redis_client, call)),
            10,
            "the dead slot's call reported ended",
        )
    finally:
        for peer in peers.values():
            if peer.poll() is None:
                peer.kill()
            peer.wait()
