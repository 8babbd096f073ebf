"""Commands on a slot's stream: queue announcements, hold, supervisor listen/barge, transfers,
play, and an outbound callback (agent first, then the customer through the trunk)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from callcenter.testkit.scenarios import (
    agent_scenario,
    caller_scenario,
    customer_scenario,
    survey_customer_scenario,
)
from callcenter.testkit.sipp import finished, sipp, sipp_agent
from ivr import wav
from tests.engine.conftest import (
    TRUNK_PORT,
    EngineProcess,
    call_events,
    call_of,
    events,
    wait_for,
)

pytestmark = pytest.mark.sip


def uas(
    tmp_path: Path, name: str, port: int, media_port: int, pcap: Path | None, calls: int = 1
) -> subprocess.Popen[bytes]:
    scenario = agent_scenario(tmp_path / f"{name}.xml", pcap)
    return sipp_agent(
        scenario, local_port=port, media_port=media_port, calls=calls, timeout_s=90, cwd=tmp_path
    )


def send(client: redis.Redis, slot: str, type_: str, call_id: str, ident: str, **data: Any) -> None:
    client.xadd(
        f"cc:slot:{slot}:cmd",
        {"type": type_, "call_id": call_id, "id": ident, "data": json.dumps(data)},
    )


def seen(client: redis.Redis, call_id: str, type_: str, count: int = 1) -> list[dict[str, Any]]:
    return wait_for(
        lambda: (
            (found := [e.data for e in call_events(client, call_id) if e.type == type_])
            and len(found) >= count
            and found
        ),
        15,
        f"{count} {type_} event(s) for {call_id}; seen so far: "
        f"{[e.type for e in call_events(client, call_id)]}",
    )


def test_queue_announcements_hold_listen_and_transfers(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    pcaps: dict[str, Path],
) -> None:
    start_engine(lines=4, spares=3)
    agent = uas(tmp_path, "agent", 16621, 46200, pcaps["agent"])
    supervisor = uas(tmp_path, "supervisor", 16622, 46210, None)
    first = caller_scenario(
        tmp_path / "first.xml",
        [("pause", 600), ("dtmf", "0"), ("audio", pcaps["caller"]), ("wait_bye", 0)],
        caller="13600000001",
    )
    second = caller_scenario(
        tmp_path / "second.xml",
        [("pause", 1500), ("dtmf", "0"), ("pause", 14000)],
        caller="13600000002",
    )
    first_run = sipp(first, "127.0.0.1:16100", local_port=16521, media_port=46220, cwd=tmp_path)
    second_run = sipp(second, "127.0.0.1:16101", local_port=16522, media_port=46230, cwd=tmp_path)
    a = wait_for(lambda: call_of(redis_client, "13600000001"), 10, "call A")
    b = wait_for(lambda: call_of(redis_client, "13600000002"), 10, "call B")
    # both wait in "general"; each hears its position (the engine's own count)
    announced_a = seen(redis_client, a, "announced")[0]
    announced_b = seen(redis_client, b, "announced")[0]
    assert (announced_a["position"], announced_b["position"]) == (1, 2)
    assert announced_a["source"] == "engine" and announced_b["queue"] == "general"
    # an announcement sent by routing (text rendered by the slot), and an unknown prompt
    send(redis_client, "node1-s01", "play", b, "p-1", text="您的来电对我们很重要。")
    send(redis_client, "node1-s01", "play", b, "p-2", prompt="no.such.prompt")
    failed = seen(redis_client, b, "command_failed")
    assert [f["command_id"] for f in failed] == ["p-2"]

    send(redis_client, "node1-s00", "offer", a, "c-1", agent_uri="sip:1001@127.0.0.1:16621")
    seen(redis_client, a, "bridged")
    send(redis_client, "node1-s00", "hold", a, "c-2")
    seen(redis_client, a, "held")
    send(redis_client, "node1-s00", "unhold", a, "c-3")
    seen(redis_client, a, "unheld")
    send(redis_client, "node1-s00", "listen", a, "c-4", supervisor_uri="sip:lead1@127.0.0.1:16622")
    joined = seen(redis_client, a, "supervisor_joined")
    assert joined[0]["mode"] == "listen"
    send(redis_client, "node1-s00", "barge", a, "c-5")
    assert seen(redis_client, a, "supervisor_joined", 2)[1]["mode"] == "barge"
    # only numbers from telephony.toml may be dialled
    send(redis_client, "node1-s00", "transfer", a, "c-6", kind="number", target="110")
    assert "not an allowed transfer target" in seen(redis_client, a, "command_failed")[0]["reason"]
    # back to a queue: the agent leg ends, the caller waits in "repair"
    send(redis_client, "node1-s00", "transfer", a, "c-7", kind="queue", target="repair")
    assert seen(redis_client, a, "transferred")[0] == {"kind": "queue", "to": "repair"}
    requeued = seen(redis_client, a, "call_queued", 2)[1]
    assert (requeued["queue"], requeued["previous_queue"]) == ("repair", "general")
    agent.communicate(timeout=20)
    assert agent.returncode == 0  # got its BYE
    send(redis_client, "node1-s00", "hangup", a, "c-8")
    first_run.communicate(timeout=30)
    second_run.communicate(timeout=30)
    supervisor.kill()
    supervisor.wait()
    assert first_run.returncode == 0
    ended = seen(redis_client, a, "call_ended")[0]
    assert (ended["reason"], ended["outcome"]) == ("command_hangup", "answered")


def test_originate_dials_agent_then_customer_through_trunk(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    pcaps: dict[str, Path],
) -> None:
    start_engine(lines=2, spares=2)
    agent = uas(tmp_path, "agent", 16623, 46240, pcaps["agent"])
    # the carrier trunk answers as the customer, sends the caller tone, hangs up after 4 s
    trunk_xml = customer_scenario(tmp_path / "trunk.xml", pcaps["caller"], 4000)
    trunk = sipp_agent(trunk_xml, local_port=TRUNK_PORT, media_port=46250, cwd=tmp_path)
    redis_client.xadd(
        "cc:engine:cmd",  # keys.engine_commands
        {
            "type": "originate",
            "call_id": "cb-1",
            "id": "o-1",
            "data": json.dumps(
                {
                    "number": "13800138000",
                    "agent_uri": "sip:1001@127.0.0.1:16623",
                    "purpose": "callback",
                    "ticket_id": 7,
                }
            ),
        },
    )
    try:
        wait_for(
            lambda: any(
                e.call_id == "cb-1" and e.type == "call_ended" for _i, e in events(redis_client)
            ),
            30,
            "the callback to end",
        )
    except AssertionError as exc:
        seen_events = [(e.type, e.data) for _i, e in events(redis_client)]
        raise AssertionError(f"{exc}; events: {seen_events}") from None
    trunk.communicate(timeout=20)
    agent.communicate(timeout=20)
    sequence = [e.type for e in call_events(redis_client, "cb-1")]
    for expected in (
        "call_arrived",
        "agent_answered",
        "originated",
        "bridged",
        "recording_stopped",
        "call_ended",
    ):
        assert expected in sequence, sequence
    arrived = call_events(redis_client, "cb-1")[0].data
    assert (arrived["direction"], arrived["caller"]) == ("out", "13800138000")
    originated = next(e.data for e in call_events(redis_client, "cb-1") if e.type == "originated")
    assert (originated["purpose"], originated["ticket_id"]) == ("callback", 7)
    stopped = next(
        e.data for e in call_events(redis_client, "cb-1") if e.type == "recording_stopped"
    )
    pcm, rate = wav.samples(Path(stopped["path"]))
    part = pcm[-3 * rate : -rate]
    noise = max(wav.tone_power(part, rate, 2500), 1)
    assert wav.tone_power(part, rate, 440) > 100 * noise  # the customer
    assert wav.tone_power(part, rate, 1000) > 100 * noise  # the agent


SURVEY = {
    "kind": "satisfaction_1_5",
    "digits": "12345",
    "prompt_zh": "您好，这里是物业客服中心回访。满意请按5，不满意请按1。",
    "prompt_en": "Hello, this is the property service center. Press 5 if satisfied.",
    "variable": "satisfaction",
}


def survey_originate(client: redis.Redis, call_id: str, **extra: Any) -> None:
    """What ticketing's ``publish_callback_call`` sends in survey mode (no agent_uri)."""
    data = {
        "number": "13800138000",
        "purpose": "callback",
        "mode": "survey",
        "agent_first": False,
        "ticket_id": 7,
        "callback_id": 3,
        "survey": SURVEY,
        **extra,
    }
    client.xadd(
        "cc:engine:cmd",  # keys.engine_commands
        {"type": "originate", "call_id": call_id, "id": call_id, "data": json.dumps(data)},
    )


