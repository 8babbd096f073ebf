"""Consultation (attended transfer) and withdrawn offers in the engine, with real SIP.

SIPp plays the caller, the agents and the trunk; the caller's SDP names the port of an
:class:`RtpListener`, so the test hears what the caller hears: the agent before the
consultation, only hold music during it, then the agent again (cancel) or the target
(complete). Commands are sent by hand, as routing would send them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from callcenter.streams import CallEvent
from callcenter.testkit.rtp import RtpListener, tone_pcap
from callcenter.testkit.scenarios import agent_scenario, caller_scenario, ringing_scenario
from callcenter.testkit.sipp import finished, sipp, sipp_agent
from ivr import wav
from tests.engine.conftest import TRUNK_PORT, EngineProcess, call_events, call_of, wait_for
from tests.engine.test_engine_commands import send

pytestmark = [pytest.mark.sip, pytest.mark.usefixtures("no_sipp_left")]

SLOT = "node1-s00"
CALLER_PORT, CALLER_RTP = 16541, 46450
AGENT_A = ("sip:1001@127.0.0.1:16641", 16641, 46410)
AGENT_B = ("sip:1002@127.0.0.1:16642", 16642, 46420)
A_TONE, B_TONE = 1000.0, 1400.0  # neither is a note of the hold music (523-880 Hz)
RATE = 8000


@pytest.fixture
def tones(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    directory = tmp_path_factory.getbasetemp() / "consult-pcaps"
    directory.mkdir(exist_ok=True)
    found = {}
    for freq in (A_TONE, B_TONE):
        path = directory / f"tone-{int(freq)}.pcap"
        if not path.exists():
            tone_pcap(path, freq, 30)
        found[freq] = path
    return found


@pytest.fixture
def listener() -> Iterator[RtpListener]:
    heard = RtpListener(CALLER_RTP)
    yield heard
    heard.close()


def epoch(event: CallEvent) -> float:
    return datetime.fromisoformat(event.at).timestamp()


def of_type(client: redis.Redis, call_id: str, type_: str, count: int = 1) -> list[CallEvent]:
    def found() -> list[CallEvent] | None:
        matching = [e for e in call_events(client, call_id) if e.type == type_]
        return matching if len(matching) >= count else None

    try:
        return wait_for(found, 20, f"{count} {type_} event(s)")
    except AssertionError as exc:
        seen = [(e.type, e.data) for e in call_events(client, call_id)]
        raise AssertionError(f"{exc} for {call_id}; events: {seen}") from None


def phone(
    tmp_path: Path, agent: tuple[str, int, int], scenario: Path, calls: int = 1
) -> subprocess.Popen[bytes]:
    """A SIPp UAS on the agent's port (one process per port at a time)."""
    return sipp_agent(scenario, local_port=agent[1], media_port=agent[2], calls=calls, cwd=tmp_path)


def start_caller(
    tmp_path: Path, client: redis.Redis, number: str, steps: list[tuple[str, object]]
) -> tuple[subprocess.Popen[bytes], str]:
    """A caller who presses 0 (SIP INFO: the caller sends no RTP of its own, so the slot
    keeps sending to the listener) and waits in the general queue."""
    scenario = caller_scenario(
        tmp_path / f"caller-{number}.xml",
        [("pause", 500), ("info", "0"), *steps],
        caller=number,
        sdp_media_port=CALLER_RTP,
    )
    run = sipp(scenario, "127.0.0.1:16100", local_port=CALLER_PORT, media_port=46460, cwd=tmp_path)
    call_id = wait_for(lambda: call_of(client, number), 10, "the call to arrive")
    of_type(client, call_id, "call_queued")
    return run, str(call_id)


def bridge_to_a(client: redis.Redis, call_id: str) -> CallEvent:
    send(client, SLOT, "offer", call_id, "o-1", agent_uri=AGENT_A[0], agent_id=1, ring_timeout=10)
    return of_type(client, call_id, "bridged")[0]


def consult(client: redis.Redis, call_id: str, ident: str, **data: Any) -> None:
    send(client, SLOT, "transfer", call_id, ident, **data)


def power(heard: RtpListener, start: float, end: float, freq: float) -> float:
    part = heard.audio(start, end)
    assert len(part) > RATE // 2, f"the caller received too little audio ({len(part)} samples)"
    return wav.tone_power(part, RATE, freq)


