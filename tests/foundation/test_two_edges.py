"""Two ``callcenter edge`` processes of one center (127.0.0.1 and 127.0.0.2) sharing Redis: a
phone registered at one is reached through the other, and the phones on a media node's calls
(the caller's leg a slot answered, the agent's leg a slot placed) get a BYE from the edge that
routed them when that node is lost, or when one of its slots dies and the node reports it. The
media node is a SIPp stand-in announced in Redis as ``callcenter engine --node`` announces its
slots. Real Kamailio and SIPp: run under the global lock."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import redis

from callcenter.testkit import sipp
from callcenter.testkit.scenarios import caller_scenario, scenario
from config.settings import Settings
from ivr.edge.membership import announce, report_lost_slot
from tests.foundation.test_up_supervision import wait_for

pytestmark = pytest.mark.sip

ROOT = Path(__file__).resolve().parents[2]
EDGE_PORT = 17081
EDGES = ("127.0.0.1", "127.0.0.2")
SLOT = "127.0.0.5:17090"  # the lost node's slot calling the agent
ANSWERING_SLOT = "127.0.0.5:17091"  # the lost node's slot answering the caller
AGENT = "127.0.0.6"
AGENT_PORT = 17095
CALLER = "127.0.0.7"
CALLER_PORT = 17097


def kamcmd(state: Path, *args: str) -> str:
    done = subprocess.run(
        ["kamcmd", "-s", f"unix:{state / 'kamailio' / 'ctl.sock'}", *args],
        capture_output=True, text=True, timeout=10, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


def answers(state: Path, command: str, text: str) -> bool:
    return text in kamcmd(state, command)


class Node(threading.Thread):
    """Announces ``slots`` for node ``nodez`` every 0.5 s until stopped (then lost: no
    withdrawal, its announcement and liveness key lapse as a dead host's would)."""

    def __init__(self, client: redis.Redis, slots: list[str]) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.slots = slots  # may grow while it runs
        self.lost = threading.Event()

    def run(self) -> None:
        while not self.lost.is_set():
            announce(self.client, "cc", "nodez", [f"sip:{slot}" for slot in self.slots])
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


@dataclass
class Calls:
    """A caller's call answered by the node's slot ANSWERING_SLOT through the first edge, and
    the node's slot SLOT calling the agent's phone through the second edge."""

    node: Node
    caller: subprocess.Popen[bytes]  # waits for a BYE (exit 0 once it answered one)
    agent: subprocess.Popen[bytes]  # the same
    slots: list[subprocess.Popen[bytes]]  # the node's two slot stand-ins
    agent_log: Path

    def wait_for_byes(self, since: float, within: float) -> dict[str, float]:
        """Seconds from ``since`` until each phone ended its call (it got its BYE)."""
        phones = {"caller": self.caller, "agent": self.agent}
        ended: dict[str, float] = {}
        while len(ended) < len(phones) and time.monotonic() < since + within:
            for name, phone in phones.items():
                if name not in ended and phone.poll() is not None:
                    ended[name] = time.monotonic() - since
            time.sleep(0.02)
        return ended


@contextlib.contextmanager
def two_calls(edges: list[Path], settings: Settings, tmp_path: Path) -> Iterator[Calls]:
    node = Node(redis.Redis.from_url(settings.redis_url), [ANSWERING_SLOT])
    node.start()
    peers: list[subprocess.Popen[bytes]] = []
    try:
        # The node's answering slot alone first, so the caller's call lands on it.
        peers.append(sipp.start(scenario("slot_uas.xml", tmp_path), ANSWERING_SLOT, "-m", "100",
                                workdir=tmp_path, timeout_s=60))  # fmt: skip
        wait_for(partial(answers, edges[0], "dispatcher.list", ANSWERING_SLOT), 20,
                 "the answering slot listed")  # fmt: skip
        caller = sipp.sipp(
            caller_scenario(tmp_path / "caller.xml", [("wait_bye", 0)], caller="13700000041"),
            f"{EDGES[0]}:{EDGE_PORT}", local_port=CALLER_PORT, media_port=47100,
            cwd=tmp_path, local_ip=CALLER,
        )  # fmt: skip
        peers.append(caller)
        wait_for(partial(answers, edges[0], "dlg.list", "13700000041"), 15,
                 "the caller's leg tracked at the first edge")  # fmt: skip
        node.slots.append(SLOT)
        # Both edges dispatch to the node's slots (they add what nodes announce).
        for state in edges:
            wait_for(partial(answers, state, "dispatcher.list", SLOT), 20, "the slot listed")
        # Registered at the first edge after both started ...
        register_at(EDGES[0], tmp_path)
        assert f"{AGENT}:{AGENT_PORT}" in kamcmd(edges[1], "ul.lookup", "location", "s:1001")
        agent = sipp.start(scenario("slot_uas.xml", tmp_path), f"{AGENT}:{AGENT_PORT}", "-m",
                           "1", workdir=tmp_path, log=True, timeout_s=60)  # fmt: skip
        peers.append(agent)
        agent_log = agent.log_file
        assert agent_log is not None
        # ... called by the slot through the second edge: the phone answers (a long call).
        slot = sipp.start(scenario("caller.xml", tmp_path), SLOT, "-m", "1", "-d", "60000",
                          "-s", "1001", "-aa", workdir=tmp_path, timeout_s=60,
                          target=f"{EDGES[1]}:{EDGE_PORT}")  # fmt: skip
        peers.append(slot)
        wait_for(lambda: agent_log.exists() and "INVITE" in agent_log.read_text(), 15,
                 "the agent's phone called through the second edge")  # fmt: skip
        time.sleep(0.5)  # the ACK
        assert all(peer.poll() is None for peer in peers)
        yield Calls(node, caller, agent, [peers[0], slot], agent_log)
    finally:
        node.lost.set()
        for peer in peers:
            if peer.poll() is None:
                peer.kill()
            peer.wait()


def test_a_phone_registered_at_one_edge_is_called_through_the_other_and_hung_up_when_lost(
    edges: list[Path], settings: Settings, tmp_path: Path
) -> None:
    with two_calls(edges, settings, tmp_path) as calls:
        # The node is lost whole: no more announcements, its slots killed.
        calls.node.lost.set()
        for slot in calls.slots:
            slot.send_signal(signal.SIGKILL)
        lost_at = time.monotonic()
        # Each edge ends the dialogs it routed: BYE to the agent's phone and to the caller.
        ended = calls.wait_for_byes(lost_at, 20)
        print("\nBYE after the node was lost: "
              + ", ".join(f"{name} {ended[name]:.1f} s" for name in sorted(ended)))  # fmt: skip
        assert set(ended) == {"caller", "agent"}
        assert calls.caller.returncode == 0 and calls.agent.returncode == 0
        assert "BYE" in calls.agent_log.read_text()


def test_a_slot_reported_dead_by_its_living_node_gets_both_phones_a_bye(
    edges: list[Path], settings: Settings, tmp_path: Path, redis_client: redis.Redis
) -> None:
    with two_calls(edges, settings, tmp_path) as calls:
        # The slots die; their node lives on (still announcing, as it restarts them on the
        # same addresses) and reports each, as its supervisor does (EdgeLink.slot_lost).
        for slot in calls.slots:
            slot.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        for uri in (ANSWERING_SLOT, SLOT):
            report_lost_slot(redis_client, "cc", "nodez", f"sip:{uri}")
        ended = calls.wait_for_byes(killed_at, 5)
        print("\nBYE after the slots' deaths were reported: "
              + ", ".join(f"{name} {ended[name]:.2f} s" for name in sorted(ended)))  # fmt: skip
        assert set(ended) == {"caller", "agent"}
        assert calls.caller.returncode == 0 and calls.agent.returncode == 0