def trunk_uas(tmp_path: Path, scenario: Path) -> subprocess.Popen[bytes]:
    return sipp_agent(scenario, local_port=TRUNK_PORT, media_port=46250, cwd=tmp_path)


def ended(client: redis.Redis, call_id: str, timeout: float = 40) -> list[Any]:
    try:
        wait_for(
            lambda: any(e.type == "call_ended" for e in call_events(client, call_id)),
            timeout,
            f"{call_id} to end",
        )
    except AssertionError as exc:
        seen_events = [(e.type, e.data) for e in call_events(client, call_id)]
        raise AssertionError(f"{exc}; events: {seen_events}") from None
    return call_events(client, call_id)


def test_survey_originate_dials_customer_and_collects_the_key(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    start_engine(lines=2, spares=2)
    # the carrier trunk answers as the customer, who keys 4 (RFC 2833) during the question
    trunk = trunk_uas(tmp_path, survey_customer_scenario(tmp_path / "trunk.xml", "4", 1500))
    survey_originate(redis_client, "callback-3-1")
    call = ended(redis_client, "callback-3-1")
    finished(trunk, 20)  # it got the engine's BYE
    sequence = [e.type for e in call]
    for expected in (
        "call_arrived",
        "originated",
        "recording_started",
        "menu_entered",
        "digit_received",
        "digits_collected",
        "recording_stopped",
        "call_ended",
    ):
        assert expected in sequence, sequence
    assert "agent_offered" not in sequence and "bridged" not in sequence, sequence
    originated = next(e.data for e in call if e.type == "originated")
    assert (originated["mode"], originated["callback_id"]) == ("survey", 3)
    collected = [e.data for e in call if e.type == "digits_collected"]
    assert collected == [{"variable": "satisfaction", "value": "4", "node": "survey"}]
    assert sequence.index("digits_collected") < sequence.index("call_ended")
    end = call[-1].data
    assert (end["outcome"], end["reason"]) == ("answered", "menu_hangup"), end
    stopped = next(e.data for e in call if e.type == "recording_stopped")
    assert stopped["status"] == "complete", stopped
    pcm, rate = wav.samples(Path(stopped["path"]))
    assert len(pcm) > rate  # more than a second: the question and the thanks
    assert wav.rms(pcm) > 100  # the prompts were recorded, not silence


def test_survey_originate_reports_a_busy_customer(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    start_engine(lines=1, spares=1)
    trunk = trunk_uas(tmp_path, agent_scenario(tmp_path / "busy.xml", None, reject=486))
    survey_originate(redis_client, "callback-3-2")
    call = ended(redis_client, "callback-3-2")
    trunk.communicate(timeout=20)
    end = call[-1].data
    assert (end["outcome"], end["reason"]) == ("busy", "customer_unreachable"), end
    assert "digits_collected" not in [e.type for e in call]
    assert "recording_started" not in [e.type for e in call]


def test_survey_originate_refuses_a_survey_without_keys(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
) -> None:
    start_engine(lines=1, spares=1)
    survey_originate(redis_client, "callback-3-3", survey={**SURVEY, "digits": "abc"})
    failed = seen(redis_client, "callback-3-3", "command_failed")
    assert "survey.digits 'abc'" in failed[0]["reason"], failed
    assert "originated" not in [e.type for e in call_events(redis_client, "callback-3-3")]