def test_consult_an_agent_cancel_then_consult_again_and_complete(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    tones: dict[float, Path],
    listener: RtpListener,
) -> None:
    start_engine(lines=2, spares=2, rtp_silence_timeout_seconds=120)
    agent_a = phone(tmp_path, AGENT_A, agent_scenario(tmp_path / "a.xml", tones[A_TONE]))
    agent_b = phone(
        tmp_path,
        AGENT_B,
        agent_scenario(tmp_path / "b.xml", tones[B_TONE], answer_after_ms=1500),
        calls=2,
    )
    caller, call_id = start_caller(tmp_path, redis_client, "13600000011", [("wait_bye", 0)])
    bridged = bridge_to_a(redis_client, call_id)
    time.sleep(1.5)
    target = {"kind": "agent", "target": AGENT_B[0], "agent_id": 2, "ring_timeout": 10}
    consult(redis_client, call_id, "t-1", mode="consult", **target)
    started = of_type(redis_client, call_id, "consult_started")[0]
    held = of_type(redis_client, call_id, "held")[0]
    assert held.data == {"reason": "consult"}
    assert started.data["agent_id"] == 2 and started.data["target_uri"] == AGENT_B[0]
    answered = of_type(redis_client, call_id, "consult_answered")[0]
    assert epoch(answered) - epoch(started) > 1.0  # the target's phone rang first
    time.sleep(2.0)
    consult(redis_client, call_id, "t-2", mode="cancel", **target)
    ended = of_type(redis_client, call_id, "consult_ended")[0]
    assert (ended.data["reason"], ended.data["answered"]) == ("cancelled", True)
    unheld = of_type(redis_client, call_id, "unheld")[0]
    assert unheld.data == {"reason": "consult_ended"}
    time.sleep(2.0)
    back = time.time()
    consult(redis_client, call_id, "t-3", mode="consult", **target)
    answered_again = of_type(redis_client, call_id, "consult_answered", 2)[1]
    time.sleep(2.0)
    consult(redis_client, call_id, "t-4", mode="complete", **target)
    transferred = of_type(redis_client, call_id, "transferred")[0]
    assert transferred.data["consult"] is True
    assert (transferred.data["kind"], transferred.data["agent_id"]) == ("agent", 2)
    assert of_type(redis_client, call_id, "bridged", 2)[1].data["agent_id"] == 2
    finished(agent_a)  # the first agent's leg got its BYE at the hand-over
    time.sleep(2.0)
    end = time.time()
    send(redis_client, SLOT, "hangup", call_id, "h-1")
    of_type(redis_client, call_id, "call_ended")
    finished(caller)
    finished(agent_b)

    # What the caller heard: A, then only music while A and B talked, A again after the
    # cancel, music during the second consultation, then B alone after the hand-over.
    cancel_at, complete_at = epoch(ended), epoch(transferred)
    with_a = power(listener, epoch(bridged) + 0.3, epoch(started) - 0.1, A_TONE)
    talking = (epoch(answered) + 0.3, cancel_at - 0.1)
    assert power(listener, *talking, A_TONE) < with_a / 100
    assert power(listener, *talking, B_TONE) < with_a / 100
    assert power(listener, cancel_at + 0.3, back - 0.1, A_TONE) > with_a / 4  # A is back
    talking_again = (epoch(answered_again) + 0.3, complete_at - 0.1)
    assert power(listener, *talking_again, B_TONE) < with_a / 100
    with_b = power(listener, complete_at + 0.3, end - 0.1, B_TONE)
    assert with_b > with_a / 4
    assert power(listener, complete_at + 0.3, end - 0.1, A_TONE) < with_b / 100

    # The recording has the consultation (agent and target), not the hold music.
    events = call_events(redis_client, call_id)
    started_rec = next(e for e in events if e.type == "recording_started")
    stopped = next(e for e in events if e.type == "recording_stopped").data
    pcm, rate = wav.samples(Path(stopped["path"]))
    begin = epoch(started_rec)
    part = pcm[int((talking[0] - begin) * rate) : int((talking[1] - begin) * rate)]
    noise = max(wav.tone_power(part, rate, 2500), 1)
    assert wav.tone_power(part, rate, A_TONE) > 100 * noise
    assert wav.tone_power(part, rate, B_TONE) > 100 * noise
    types = [e.type for e in events]
    assert types.index("transferred") < types.index("call_ended")
    assert types.count("consult_ended") == 1  # the completed one ends with "transferred"


