"""Hostile SDP in replies towards a slot (issue 11): an agent's softphone (or a trunk's far
end) answering a slot's INVITE with a body pjsua2 2.15.1 must never parse.

The real engine with its Kamailio edge; a caller (SIPp) queues, the slot dials the agent
1001 through the edge, and the agent's phone (``HostileAgent``, raw UDP: a NUL byte cannot be
written in a SIPp scenario) answers with each hostile shape. A packet capture on the slot's
SIP port shows what the slot process was sent.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from callcenter.testkit.capture import LoopbackCapture
from callcenter.testkit.hostile_sdp import HOSTILE_BODIES
from callcenter.testkit.raw_sip import HostileAgent, ReplyPlan, sdp
from callcenter.testkit.scenarios import caller_scenario
from callcenter.testkit.sipp import finished, sipp
from ivr.edge.screening import REFUSED_SDP_MARK
from tests.engine.conftest import (
    SLOT_BASE_PORT,
    EngineProcess,
    call_events,
    call_of,
    wait_for,
)
from tests.engine.test_engine_edge import EDGE, register

pytestmark = pytest.mark.sip

AGENT_HOST, AGENT_PORT = "127.0.0.4", 16631
AGENT_SDP = sdp(host=AGENT_HOST)  # a plausible softphone answer (PCMU, telephone-event)

# The five shapes of issue 11, each with bytes that only the hostile body contains.
SHAPES: dict[str, tuple[str, bytes]] = {
    "ptime-overflow": ("ptime-overflow", b"4294967295"),
    "multipart-content-id": ("multipart-content-id", b"boundary42"),
    "sdp-120-lines": ("sdp-120-lines", b"x-filler:100"),
    "payload-type-200": ("payload-type-200", b"RTP/AVP 0 200"),
    "nul-byte": ("nul-byte", b"\x00"),
}


@pytest.fixture
def capture() -> Iterator[LoopbackCapture]:
    # every SIP port a slot of this test may have (lines=1, spares=1, plus a restart)
    grab = LoopbackCapture({SLOT_BASE_PORT + i for i in range(4)})
    yield grab
    grab.close()


def _queued_call(
    redis_client: redis.Redis, tmp_path: Path, caller: str
) -> tuple[str, str, subprocess.Popen[bytes]]:
    """A caller on the DID who pressed 0 (queued); hangs up by itself ~12 s later."""
    scenario = caller_scenario(
        tmp_path / "caller.xml", [("pause", 600), ("dtmf", "0"), ("pause", 12000)], caller=caller
    )
    run = sipp(
        scenario, EDGE, local_port=16541, media_port=46310, cwd=tmp_path, local_ip="127.0.0.3"
    )
    call = wait_for(lambda: call_of(redis_client, caller), 10, "the call at a slot")
    wait_for(
        lambda: any(e.type == "call_queued" for e in call_events(redis_client, call)), 10, "queued"
    )
    slot = call_events(redis_client, call)[0].slot
    return call, slot, run


def _offer(redis_client: redis.Redis, slot: str, call: str) -> None:
    redis_client.xadd(
        f"cc:slot:{slot}:cmd",
        {"type": "offer", "call_id": call, "id": "o-1", "data": '{"agent_uri": "1001"}'},
    )


def _types(redis_client: redis.Redis, call: str) -> list[str]:
    return [e.type for e in call_events(redis_client, call)]


def _story(
    redis_client: redis.Redis, call: str, agent: HostileAgent, capture: LoopbackCapture
) -> str:
    """What happened, for a failing assertion's message."""
    lines = [f"events: {_types(redis_client, call)}", f"agent received: {agent.received}"]
    lines += [m.split(b"\r\n", 1)[0].decode(errors="replace") for m in capture.sip_messages()]
    return "\n".join(lines)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_hostile_sdp_in_an_agents_200_never_reaches_the_slot(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    capture: LoopbackCapture,
    shape: str,
) -> None:
    key, marker = SHAPES[shape]
    body, content_type, _status = HOSTILE_BODIES[key]
    engine = start_engine(lines=1, spares=1, edge=True)
    register(tmp_path, "1001", "pw1001", f"sip:1001@{AGENT_HOST}:{AGENT_PORT}", 200)
    plan = ReplyPlan(
        provisional=[("180 Ringing", {}, b"")],
        final=("200 OK", {"Content-Type": content_type}, body),
    )
    agent = HostileAgent(AGENT_HOST, AGENT_PORT, "1001", plan)
    call, slot, caller = _queued_call(redis_client, tmp_path, "13700000201")
    try:
        pid = engine.slot_pid(slot)
        _offer(redis_client, slot, call)
        # The slot's SDP negotiation fails on the edge's refusal SDP: pjsua2 hangs that leg
        # up at once (BYE, and the ACK the 2xx needs) and the slot ends the call cleanly.
        try:
            wait_for(lambda: "call_ended" in _types(redis_client, call), 15, "call_ended")
            wait_for(lambda: {"BYE", "ACK"} <= set(agent.received), 5, "the slot's BYE and ACK")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_story(redis_client, call, agent, capture)}") from None
    finally:
        agent.close()
        caller.kill()
        caller.wait()
    ended = next(e for e in call_events(redis_client, call) if e.type == "call_ended")
    assert ended.data["reason"] == "agent_hung_up", ended.data
    assert "slot_failed" not in _types(redis_client, call)
    assert engine.slot_pid(slot) == pid
    assert engine.process.poll() is None
    # What the slot process was sent: the 200 OK with the refusal SDP, never the raw body.
    to_slot = capture.sip_messages()
    answers = [m for m in to_slot if m.startswith(b"SIP/2.0 200 OK") and b"INVITE" in m]
    assert answers, f"no 200 OK to the slot captured ({len(to_slot)} SIP messages)"
    assert all(REFUSED_SDP_MARK.encode() in m for m in answers), answers[0][:600]
    assert not any(marker in m for m in to_slot), "the hostile body reached the slot"
    assert b"Content-Type: application/sdp" in answers[0]
    assert "body replaced" in (engine.settings.state_dir / "kamailio" / "kamailio.log").read_text()


