"""Real SIP over loopback: SIPp callers and agents against a real ``callcenter engine``."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from callcenter.testkit.scenarios import (
    agent_scenario,
    caller_scenario,
    queue_then_talk,
    rejected_scenario,
)
from callcenter.testkit.sipp import finished, sipp, sipp_agent
from ivr import wav
from tests.engine.conftest import EngineProcess, call_events, call_of, wait_for
from tests.private_redis import PrivateRedis

pytestmark = pytest.mark.sip

SLOT0 = "127.0.0.1:16100"


def types(client: redis.Redis, call_id: str) -> list[str]:
    return [e.type for e in call_events(client, call_id)]


def event(client: redis.Redis, call_id: str, type_: str) -> dict[str, Any]:
    found = [e for e in call_events(client, call_id) if e.type == type_]
    assert found, f"no {type_} event for {call_id}: {types(client, call_id)}"
    return found[0].data


def loudest_window(path: Path, start: float, end: float, window: float = 0.25) -> float:
    pcm, rate = wav.samples(path)
    step = int(window * rate)
    windows = [wav.rms(pcm[i : i + step]) for i in range(int(start * rate), int(end * rate), step)]
    return max(windows, default=0.0)


def test_menu_prompt_digits_invalid_and_timeout(
    start_engine: Callable[..., EngineProcess], redis_client: redis.Redis, tmp_path: Path
) -> None:
    engine = start_engine(lines=4, spares=3)
    assert engine.pool()["slots"] == "3"  # the warm spares, not yet every line
    repair = caller_scenario(
        tmp_path / "repair.xml",
        [
            ("pause", 600),
            ("dtmf", "1"),
            ("pause", 1200),
            ("dtmf", "3"),
            ("dtmf", "9"),
            ("dtmf", "#"),
            ("pause", 2500),
        ],
        caller="13800000001",
    )
    invalid = caller_scenario(
        tmp_path / "invalid.xml",
        [("pause", 600), ("dtmf", "9"), ("pause", 1500)],
        caller="13800000002",
    )
    silent = caller_scenario(tmp_path / "silent.xml", [("pause", 17000)], caller="13800000003")
    runs = [
        sipp(repair, SLOT0, local_port=16501, media_port=46010, cwd=tmp_path),
        sipp(invalid, "127.0.0.1:16101", local_port=16502, media_port=46020, cwd=tmp_path),
        sipp(silent, "127.0.0.1:16102", local_port=16503, media_port=46030, cwd=tmp_path),
    ]
    for run in runs:
        finished(run)
    # three calls took three spares: the pool grew, capped at the 4 configured lines
    assert engine.pool()["slots"] == "4"

    # DTMF 1 → the room-number collect node → the repair queue
    call = call_of(redis_client, "13800000001") or ""
    assert call
    wait_for(lambda: "call_ended" in types(redis_client, call), 10, "the repair call to end")
    assert event(redis_client, call, "call_arrived")["did"] == "4008001234"
    chosen = event(redis_client, call, "menu_chosen")
    assert (chosen["digit"], chosen["target"]) == ("1", "repair_room")
    assert event(redis_client, call, "digits_collected") == {"variable": "room", "value": "39"}
    queued = event(redis_client, call, "call_queued")
    assert queued["queue"] == "repair"
    assert queued["collected"] == {"room": "39"}
    assert [step["node"] for step in queued["menu_path"]] == ["main", "repair_room"]
    stopped = event(redis_client, call, "recording_stopped")
    assert stopped["status"] == "complete"
    path = Path(stopped["path"])
    facts = wav.facts(path)
    assert (facts.sample_rate, facts.channels, facts.bits) == (8000, 1, 16)
    assert facts.sha256 == stopped["sha256"] and facts.bytes == stopped["bytes"]
    # the caller heard a prompt: the recording (what the caller heard and said) is not silent
    assert loudest_window(path, 0.0, 1.0) > 800

    # a bad digit gets the invalid prompt, then the menu again
    call = call_of(redis_client, "13800000002") or ""
    assert call
    invalid_event = event(redis_client, call, "menu_invalid")
    assert invalid_event["digits"] == "9"
    assert invalid_event["then_playing"] == ["main.invalid", "main.prompt"]

    # silence: timeout prompt, one retry, then the fallback (to_agent → general queue)
    call = call_of(redis_client, "13800000003") or ""
    assert call
    sequence = types(redis_client, call)
    assert sequence.count("menu_timeout") == 2
    entered = [e.data["node"] for e in call_events(redis_client, call) if e.type == "menu_entered"]
    assert entered == ["main", "to_agent"]
    assert event(redis_client, call, "call_queued")["queue"] == "general"


def test_sip_info_digits_walk_the_menu(
    start_engine: Callable[..., EngineProcess], redis_client: redis.Redis, tmp_path: Path
) -> None:
    start_engine(lines=2, spares=2)
    caller = caller_scenario(
        tmp_path / "info.xml",
        [
            ("pause", 600),
            ("info", "1"),
            ("pause", 800),
            ("info", "7"),
            ("info", "#"),
            ("pause", 800),
        ],
        caller="13800000004",
    )
    finished(sipp(caller, SLOT0, local_port=16520, media_port=46095, cwd=tmp_path))
    call = call_of(redis_client, "13800000004") or ""
    digits = [e.data for e in call_events(redis_client, call) if e.type == "digit_received"]
    assert [(d["digit"], d["method"]) for d in digits] == [("1", 1), ("7", 1), ("#", 1)]
    assert event(redis_client, call, "digits_collected")["value"] == "7"
    assert event(redis_client, call, "call_queued")["queue"] == "repair"


def test_refusals_unknown_did_and_foreign_source(
    start_engine: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    start_engine(lines=2, spares=2)
    unknown = rejected_scenario(tmp_path / "unknown.xml", did="4009999999", code=404)
    finished(sipp(unknown, SLOT0, local_port=16504, media_port=46040, cwd=tmp_path))
    # slots accept INVITEs only from the edge (here: 127.0.0.1); 127.0.0.3 is refused
    foreign = rejected_scenario(tmp_path / "foreign.xml", did="4008001234", code=403)
    finished(
        sipp(
            foreign,
            SLOT0,
            local_port=16505,
            media_port=46050,
            cwd=tmp_path,
            local_ip="127.0.0.3",
        )
    )


def test_offer_bridges_agent_and_recording_has_both_parties(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    tmp_path: Path,
    pcaps: dict[str, Path],
) -> None:
    start_engine(lines=2, spares=2)
    agent = agent_scenario(tmp_path / "agent.xml", pcaps["agent"])
    agent_run = sipp_agent(agent, local_port=16601, media_port=46100, cwd=tmp_path)
    caller = caller_scenario(
        tmp_path / "caller.xml",
        queue_then_talk(pcaps["caller"], 9000),
        caller="13800000010",
    )
    caller_run = sipp(caller, SLOT0, local_port=16506, media_port=46060, cwd=tmp_path)
    call = wait_for(lambda: call_of(redis_client, "13800000010"), 10, "the call to arrive")
    wait_for(lambda: "call_queued" in types(redis_client, call), 10, "the call to be queued")
    slot = redis_client.get(f"cc:call:{call}:slot")
    assert slot == "node1-s00"
    redis_client.xadd(
        f"cc:slot:{slot}:cmd",
        {
            "type": "offer",
            "call_id": call,
            "id": "cmd-1",
            "data": '{"agent_uri": "sip:1001@127.0.0.1:16601", "agent_id": 1}',
        },
    )
    finished(caller_run)
    hung_up_by = time.time()  # the caller's BYE was answered: SIPp has exited
    finished(agent_run)
    wait_for(lambda: "call_ended" in types(redis_client, call), 10, "the call to end")
    # the end is stamped at the BYE, not after the recorder's flush (CLOSE_PUMP_SECONDS later)
    ended = next(e for e in call_events(redis_client, call) if e.type == "call_ended")
    ended_at = datetime.fromisoformat(ended.at).timestamp()
    # pjsua answers the BYE before its DISCONNECTED callback runs: the stamp may follow SIPp's
    # exit by a few milliseconds, never by the 0.3 s flush it used to wait for
    assert hung_up_by - 2.0 < ended_at <= hung_up_by + 0.1, (ended_at, hung_up_by)
    stopped_event = next(
        e for e in call_events(redis_client, call) if e.type == "recording_stopped"
    )
    assert ended_at < datetime.fromisoformat(stopped_event.at).timestamp()
    sequence = types(redis_client, call)
    for expected in ("agent_offered", "agent_ringing", "agent_answered", "bridged"):
        assert expected in sequence, sequence
    assert event(redis_client, call, "call_ended")["outcome"] == "answered"
    stopped = event(redis_client, call, "recording_stopped")
    path = Path(stopped["path"])
    pcm, rate = wav.samples(path)
    bridged_part = pcm[-4 * rate : -rate]  # well inside the bridged conversation
    caller_tone = wav.tone_power(bridged_part, rate, 440)
    agent_tone = wav.tone_power(bridged_part, rate, 1000)
    silence = wav.tone_power(bridged_part, rate, 2500)
    assert caller_tone > 100 * max(silence, 1), (caller_tone, silence)
    assert agent_tone > 100 * max(silence, 1), (agent_tone, silence)
    # the recording covers the call from answer to hang-up
    assert abs(stopped["duration"] - event(redis_client, call, "call_ended")["duration"]) < 1.0


def test_agent_reject_reports_missed_and_caller_keeps_waiting(
    start_engine: Callable[..., EngineProcess], redis_client: redis.Redis, tmp_path: Path
) -> None:
    start_engine(lines=2, spares=2)
    agent = agent_scenario(tmp_path / "busy.xml", None, reject=486)
    agent_run = sipp_agent(agent, local_port=16602, media_port=46110, timeout_s=30, cwd=tmp_path)
    caller = caller_scenario(
        tmp_path / "caller.xml",
        [("pause", 600), ("dtmf", "0"), ("pause", 5000)],
        caller="13800000011",
    )
    caller_run = sipp(caller, SLOT0, local_port=16507, media_port=46070, cwd=tmp_path)
    call = wait_for(lambda: call_of(redis_client, "13800000011"), 10, "the call")
    wait_for(lambda: "call_queued" in types(redis_client, call), 10, "the call to be queued")
    redis_client.xadd(
        "cc:slot:node1-s00:cmd",
        {
            "type": "offer",
            "call_id": call,
            "id": "cmd-2",
            "data": '{"agent_uri": "sip:1002@127.0.0.1:16602"}',
        },
    )
    missed = wait_for(
        lambda: [e for e in call_events(redis_client, call) if e.type == "agent_missed"],
        10,
        "agent_missed",
    )
    assert missed[0].data["reason"] == "rejected"
    # an offer for a call that is not waiting is refused with a reason, not ignored
    redis_client.xadd(
        "cc:slot:node1-s00:cmd",
        {"type": "hold", "call_id": call, "id": "cmd-3", "data": "{}"},
    )
    failed = wait_for(
        lambda: [e for e in call_events(redis_client, call) if e.type == "command_failed"],
        10,
        "command_failed",
    )
    assert failed[0].data["command_id"] == "cmd-3"
    finished(caller_run)
    finished(agent_run)
    wait_for(lambda: "call_ended" in types(redis_client, call), 10, "the call to end")
    assert event(redis_client, call, "call_ended")["outcome"] in ("abandoned", "short_abandoned")


def test_slot_killed_mid_call_is_restarted_and_accounted_for(
    start_engine: Callable[..., EngineProcess], redis_client: redis.Redis, tmp_path: Path
) -> None:
    engine = start_engine(lines=3, spares=2)
    caller = caller_scenario(
        tmp_path / "long.xml",
        [("pause", 600), ("dtmf", "0"), ("pause", 30000)],
        caller="13800000020",
        hangup=False,
    )
    caller_run = sipp(caller, SLOT0, local_port=16508, media_port=46080, timeout_s=20, cwd=tmp_path)
    try:
        call = wait_for(lambda: call_of(redis_client, "13800000020"), 10, "the call")
        wait_for(lambda: "call_queued" in types(redis_client, call), 10, "queued")
        started = event(redis_client, call, "recording_started")
        # pjmedia and stdio buffer ~12 KB: wait until some audio is really on disk
        wait_for(lambda: Path(started["path"]).stat().st_size > 24000, 10, "audio on disk")
        old_pid = engine.slot_pid("node1-s00")
        os.kill(old_pid, signal.SIGKILL)
        wait_for(lambda: "call_ended" in types(redis_client, call), 15, "the call to be ended")
    finally:
        caller_run.kill()
        caller_run.wait()
    assert event(redis_client, call, "slot_failed")["reason"].startswith("slot process exited")
    stopped = event(redis_client, call, "recording_stopped")
    assert stopped["status"] == "repaired"
    path = Path(stopped["path"])
    assert wav.is_header_consistent(path)
    facts = wav.facts(path)
    assert facts.duration > 0.5 and facts.sha256 == stopped["sha256"]
    ended = event(redis_client, call, "call_ended")
    assert (ended["reason"], ended["outcome"]) == ("slot_failed", "slot_failed")

    # the slot is back (new process) and takes calls again
    def restarted() -> bool:
        entry = engine.pool().get("slot:node1-s00", "").split()
        return len(entry) >= 2 and entry[1] == "ready" and int(entry[0]) != old_pid

    wait_for(restarted, 15, "the slot to be restarted")
    again = caller_scenario(tmp_path / "again.xml", [("pause", 500)], caller="13800000021")
    finished(sipp(again, SLOT0, local_port=16509, media_port=46090, cwd=tmp_path))
    second = wait_for(lambda: call_of(redis_client, "13800000021"), 10, "the second call")
    assert call_events(redis_client, second)[0].slot == "node1-s00"


def test_sigterm_stops_every_process(
    start_engine: Callable[..., EngineProcess], redis_client: redis.Redis
) -> None:
    engine = start_engine(lines=3, spares=2, records=True)
    pids = [int(p) for p in engine.pool()["pids"].split(",")]
    assert len(pids) == 2
    assert redis_client.exists("cc:proc:engine:alive")
    assert engine.stop() == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"slot {pid} still running"
    assert not redis_client.exists("cc:proc:engine:alive")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_a_call_outlives_a_redis_restart(
    start_engine: Callable[..., EngineProcess], tmp_path: Path
) -> None:
    """Redis (AOF on) SIGKILLed with a caller queued; the caller hangs up while Redis is away
    (longer than the engine's heartbeat period): the engine keeps running, and the call's
    events reach the stream once Redis is back, each once and in order."""
    (tmp_path / "aof").mkdir()
    server = PrivateRedis(tmp_path / "aof")
    server.start()
    engine: EngineProcess | None = None
    try:
        engine = start_engine(lines=2, spares=1, redis_url=server.url)
        client = engine.redis
        steps: list[tuple[str, object]] = [("pause", 600), ("dtmf", "0"), ("pause", 4000)]
        caller = caller_scenario(tmp_path / "wait.xml", steps, caller="13800000030")
        caller_run = sipp(caller, SLOT0, local_port=16540, media_port=46140, cwd=tmp_path)
        call = wait_for(lambda: call_of(client, "13800000030"), 10, "the call")
        wait_for(lambda: "call_queued" in types(client, call), 10, "queued")
        server.kill()
        finished(caller_run)  # the caller hangs up while Redis is away
        time.sleep(1.0)  # away longer than the engine's heartbeat period (3 s) in all
        assert engine.process.poll() is None, f"the engine died:\n{engine.log()}"
        server.start()
        wait_for(lambda: "call_ended" in types(client, call), 10, "the call's end")
        kinds = types(client, call)
        ending = ("caller_hung_up", "abandoned", "call_ended")
        assert [k for k in kinds if k in ending] == list(ending), kinds  # once each, in order
        assert kinds.index("call_queued") < kinds.index("caller_hung_up"), kinds
        assert engine.process.poll() is None
        wait_for(lambda: client.exists("cc:proc:engine:alive"), 10, "the heartbeat again")
    finally:
        if engine is not None:
            engine.stop()
        server.kill()