def test_consult_target_not_answering_then_declining(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    tones: dict[float, Path],
    listener: RtpListener,
) -> None:
    start_engine(lines=2, spares=2, rtp_silence_timeout_seconds=120)
    agent_a = phone(tmp_path, AGENT_A, agent_scenario(tmp_path / "a.xml", tones[A_TONE]))
    ringing = phone(tmp_path, AGENT_B, ringing_scenario(tmp_path / "ring.xml"))
    caller, call_id = start_caller(tmp_path, redis_client, "13600000012", [("wait_bye", 0)])
    bridge_to_a(redis_client, call_id)
    target = {"kind": "agent", "target": AGENT_B[0], "agent_id": 2}
    consult(redis_client, call_id, "t-1", mode="consult", ring_timeout=2, **target)
    started = of_type(redis_client, call_id, "consult_started")[0]
    ended = of_type(redis_client, call_id, "consult_ended")[0]
    assert (ended.data["reason"], ended.data["answered"]) == ("no_answer", False)
    assert 1.8 < epoch(ended) - epoch(started) < 4
    assert of_type(redis_client, call_id, "unheld")[0].data == {"reason": "consult_ended"}
    finished(ringing)  # it got the CANCEL
    # complete before an answer is refused (nothing to complete now)
    consult(redis_client, call_id, "t-2", mode="complete", **target)
    failed = of_type(redis_client, call_id, "command_failed")[0].data
    assert "no consultation" in failed["reason"] and failed["mode"] == "complete"

    busy = phone(tmp_path, AGENT_B, agent_scenario(tmp_path / "busy.xml", None, reject=486))
    consult(redis_client, call_id, "t-3", mode="consult", ring_timeout=10, **target)
    declined = of_type(redis_client, call_id, "consult_ended", 2)[1]
    assert (declined.data["reason"], declined.data["code"]) == ("declined", 486)
    back = epoch(of_type(redis_client, call_id, "unheld", 2)[1])
    finished(busy)
    time.sleep(1.5)
    end = time.time()
    send(redis_client, SLOT, "hangup", call_id, "h-1")
    of_type(redis_client, call_id, "call_ended")
    finished(caller)
    finished(agent_a)
    noise = max(power(listener, back + 0.3, end - 0.1, 2500), 1)
    assert power(listener, back + 0.3, end - 0.1, A_TONE) > 100 * noise  # the agent is back


def test_consult_a_configured_number_through_the_trunk_then_complete(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    tones: dict[float, Path],
    listener: RtpListener,
) -> None:
    start_engine(lines=2, spares=2, rtp_silence_timeout_seconds=120)
    agent_a = phone(tmp_path, AGENT_A, agent_scenario(tmp_path / "a.xml", tones[A_TONE]))
    trunk = phone(
        tmp_path,
        ("", TRUNK_PORT, 46430),
        agent_scenario(tmp_path / "manager.xml", tones[B_TONE], answer_after_ms=800),
    )
    caller, call_id = start_caller(tmp_path, redis_client, "13600000013", [("wait_bye", 0)])
    bridge_to_a(redis_client, call_id)
    # only [transfer_targets] names: a bare number is refused
    consult(redis_client, call_id, "t-0", mode="consult", kind="number", target="110")
    refused = of_type(redis_client, call_id, "command_failed")[0].data
    assert "not an allowed consultation target" in refused["reason"]
    consult(redis_client, call_id, "t-1", mode="consult", kind="number", target="duty_manager")
    started = of_type(redis_client, call_id, "consult_started")[0].data
    assert started["target_uri"].startswith(f"sip:13900000099@127.0.0.1:{TRUNK_PORT}")
    assert started["agent_id"] is None
    of_type(redis_client, call_id, "consult_answered")
    time.sleep(1.0)
    consult(redis_client, call_id, "t-2", mode="complete", kind="number", target="duty_manager")
    transferred = of_type(redis_client, call_id, "transferred")[0].data
    assert (transferred["kind"], transferred["to"], transferred["consult"]) == (
        "number",
        "duty_manager",
        True,
    )
    complete_at = time.time()
    finished(agent_a)
    time.sleep(2.0)
    end = time.time()
    send(redis_client, SLOT, "hangup", call_id, "h-1")
    call_end = of_type(redis_client, call_id, "call_ended")[0].data
    assert call_end["outcome"] == "transferred"
    finished(caller)
    finished(trunk)
    noise = max(power(listener, complete_at + 0.5, end - 0.1, 2500), 1)
    assert power(listener, complete_at + 0.5, end - 0.1, B_TONE) > 100 * noise


