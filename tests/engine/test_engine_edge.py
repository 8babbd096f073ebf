"""Through the Kamailio edge: caller → edge → slot, agent registered at the edge."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from callcenter.testkit.scenarios import (
    agent_scenario,
    caller_scenario,
    queue_then_talk,
    rejected_scenario,
)
from callcenter.testkit.sipp import finished, sipp, sipp_agent
from callcenter.testkit.sipp import register as sipp_register
from ivr import wav
from tests.engine.conftest import EDGE_PORT, EngineProcess, call_events, call_of, events, wait_for

pytestmark = pytest.mark.sip

EDGE = f"127.0.0.1:{EDGE_PORT}"


def register(tmp_path: Path, user: str, password: str, contact: str, status: int) -> None:
    """``user`` registered at the engine's edge from 127.0.0.4 (a SIPp softphone)."""
    result = sipp_register(tmp_path, EDGE, "127.0.0.4:16611", user, contact,
                           password=password, status=status)  # fmt: skip
    assert result.ok(), result.failure()


def test_call_through_edge_is_bridged_to_registered_agent(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    pcaps: dict[str, Path],
) -> None:
    start_engine(lines=3, spares=2, edge=True)
    # the agent's softphone registers at the edge (wrong password refused)
    register(tmp_path, "1001", "wrong", "sip:1001@127.0.0.4:16612", 403)
    register(tmp_path, "1001", "pw1001", "sip:1001@127.0.0.4:16612", 200)
    agent = agent_scenario(tmp_path / "agent.xml", pcaps["agent"])
    agent_run = sipp_agent(
        agent, local_port=16612, media_port=46140, cwd=tmp_path, local_ip="127.0.0.4"
    )
    caller = caller_scenario(
        tmp_path / "caller.xml",
        queue_then_talk(pcaps["caller"], 7000),
        caller="13700000001",
    )
    caller_run = sipp(
        caller, EDGE, local_port=16513, media_port=46150, cwd=tmp_path, local_ip="127.0.0.3"
    )
    call = wait_for(lambda: call_of(redis_client, "13700000001"), 10, "the call at a slot")
    arrived = call_events(redis_client, call)[0]
    assert arrived.data["source"] == EDGE  # it came through the edge
    wait_for(
        lambda: any(e.type == "call_queued" for e in call_events(redis_client, call)), 10, "queued"
    )
    # the slot dials the agent by extension through the edge (location lookup)
    redis_client.xadd(
        f"cc:slot:{arrived.slot}:cmd",
        {"type": "offer", "call_id": call, "id": "e-1", "data": '{"agent_uri": "1001"}'},
    )
    finished(caller_run)
    finished(agent_run)
    wait_for(
        lambda: any(e.type == "call_ended" for e in call_events(redis_client, call)), 10, "end"
    )
    types = [e.type for e in call_events(redis_client, call)]
    assert "bridged" in types, [(e.call_id[:6], e.type, e.slot) for _i, e in events(redis_client)]
    offered = next(e for e in call_events(redis_client, call) if e.type == "agent_offered")
    assert offered.data["agent_uri"] == f"sip:1001@{EDGE}"
    stopped = next(e for e in call_events(redis_client, call) if e.type == "recording_stopped")
    pcm, rate = wav.samples(Path(stopped.data["path"]))
    part = pcm[-4 * rate : -rate]
    noise = max(wav.tone_power(part, rate, 2500), 1)
    assert wav.tone_power(part, rate, 440) > 100 * noise
    assert wav.tone_power(part, rate, 1000) > 100 * noise


def test_slots_refuse_anyone_but_the_edge_and_edge_refuses_unknown_did(
    start_engine: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    engine = start_engine(lines=2, spares=2, edge=True)
    direct = rejected_scenario(tmp_path / "direct.xml", did="4008001234", code=403)
    finished(sipp(direct, "127.0.0.1:16100", local_port=16514, media_port=46160, cwd=tmp_path))
    unknown = rejected_scenario(tmp_path / "unknown.xml", did="4000000000", code=404)
    finished(
        sipp(unknown, EDGE, local_port=16515, media_port=46170, cwd=tmp_path, local_ip="127.0.0.3")
    )

    # SIGTERM stops the edge too: nothing is left running
    kamailio_pid = int((engine.settings.state_dir / "kamailio" / "kamailio.pid").read_text())
    assert Path(f"/proc/{kamailio_pid}").exists()
    slot_pids = [int(p) for p in engine.pool()["pids"].split(",")]
    assert engine.stop() == 0
    for pid in [kamailio_pid, *slot_pids]:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"{pid} still running"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_slot_killed_mid_call_is_usable_again_through_the_edge(
    start_engine: Callable[..., EngineProcess], redis_client: redis.Redis, tmp_path: Path
) -> None:
    # one line only: if the edge still counted the dead slot's call, the next call gets 486
    engine = start_engine(lines=1, spares=1, edge=True)
    first = caller_scenario(
        tmp_path / "first.xml",
        [("pause", 600), ("dtmf", "0"), ("pause", 30000)],
        caller="13700000010",
        hangup=False,
    )
    run = sipp(
        first,
        EDGE,
        local_port=16516,
        media_port=46180,
        cwd=tmp_path,
        local_ip="127.0.0.3",
        timeout_s=20,
    )
    try:
        call = wait_for(lambda: call_of(redis_client, "13700000010"), 10, "the first call")
        wait_for(
            lambda: any(e.type == "call_queued" for e in call_events(redis_client, call)),
            10,
            "queued",
        )
        old_pid = engine.slot_pid("node1-s00")
        os.kill(old_pid, signal.SIGKILL)
        wait_for(
            lambda: any(e.type == "call_ended" for e in call_events(redis_client, call)),
            15,
            "the dead slot's call to be ended",
        )

        def restarted() -> bool:
            entry = engine.pool().get("slot:node1-s00", "").split()
            return len(entry) >= 2 and entry[1] == "ready" and int(entry[0]) != old_pid

        wait_for(restarted, 15, "the slot to be restarted")
    finally:
        run.kill()
        run.wait()
    second = caller_scenario(tmp_path / "second.xml", [("pause", 500)], caller="13700000011")
    # the supervisor reset the slot's load at the edge before reporting it ready
    attempt = sipp(
        second, EDGE, local_port=16517, media_port=46190, cwd=tmp_path, local_ip="127.0.0.3"
    )
    attempt.communicate(timeout=30)
    assert attempt.returncode == 0, engine.log()
    assert call_of(redis_client, "13700000011")
