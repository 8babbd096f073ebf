"""Call records: the ``calls`` consumer group, idempotent replay, and the calls/recordings API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from callcenter.context import AppContext, build_context
from callcenter.migrate import upgrade
from callcenter.models import AuditEntry
from callcenter.streams import CallEvent
from callcenter.testkit.scenarios import agent_scenario, caller_scenario
from callcenter.testkit.sipp import sipp, sipp_agent
from config.settings import Settings
from cti.models import Agent, Call
from cti.models import CallEvent as CallEventRow
from ivr.records import GROUP, CallRecordConsumer
from recordings.models import Recording
from tests.conftest import TEST_REDIS_URL, auth
from tests.engine.conftest import EngineProcess, call_events, call_of, wait_for


def _timeline(call_id: str) -> list[CallEvent]:
    data: list[tuple[str, str, dict[str, Any]]] = [
        ("call_arrived", "", {"caller": "13800138000", "did": "4008001234", "direction": "in"}),
        ("recording_started", "", {"recording_id": call_id, "path": "/tmp/x.wav"}),
        ("menu_chosen", "main", {"digit": "1", "target": "repair_room"}),
        ("digits_collected", "repair_room", {"variable": "room", "value": "1201"}),
        ("call_queued", "repair", {"queue": "repair", "priority": 0, "collected": {}}),
        ("agent_answered", "", {"agent_uri": "sip:1001@127.0.0.1", "agent_id": None}),
        (
            "recording_stopped",
            "",
            {
                "recording_id": call_id,
                "path": "/tmp/x.wav",
                "duration": 12.5,
                "bytes": 200044,
                "sha256": "ab" * 32,
                "status": "complete",
            },
        ),
        ("call_ended", "", {"reason": "caller_hung_up", "outcome": "answered"}),
    ]
    return [
        CallEvent(type=t, call_id=call_id, slot="node1-s00", node=n, data=d) for t, n, d in data
    ]


@pytest.fixture
def consumer_ctx(database_url: str, tmp_path: Path, redis_client: redis.Redis) -> Any:
    upgrade(database_url)
    ctx = build_context(
        Settings(
            environment="test",
            state_dir=tmp_path,
            database_url=database_url,
            redis_url=TEST_REDIS_URL,
        )
    )
    yield ctx
    ctx.close()


def _counts(ctx: AppContext, call_id: str) -> tuple[int, int, int]:
    with ctx.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Call)) or 0,
            session.scalar(
                select(func.count())
                .select_from(CallEventRow)
                .where(CallEventRow.call_id == call_id)
            )
            or 0,
            session.scalar(select(func.count()).select_from(Recording)) or 0,
        )


def test_consumer_is_idempotent_on_replay_and_resumes_pending(consumer_ctx: AppContext) -> None:
    ctx = consumer_ctx
    client: Any = ctx.redis
    for event in _timeline("call-a")[:4]:
        client.xadd(ctx.keys.events, event.to_fields())
    consumer = CallRecordConsumer(ctx, consumer="c1")
    assert consumer.run_once(block_ms=10) == 4
    # the consumer "crashes" after reading the next entries but before acknowledging them
    for event in _timeline("call-a")[4:]:
        client.xadd(ctx.keys.events, event.to_fields())
    client.xreadgroup(GROUP, "c1", {ctx.keys.events: ">"}, count=2)
    assert client.xpending(ctx.keys.events, GROUP)["pending"] == 2
    restarted = CallRecordConsumer(ctx, consumer="c1")
    assert restarted.run_once(block_ms=10) == 4  # 2 pending + 2 new: nothing lost
    assert client.xpending(ctx.keys.events, GROUP)["pending"] == 0
    assert _counts(ctx, "call-a") == (1, 8, 1)
    # a full replay from the start of the stream writes nothing twice
    client.xgroup_setid(ctx.keys.events, GROUP, id="0")
    assert restarted.run_once(block_ms=10) == 0
    assert _counts(ctx, "call-a") == (1, 8, 1)
    with ctx.sessions() as session:
        call = session.get(Call, "call-a")
        assert call is not None
        assert call.caller_number == "13800138000" and call.did == "4008001234"
        assert call.queue_code == "repair" and call.outcome == "answered"
        assert call.collected == {"room": "1201"}
        assert [step["node"] for step in call.menu_path] == ["main", "repair_room"]
        assert call.arrived_at and call.queued_at and call.answered_at and call.ended_at
        recording = session.get(Recording, "call-a")
        assert recording is not None
        assert (recording.status, recording.bytes, recording.duration_seconds) == (
            "complete",
            200044,
            12.5,
        )


def test_malformed_event_is_skipped_not_fatal(consumer_ctx: AppContext) -> None:
    client: Any = consumer_ctx.redis
    client.xadd(consumer_ctx.keys.events, {"type": "call_arrived"})  # no call_id
    bad = CallEvent(type="recording_started", call_id="call-b", data={"recording_id": "r"})
    client.xadd(consumer_ctx.keys.events, bad.to_fields())  # no path
    good = _timeline("call-b")[0]
    client.xadd(consumer_ctx.keys.events, good.to_fields())
    assert CallRecordConsumer(consumer_ctx).run_once(block_ms=10) == 1
    assert _counts(consumer_ctx, "call-b")[1] == 1
    assert client.xpending(consumer_ctx.keys.events, GROUP)["pending"] == 0


PAUSED_SECONDS = 1.5


def _event(client: redis.Redis, call_id: str, type_: str) -> dict[str, Any] | None:
    found = [e.data for e in call_events(client, call_id) if e.type == type_]
    return found[-1] if found else None


def _command(client: redis.Redis, call_id: str, type_: str, ident: str, **data: Any) -> None:
    fields = {"type": type_, "call_id": call_id, "id": ident, "data": json.dumps(data)}
    client.xadd("cc:slot:node1-s00:cmd", fields)  # type: ignore[arg-type]


@pytest.mark.sip
def test_engine_call_is_recorded_and_served(
    start_engine: Callable[..., EngineProcess],
    redis_client: redis.Redis,
    client: TestClient,
    ctx: AppContext,
    tmp_path: Path,
    pcaps: dict[str, Path],
) -> None:
    start_engine(lines=2, spares=2, records=True)
    agent = agent_scenario(tmp_path / "agent.xml", pcaps["agent"])
    agent_run = sipp_agent(agent, local_port=16603, media_port=46120, cwd=tmp_path)
    caller = caller_scenario(
        tmp_path / "caller.xml",
        [
            ("pause", 600),
            ("dtmf", "1"),
            ("pause", 800),
            ("dtmf", "3"),
            ("dtmf", "#"),
            ("pause", 300),
            ("audio", pcaps["caller"]),
            ("pause", 5000),
        ],
        caller="13900000001",
    )
    caller_run = sipp(caller, "127.0.0.1:16100", local_port=16510, media_port=46130, cwd=tmp_path)
    call_id = wait_for(lambda: call_of(redis_client, "13900000001"), 10, "the call")

    def queued() -> bool:
        with ctx.sessions() as session:
            call = session.get(Call, call_id)
            return call is not None and call.queue_code == "repair"

    wait_for(queued, 15, "the call record to show the queue")
    redis_client.xadd(
        "cc:slot:node1-s00:cmd",
        {
            "type": "offer",
            "call_id": call_id,
            "id": "cmd-9",
            "data": '{"agent_uri": "sip:1001@127.0.0.1:16603"}',
        },
    )
    # PCI pause while the two talk: the span is left out of the file and marked
    wait_for(lambda: _event(redis_client, call_id, "bridged"), 15, "the agent to be bridged")
    _command(redis_client, call_id, "pause_recording", "cmd-10", agent_id=1)
    wait_for(lambda: _event(redis_client, call_id, "recording_paused"), 5, "the pause")
    _command(redis_client, call_id, "pause_recording", "cmd-11")  # already paused: refused
    time.sleep(PAUSED_SECONDS)  # the span to leave out (nothing to wait for: it is time)
    _command(redis_client, call_id, "resume_recording", "cmd-12", agent_id=1)
    resumed = wait_for(lambda: _event(redis_client, call_id, "recording_resumed"), 5, "resume")
    refused = _event(redis_client, call_id, "command_failed")
    assert refused and refused["command_id"] == "cmd-11", refused
    assert refused["reason"] == "the recording is already paused"
    caller_run.communicate(timeout=60)
    agent_run.communicate(timeout=60)
    assert caller_run.returncode == 0

    def ended() -> bool:
        with ctx.sessions() as session:
            call = session.get(Call, call_id)
            recording = session.scalar(select(Recording).where(Recording.call_id == call_id))
            return (
                call is not None
                and call.ended_at is not None
                and recording is not None
                and recording.status == "complete"
            )

    wait_for(ended, 15, "the call record to be complete")
    with ctx.sessions() as session:
        agent_1001 = session.scalar(select(Agent.id).where(Agent.extension == "1001"))
        agent_1002_user = "1002"

    lead = auth(client, "lead1")
    body = client.get(f"/api/v1/calls/{call_id}", headers=lead).json()
    assert body["caller_number"] == "13900000001"
    assert body["did"] == "4008001234"
    assert body["collected"] == {"room": "3"}
    assert [(s["node"], s.get("digit") or s.get("digits")) for s in body["menu_path"]] == [
        ("main", "1"),
        ("repair_room", "3"),
    ]
    assert body["queue"] == "repair"
    assert body["outcome"] == "answered"
    assert body["agent_id"] == agent_1001
    assert body["slot"] == "node1-s00"
    for moment in ("arrived_at", "queued_at", "answered_at", "ended_at"):
        assert body[moment], moment
    recording = body["recording"]
    assert recording["status"] == "complete" and recording["bytes"] > 44
    assert len(recording["sha256"]) == 64 and recording["duration_seconds"] > 3
    assert body["events"][0]["type"] == "call_arrived"
    # the paused span: absent from the file (shorter than the call by the span), marked in
    # the recording's metadata at the file offset where the audio goes on
    ended_event = next(e for e in body["events"] if e["type"] == "call_ended")
    (span,) = recording["paused_spans"]
    assert span["seconds"] == resumed["paused_s"] >= PAUSED_SECONDS
    assert span["offset_s"] == resumed["offset_s"] > 0 and span["by"] == 1
    assert span["paused_at"] < span["resumed_at"]
    missing = ended_event["data"]["duration"] - recording["duration_seconds"]
    assert abs(missing - span["seconds"]) < 0.5, (missing, span)

    listing = client.get("/api/v1/calls", params={"number": "13900000001"}, headers=lead).json()
    assert [c["id"] for c in listing["items"]] == [call_id]
    assert (
        client.get("/api/v1/calls", params={"number": "7777"}, headers=lead).json()["items"] == []
    )

    future = {"since": "2100-01-01T00:00:00+00:00"}
    assert client.get("/api/v1/calls", params=future, headers=lead).json()["items"] == []
    past = {"until": "2000-01-01T00:00:00+00:00"}
    assert client.get("/api/v1/calls", params=past, headers=lead).json()["items"] == []

    # agents see their own calls only
    own = auth(client, "1001")
    assert client.get(f"/api/v1/calls/{call_id}", headers=own).status_code == 200
    other = auth(client, agent_1002_user)
    assert client.get(f"/api/v1/calls/{call_id}", headers=other).status_code == 404
    assert client.get("/api/v1/calls", headers=other).json()["items"] == []
    assert client.get("/api/v1/calls", headers=auth(client, "eng1")).status_code == 403

    # the audio, whole and by Range, each playback audited
    audio_url = recording["audio_url"]
    whole = client.get(audio_url, headers=lead)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    assert len(whole.content) == recording["bytes"]
    part = client.get(audio_url, headers={**lead, "Range": "bytes=100-299"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-299/{recording['bytes']}"
    assert part.content == whole.content[100:300]
    tail = client.get(audio_url, headers={**lead, "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole.content[-10:]
    bad = client.get(audio_url, headers={**lead, "Range": f"bytes={recording['bytes']}-"})
    assert bad.status_code == 416 and bad.json()["error_id"] == "recordings.range-not-satisfiable"
    assert client.get(audio_url, headers=other).status_code == 404
    with ctx.sessions() as session:
        plays = session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action == "recording.play", AuditEntry.object_id == recording["id"])
        )
    assert plays == 3

    # post-processing of the engine's own recording (recordings/processing.py): the engine's
    # SHA-256 verified, the Opus transcode checked by decoding, a link's ranges byte-exact
    from recordings import jobs

    assert jobs.process_recording(recording["id"])["result"] == "processed"
    media = client.get(f"/api/v1/recordings/{recording['id']}/media", headers=lead).json()
    assert media["problem"] is None and media["audio_verified"] is True
    assert media["wav_sha256"] == recording["sha256"]
    assert abs(media["duration_seconds"] - recording["duration_seconds"]) < 0.05
    assert 0 < media["silence_share"] < 1 and max(media["peaks"]) > 0
    assert 0 < media["audio_bytes"] < recording["bytes"] / 4
    link = client.post(
        f"/api/v1/recordings/{recording['id']}/link", json={"format": "wav"}, headers=lead
    ).json()
    ranged = client.get(link["url"], headers={"Range": "bytes=1000-4999"})
    assert ranged.status_code == 206 and ranged.content == whole.content[1000:5000]
    # a damaged file is found by reconciliation and flagged, never dropped
    with ctx.sessions() as session:
        row = session.get(Recording, recording["id"])
        assert row is not None
        wav_path = Path(row.path)
    damaged = bytearray(wav_path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x40
    wav_path.write_bytes(bytes(damaged))
    report = client.post("/api/v1/recordings/reconciliation", headers=lead).json()
    assert [f["recording_id"] for f in report["findings"] if f["kind"] == "checksum-mismatch"] == [
        recording["id"]
    ]
    assert wav_path.read_bytes() == bytes(damaged)


def test_completed_consultation_gives_the_call_record_to_the_target(ctx: AppContext) -> None:
    """The demo agents (seeded SQLite): 1001 answers, consults 1002 and hands the call over."""
    from callcenter.db import transaction
    from ivr.records import apply_event

    with ctx.sessions() as session:
        ids = {a.extension: a.id for a in session.scalars(select(Agent))}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("call_arrived", {"caller": "13800138000", "did": "4008001234", "direction": "in"}),
        ("agent_answered", {"agent_id": ids["1001"]}),
        ("consult_started", {"kind": "agent", "agent_id": ids["1002"]}),
        ("consult_ended", {"kind": "agent", "agent_id": ids["1002"], "reason": "cancelled"}),
    ]
    with transaction(ctx.sessions) as session:
        for n, (kind, data) in enumerate(steps):
            apply_event(session, f"1-{n}", CallEvent(kind, "consulted", data=data))
    with ctx.sessions() as session:
        call = session.get(Call, "consulted")
        assert call is not None and call.agent_id == ids["1001"]  # cancelled: still 1001's
    handed_over = {"kind": "agent", "agent_id": ids["1002"], "consult": True}
    with transaction(ctx.sessions) as session:
        apply_event(session, "1-9", CallEvent("transferred", "consulted", data=handed_over))
    with ctx.sessions() as session:
        call = session.get(Call, "consulted")
        assert call is not None and call.agent_id == ids["1002"]