def test_caller_hanging_up_during_a_consultation_ends_everything(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    tones: dict[float, Path],
    listener: RtpListener,
) -> None:
    start_engine(lines=2, spares=2, rtp_silence_timeout_seconds=120)
    agent_a = phone(tmp_path, AGENT_A, agent_scenario(tmp_path / "a.xml", tones[A_TONE]))
    agent_b = phone(tmp_path, AGENT_B, agent_scenario(tmp_path / "b.xml", tones[B_TONE]))
    # the caller hangs up by itself 6 s after pressing 0: in the middle of the consultation
    caller, call_id = start_caller(tmp_path, redis_client, "13600000014", [("pause", 6000)])
    bridge_to_a(redis_client, call_id)
    consult(
        redis_client,
        call_id,
        "t-1",
        mode="consult",
        kind="agent",
        target=AGENT_B[0],
        agent_id=2,
        ring_timeout=10,
    )
    of_type(redis_client, call_id, "consult_answered")
    ended = of_type(redis_client, call_id, "call_ended")[0].data
    assert ended["reason"] == "caller_hung_up"
    consult_end = of_type(redis_client, call_id, "consult_ended")[0].data
    assert (consult_end["reason"], consult_end["agent_id"]) == ("caller_hung_up", 2)
    types = [e.type for e in call_events(redis_client, call_id)]
    assert types.index("caller_hung_up") < types.index("consult_ended") < types.index("call_ended")
    finished(caller)
    finished(agent_a)  # both agents' legs got their BYE
    finished(agent_b)


def test_withdrawn_offer_stops_the_first_phone_before_the_next_rings(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    tones: dict[float, Path],
    listener: RtpListener,
) -> None:
    """Missed offers: the engine reports the miss as soon as it gives up on a phone (not when
    a slow phone finally answers the CANCEL), and routing's withdrawal (``cancel_offer``, or
    a new offer for the same call) stops the ringing phone before the next one rings."""
    start_engine(lines=2, spares=2, rtp_silence_timeout_seconds=120)
    # a slow phone: answers the CANCEL at once but its 487 comes 4 s later
    slow = phone(tmp_path, AGENT_A, ringing_scenario(tmp_path / "slow.xml", 4000), 3)
    agent_b = phone(tmp_path, AGENT_B, agent_scenario(tmp_path / "b.xml", tones[B_TONE]), calls=1)
    caller, call_id = start_caller(tmp_path, redis_client, "13600000015", [("wait_bye", 0)])
    a_offer = {"agent_uri": AGENT_A[0], "agent_id": 1}
    # 1. the engine's own ring timeout (1.5 s): agent_missed at once, not when the 487 comes
    send(redis_client, SLOT, "offer", call_id, "o-1", ring_timeout=1.5, **a_offer)
    offered = of_type(redis_client, call_id, "agent_offered")[0]
    missed = of_type(redis_client, call_id, "agent_missed")[0]
    assert missed.data["reason"] == "ring_timeout" and missed.data["agent_id"] == 1
    assert epoch(missed) - epoch(offered) < 3.5
    # 2. routing's timer fired first: cancel_offer, then the offer to the next agent
    send(redis_client, SLOT, "offer", call_id, "o-2", ring_timeout=60, **a_offer)
    of_type(redis_client, call_id, "agent_ringing", 2)
    send(redis_client, SLOT, "cancel_offer", call_id, "x-1", agent_id=1, reason="ring_timeout")
    second_miss = of_type(redis_client, call_id, "agent_missed", 2)[1]
    assert second_miss.data["agent_id"] == 1
    # the two cancelled legs still count against the slot's 4 calls until their 487s
    time.sleep(max(0.0, epoch(second_miss) + 4.5 - time.time()))
    # 3. routing offered the call to someone else without a withdrawal first: the ringing
    #    phone is stopped before the new one is dialled
    send(redis_client, SLOT, "offer", call_id, "o-3", ring_timeout=60, **a_offer)
    of_type(redis_client, call_id, "agent_ringing", 3)
    send(redis_client, SLOT, "offer", call_id, "o-4", agent_uri=AGENT_B[0], agent_id=2)
    bridged = of_type(redis_client, call_id, "bridged")[0]
    assert bridged.data["agent_id"] == 2
    events = call_events(redis_client, call_id)
    sequence = [(e.type, e.data.get("agent_id")) for e in events]
    third_miss = [i for i, s in enumerate(sequence) if s == ("agent_missed", 1)][2]
    b_offer = sequence.index(("agent_offered", 2))
    assert third_miss < b_offer  # the first phone was cancelled before the second was dialled
    failed = [e.data for e in events if e.type == "command_failed"]
    assert failed == [], failed
    send(redis_client, SLOT, "hangup", call_id, "h-1")
    of_type(redis_client, call_id, "call_ended")
    finished(caller)
    finished(agent_b)
    finished(slow, timeout=40)  # every one of its three calls got a CANCEL


