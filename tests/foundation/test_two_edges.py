"""Two ``callcenter edge`` processes of one center (127.0.0.1 and 127.0.0.2) sharing Redis: a
phone registered at one is reached through the other, and the agent's leg of a call placed by
a media node's slot gets a BYE from the edge when that node is lost. The media node is a SIPp
stand-in announced in Redis as ``callcenter engine --node`` announces its slots. Real
Kamailio and SIPp: run under the global lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import redis

from callcenter.testkit import sipp
from callcenter.testkit.scenarios import scenario
from config.settings import Settings
from ivr.edge.membership import announce
from tests.foundation.test_up_supervision import wait_for

pytestmark = pytest.mark.sip

ROOT = Path(__file__).resolve().parents[2]
EDGE_PORT = 17081
EDGES = ("127.0.0.1", "127.0.0.2")
SLOT = "127.0.0.5:17090"  # the lost node's one slot
AGENT = "127.0.0.6"
AGENT_PORT = 17095


def kamcmd(state: Path, *args: str) -> str:
    done = subprocess.run(
        ["kamcmd", "-s", f"unix:{state / 'kamailio' / 'ctl.sock'}", *args],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


def answers(state: Path, command: str, text: str) -> bool:
    return text in kamcmd(state, command)


class Node(threading.Thread):
    """Announces one slot for node ``nodez`` every 0.5 s until stopped (then lost: no
    withdrawal, its announcement and liveness key lapse as a dead host's would)."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.lost.is_set():
            announce(self.client, "cc", "nodez", [f"sip:{SLOT}"])
            self.lost.wait(0.5)


@pytest.fixture
def edges(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> Iterator[list[Path]]:
    states = []
    procs = []
    for n, host in enumerate(EDGES):
        state = tmp_path / f"e{n}"
        state.mkdir()
        env = dict(os.environ)
        env.update(
            CALLCENTER_ENVIRONMENT="test",
            CALLCENTER_STATE_DIR=str(state),
            CALLCENTER_DATABASE_URL=f"sqlite:///{settings.state_dir / 'callcenter.db'}",
            CALLCENTER_REDIS_URL=settings.redis_url,
            CALLCENTER_SIP__EDGE_HOST=host,
            CALLCENTER_SIP__EDGE_PORT=str(EDGE_PORT),
        )
        log = (tmp_path / f"edge{n}.log").open("wb")
        command = [sys.executable, "-m", "callcenter.cli", "edge"]
        procs.append(
            subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        )
        states.append(state)
    try:
        for state in states:
            wait_for(partial(answers, state, "ul.dump", "Domain"), 30, "an edge answering")
        yield states
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def register_at(edge: str, tmp_path: Path) -> None:
    result = sipp.register(tmp_path, f"{edge}:{EDGE_PORT}", f"{AGENT}:{AGENT_PORT + 1}", "1001",
                           f"sip:1001@{AGENT}:{AGENT_PORT}")  # fmt: skip
    assert result.ok(), result.failure()


def test_a_phone_registered_at_one_edge_is_called_through_the_other_and_hung_up_when_lost(
    edges: list[Path], settings: Settings, tmp_path: Path
) -> None:
    node = Node(redis.Redis.from_url(settings.redis_url))
    node.start()
    slot = None
    agent = None
    try:
        # Both edges dispatch to the node's slot (they add what nodes announce).
        for state in edges:
            wait_for(partial(answers, state, "dispatcher.list", SLOT), 20, "the slot listed")
        # Registered at the first edge after both started ...
        register_at(EDGES[0], tmp_path)
        assert f"{AGENT}:{AGENT_PORT}" in kamcmd(edges[1], "ul.lookup", "location", "s:1001")
        agent = sipp.start(scenario("slot_uas.xml", tmp_path), f"{AGENT}:{AGENT_PORT}", "-m",
                           "1", workdir=tmp_path, log=True, timeout_s=60)  # fmt: skip
        agent_log = agent.log_file
        assert agent_log is not None
        # ... called by the slot through the second edge: the phone answers (a long call).
        slot = sipp.start(scenario("caller.xml", tmp_path), SLOT, "-m", "1", "-d", "60000",
                          "-s", "1001", "-aa", workdir=tmp_path, timeout_s=60,
                          target=f"{EDGES[1]}:{EDGE_PORT}")  # fmt: skip
        wait_for(lambda: agent_log.exists() and "INVITE" in agent_log.read_text(), 15,
                 "the agent's phone called through the second edge")  # fmt: skip
        time.sleep(0.5)  # the ACK
        assert agent.poll() is None and slot.poll() is None

        # The node is lost whole: no more announcements, its slot killed.
        node.lost.set()
        slot.send_signal(signal.SIGKILL)
        lost_at = time.monotonic()
        # The edge that routed the call sends the phone a BYE; the phone's SIPp ends its call.
        assert agent.wait(timeout=20) == 0
        hung_up = time.monotonic() - lost_at
        print(f"\nthe agent's phone got the edge's BYE {hung_up:.1f} s after its node was lost")
        assert "BYE" in agent_log.read_text()
    finally:
        node.lost.set()
        for peer in (slot, agent):
            if peer is not None and peer.poll() is None:
                peer.kill()
                peer.wait()
