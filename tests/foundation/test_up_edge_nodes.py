"""One edge, several media nodes: ``callcenter edge`` alone, and ``callcenter engine --node
NAME --host ADDRESS`` nodes on distinct loopback addresses joining it through Redis. Real
Kamailio, pjsua2 slots and SIPp: run under the global lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from callcenter.health import Rotation, rotations
from callcenter.testkit.scenarios import caller_scenario
from callcenter.testkit.sipp import sipp
from config.settings import Settings
from tests.foundation.test_up_supervision import bound_to_udp_port, descendants, wait_for

pytestmark = pytest.mark.sip

ROOT = Path(__file__).resolve().parents[2]
EDGE_PORT = 17061
NODES = {  # name: (slot address, slot base port, RTP base port)
    "nodeb": ("127.0.0.2", 17200, 52000),
    "nodec": ("127.0.0.4", 17300, 53000),
}


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CALLCENTER_ENVIRONMENT": "test",
            "CALLCENTER_STATE_DIR": str(settings.state_dir),
            "CALLCENTER_REDIS_URL": settings.redis_url,
            "CALLCENTER_SIP__EDGE_PORT": str(EDGE_PORT),
            "CALLCENTER_ENGINE_RECORDS": "0",
            **extra,
        }
    )
    return env


def edge_record(client: redis.Redis) -> Rotation | None:
    return next((r for r in rotations(client, "cc") if r.node == "edge"), None)


class Running:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", *argv],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def running() -> Iterator[Running]:
    processes = Running()
    yield processes
    processes.stop()


def start_node(running: Running, settings: Settings, name: str, tmp_path: Path) -> int:
    host, slot_base, rtp_base = NODES[name]
    env = env_for(
        settings,
        CALLCENTER_SIP__LINES="2",
        CALLCENTER_SIP__WARM_SPARES="2",
        CALLCENTER_SIP__SLOT_BASE_PORT=str(slot_base),
        CALLCENTER_SIP__RTP_BASE_PORT=str(rtp_base),
    )
    proc = running.start(["engine", "--node", name, "--host", host], env, tmp_path / f"{name}.log")
    return proc.pid


def arrived_slots(client: redis.Redis) -> list[str]:
    entries: Any = client.xrange("cc:events")
    return [
        str(fields.get("slot", ""))
        for _id, fields in entries
        if fields.get("type") == "call_arrived"
    ]


def arrived_calls(client: redis.Redis) -> dict[str, str]:
    """call id -> slot, for each call that arrived."""
    entries: Any = client.xrange("cc:events")
    return {f["call_id"]: f["slot"] for _id, f in entries if f.get("type") == "call_arrived"}


def endings(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """call id -> its call_ended data."""
    entries: Any = client.xrange("cc:events")
    return {
        f["call_id"]: json.loads(f["data"]) for _id, f in entries if f.get("type") == "call_ended"
    }


def test_nodes_join_one_edge_take_calls_and_leave(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path, running: Running
) -> None:
    edge = running.start(["edge"], env_for(settings), tmp_path / "edge.log")
    first = wait_for(lambda: edge_record(redis_client), 30, "the edge's readiness record")
    assert isinstance(first, Rotation)
    assert first.in_rotation == 0 and first.problem == "no media node has joined the edge"

    joined_at = time.monotonic()
    start_node(running, settings, "nodeb", tmp_path)
    start_node(running, settings, "nodec", tmp_path)

    def both_in_rotation() -> bool:
        record = edge_record(redis_client)
        return record is not None and record.in_rotation == 4 and not record.problem

    wait_for(both_in_rotation, 60, "both nodes' slots in the edge's rotation")
    join_seconds = time.monotonic() - joined_at
    print(f"\ntwo nodes (2 slots each) in rotation {join_seconds:.1f} s after they started")

    # Four calls at once: the edge spreads them by call load over both nodes' four slots.
    scenario = caller_scenario(tmp_path / "caller.xml", [("pause", 8000)], caller="13922223333")
    caller = sipp(
        scenario,
        f"127.0.0.1:{EDGE_PORT}",
        local_port=17562,
        media_port=51700,
        calls=4,
        rate=10,
        cwd=tmp_path,
        local_ip="127.0.0.3",
        timeout_s=30,
    )
    wait_for(lambda: len(arrived_slots(redis_client)) == 4, 15, "four calls on the slots")
    calls = arrived_calls(redis_client)
    assert {slot.split("-")[0] for slot in calls.values()} == {"nodeb", "nodec"}, calls
    on_c = {call for call, slot in calls.items() if slot.startswith("nodec-")}

    # nodec lost under load as a host is lost: its supervisor and slots stopped, then killed,
    # so nothing on it reports its calls' end (a slot given the parent-death SIGTERM would).
    node_c = next(p for p in running.procs if "nodec" in p.args)  # type: ignore[operator]
    on_node_c = [node_c.pid, *descendants(node_c.pid)]
    killed_at = time.monotonic()
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in on_node_c:
            os.kill(pid, sig)

    def only_nodeb() -> bool:
        record = edge_record(redis_client)
        return record is not None and record.slots == 2 and record.in_rotation == 2

    wait_for(only_nodeb, 15, "nodec's slots out of the edge's rotation")
    left_after = time.monotonic() - killed_at
    wait_for(lambda: on_c <= set(endings(redis_client)), 20, "nodec's calls ended")
    reaped_after = time.monotonic() - killed_at
    ended = endings(redis_client)
    print(f"a SIGKILLed node's slots left rotation {left_after:.1f} s after the kill, "
          f"its calls ended (node_failed) {reaped_after:.1f} s after it")  # fmt: skip
    assert {ended[call]["outcome"] for call in on_c} == {"node_failed"}
    assert not set(ended) - on_c, "nodeb's calls still talking while nodec's were ended"
    # nodeb's callers talk to the end of their 8 s and hang up; nodec's get no answer to BYE
    assert caller.wait(timeout=60) == 1
    # (a slot publishes call_ended after its recorder's flush: it may follow SIPp's exit)
    wait_for(lambda: set(endings(redis_client)) == set(calls), 10, "every call ended")
    ended = endings(redis_client)
    assert not {ended[call]["reason"] for call in set(calls) - on_c} & {
        "node_failed",
        "slot_failed",
    }, ended
    assert not bound_to_udp_port(17300) and not bound_to_udp_port(17301)

    short = caller_scenario(tmp_path / "short.xml", [("pause", 1000)], caller="13922223333")
    caller = sipp(
        short,
        f"127.0.0.1:{EDGE_PORT}",
        local_port=17562,
        media_port=51700,
        cwd=tmp_path,
        local_ip="127.0.0.3",
        timeout_s=30,
    )
    assert caller.wait(timeout=60) == 0
    assert arrived_slots(redis_client)[-1].startswith("nodeb-")

    # A node that stops withdraws its slots at once.
    node_b = next(p for p in running.procs if "nodeb" in p.args)  # type: ignore[operator]
    node_b.send_signal(signal.SIGTERM)
    node_b.wait(timeout=30)

    def none_joined() -> bool:
        record = edge_record(redis_client)
        return record is not None and record.problem == "no media node has joined the edge"

    wait_for(none_joined, 15, "no node left at the edge")
    edge.send_signal(signal.SIGTERM)
    assert edge.wait(timeout=30) == 0
    assert not bound_to_udp_port(EDGE_PORT)
    assert not redis_client.smembers("cc:edge:nodes")