def test_hostile_sdp_in_a_provisional_reply_is_stripped_and_the_call_is_answered(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    capture: LoopbackCapture,
) -> None:
    """A 183 with ptime 4294967295 loses its body at the edge; the agent's clean 200 OK that
    follows is bridged as usual."""
    body, content_type, _ = HOSTILE_BODIES["ptime-overflow"]
    engine = start_engine(lines=1, spares=1, edge=True)
    register(tmp_path, "1001", "pw1001", f"sip:1001@{AGENT_HOST}:{AGENT_PORT}", 200)
    plan = ReplyPlan(
        provisional=[("183 Session Progress", {"Content-Type": content_type}, body)],
        final=("200 OK", {"Content-Type": "application/sdp"}, AGENT_SDP),
    )
    agent = HostileAgent(AGENT_HOST, AGENT_PORT, "1001", plan)
    call, slot, caller = _queued_call(redis_client, tmp_path, "13700000202")
    try:
        pid = engine.slot_pid(slot)
        _offer(redis_client, slot, call)
        wait_for(lambda: "bridged" in _types(redis_client, call), 15, "bridged")
        finished(caller)
        wait_for(lambda: "call_ended" in _types(redis_client, call), 10, "call_ended")
        wait_for(lambda: "BYE" in agent.received, 5, "the slot's BYE to the agent")
    finally:
        agent.close()
    assert engine.slot_pid(slot) == pid
    to_slot = capture.sip_messages()
    progress = [m for m in to_slot if m.startswith(b"SIP/2.0 183")]
    assert progress, "the 183 did not reach the slot"
    assert all(b"4294967295" not in m and b"Content-Type" not in m for m in progress)
    assert any(m.startswith(b"SIP/2.0 200 OK") and b"m=audio 15330" in m for m in to_slot)