def test_completing_while_the_target_rings_hands_the_caller_over_when_they_answer(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    tones: dict[float, Path],
    listener: RtpListener,
) -> None:
    """Semi-attended transfer: A completes while B's phone rings. A's leg leaves at once;
    B's ringing leg becomes the call's offer, and B answering is bridged to the caller."""
    start_engine(lines=2, spares=2, rtp_silence_timeout_seconds=120)
    agent_a = phone(tmp_path, AGENT_A, agent_scenario(tmp_path / "a.xml", tones[A_TONE]))
    agent_b = phone(
        tmp_path,
        AGENT_B,
        agent_scenario(tmp_path / "b.xml", tones[B_TONE], answer_after_ms=3000),
    )
    caller, call_id = start_caller(tmp_path, redis_client, "13600000015", [("wait_bye", 0)])
    bridge_to_a(redis_client, call_id)
    time.sleep(1.0)
    target = {"kind": "agent", "target": AGENT_B[0], "agent_id": 2, "ring_timeout": 10}
    consult(redis_client, call_id, "s-1", mode="consult", **target)
    of_type(redis_client, call_id, "consult_started")
    time.sleep(1.0)
    consult(redis_client, call_id, "s-2", mode="complete", **target)
    transferred = of_type(redis_client, call_id, "transferred")[0]
    facts = transferred.data
    assert (facts["consult"], facts["answered"], facts["agent_id"]) == (True, False, 2)
    finished(agent_a)  # A's leg got its BYE at the hand-over, before B answered
    answered = of_type(redis_client, call_id, "agent_answered", 2)[1]
    assert answered.data["agent_id"] == 2
    assert epoch(answered) > epoch(transferred) + 0.5  # B was still ringing at the hand-over
    bridged = of_type(redis_client, call_id, "bridged", 2)[1]
    assert bridged.data["agent_id"] == 2
    time.sleep(2.0)
    end = time.time()
    send(redis_client, SLOT, "hangup", call_id, "h-1")
    of_type(redis_client, call_id, "call_ended")
    finished(caller)
    finished(agent_b)
    with_b = power(listener, epoch(bridged) + 0.3, end - 0.1, B_TONE)
    assert with_b > 100 * max(power(listener, epoch(bridged) + 0.3, end - 0.1, A_TONE), 1)
    types = [e.type for e in call_events(redis_client, call_id)]
    assert "consult_ended" not in types and "command_failed" not in types


def test_completing_while_the_target_rings_then_no_answer_puts_the_caller_back_in_line(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    tones: dict[float, Path],
) -> None:
    """The target of a semi-attended transfer does not answer: their phone is CANCELled at
    the ring timeout, the miss is reported, and the caller waits in the queue again."""
    start_engine(lines=2, spares=2, rtp_silence_timeout_seconds=120)
    agent_a = phone(tmp_path, AGENT_A, agent_scenario(tmp_path / "a.xml", tones[A_TONE]))
    ringing = phone(tmp_path, AGENT_B, ringing_scenario(tmp_path / "ring.xml"))
    caller, call_id = start_caller(tmp_path, redis_client, "13600000016", [("wait_bye", 0)])
    bridge_to_a(redis_client, call_id)
    target = {"kind": "agent", "target": AGENT_B[0], "agent_id": 2, "ring_timeout": 3}
    consult(redis_client, call_id, "s-3", mode="consult", **target)
    started_at = epoch(of_type(redis_client, call_id, "consult_started")[0])
    consult(redis_client, call_id, "s-4", mode="complete", **target)
    of_type(redis_client, call_id, "transferred")
    finished(agent_a)
    missed = of_type(redis_client, call_id, "agent_missed")[0]
    assert (missed.data["agent_id"], missed.data["reason"]) == (2, "ring_timeout")
    assert epoch(missed) - started_at > 2.5  # the consultation's own ring timeout
    finished(ringing)  # its phone got the CANCEL
    assert caller.poll() is None  # the caller is still there, waiting in line
    types = [e.type for e in call_events(redis_client, call_id)]
    assert "call_ended" not in types
    send(redis_client, SLOT, "hangup", call_id, "h-2")
    of_type(redis_client, call_id, "call_ended")
    finished(caller)
