"""Post-processing: checksum verified, duration and silence measured, Opus transcode verified
by decoding, peaks stored, idempotent; a mismatch or a failing transcoder leaves the original
untouched and flagged; with an S3-compatible store both files land in the bucket."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rq import Worker
from sqlalchemy import update

from callcenter import runtime
from callcenter.app import create_app
from callcenter.context import AppContext, build_context
from callcenter.queues import queues
from config.settings import RecordingStorageSettings
from ivr import wav
from recordings import jobs
from recordings.models import Recording, RecordingMedia
from recordings.storage import read_all
from tests.conftest import auth
from tests.recordings.conftest import MadeCall


def _media(ctx: AppContext, recording_id: str) -> RecordingMedia:
    with ctx.sessions() as session:
        media = session.get(RecordingMedia, recording_id)
        assert media is not None
        session.expunge(media)
        return media


def _decoded_seconds(data: bytes, tmp_path: Path) -> float:
    encoded = tmp_path / "check.opus"
    encoded.write_bytes(data)
    decoded = tmp_path / "check.wav"
    subprocess.run(["opusdec", "--quiet", "--rate", "8000", str(encoded), str(decoded)], check=True)
    return wav.facts(decoded).duration


def test_job_measures_transcodes_and_is_idempotent(
    ctx: AppContext, make_call: Callable[..., MadeCall], tmp_path: Path
) -> None:
    made = make_call(tone_seconds=2.0, silence_seconds=2.0)
    original = made.path.read_bytes()
    assert jobs.process_recording(made.recording_id) == {
        "recording_id": made.recording_id,
        "result": "processed",
    }
    media = _media(ctx, made.recording_id)
    assert media.problem is None
    assert media.wav_sha256 == made.sha256
    assert media.wav_bytes == len(original)
    assert media.duration_seconds == pytest.approx(4.0, abs=0.01)
    assert media.silence_share == pytest.approx(0.5, abs=0.02)
    assert len(media.peaks) == 40
    assert min(media.peaks[:19]) >= 30 and max(media.peaks[21:]) == 0
    assert media.audio_verified and media.audio_format == "opus"
    opus_path = Path(ctx.settings.recordings_dir) / str(media.audio_key)
    opus = opus_path.read_bytes()
    assert opus[:4] == b"OggS"
    assert media.audio_bytes == len(opus) < len(original) / 4
    assert _decoded_seconds(opus, tmp_path) == pytest.approx(4.0, abs=0.1)
    assert made.path.read_bytes() == original  # the WAV is kept, unchanged
    with ctx.sessions() as session:
        recording = session.get(Recording, made.recording_id)
        assert recording is not None
        assert (
            recording.storage_key == made.path.relative_to(ctx.settings.recordings_dir).as_posix()
        )
        assert recording.retention_until is not None
        assert (recording.retention_until - recording.started_at).days == 365
    processed_at = media.processed_at
    assert jobs.process_recording(made.recording_id)["result"] == "already-processed"
    assert _media(ctx, made.recording_id).processed_at == processed_at


def test_checksum_mismatch_is_flagged_and_the_file_kept(
    ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    made = make_call(started=datetime.now(UTC) - timedelta(days=1))
    damaged = bytearray(made.path.read_bytes())
    damaged[500] ^= 0xFF
    made.path.write_bytes(bytes(damaged))
    assert jobs.process_recording(made.recording_id)["result"] == "checksum-mismatch"
    media = _media(ctx, made.recording_id)
    assert media.problem == "checksum-mismatch"
    assert media.wav_sha256 != made.sha256
    assert not media.audio_verified
    assert made.path.read_bytes() == bytes(damaged)
    assert not made.path.with_suffix(".opus").exists()
    with ctx.sessions() as session:
        assert session.get(Recording, made.recording_id) is not None
    assert made.recording_id not in jobs.unprocessed(ctx)  # waits for a person


def test_a_failing_transcoder_leaves_the_original_intact(
    ctx: AppContext, make_call: Callable[..., MadeCall], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = make_call()
    original = made.path.read_bytes()
    monkeypatch.setenv("PATH", "/nonexistent")  # opusenc cannot be found: the job fails
    assert jobs.process_recording(made.recording_id)["result"] == "transcode-failed"
    assert made.path.read_bytes() == original
    assert _media(ctx, made.recording_id).problem == "transcode-failed"
    monkeypatch.undo()
    # the periodic scan tries it again once RETRY_AFTER has passed, and then it completes
    assert made.recording_id not in jobs.unprocessed(ctx)
    with ctx.sessions() as session, session.begin():
        session.execute(
            update(RecordingMedia)
            .where(RecordingMedia.recording_id == made.recording_id)
            .values(processed_at=datetime.now(UTC) - jobs.RETRY_AFTER - timedelta(seconds=1))
        )
    assert made.recording_id in jobs.unprocessed(ctx)
    assert jobs.process_recording(made.recording_id)["result"] == "processed"
    assert made.recording_id not in jobs.unprocessed(ctx)


def test_worker_runs_the_job_from_the_queue(
    ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    made = make_call()
    jobs.enqueue_processing(ctx, made.recording_id)
    jobs.enqueue_processing(ctx, made.recording_id)  # twice: one job id
    qs = queues(ctx)
    Worker(qs, connection=qs[0].connection).work(burst=True)
    assert _media(ctx, made.recording_id).audio_verified


def test_link_defaults_to_the_verified_opus(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    made = make_call()
    jobs.process_recording(made.recording_id)
    link = client.post(
        f"/api/v1/recordings/{made.recording_id}/link", headers=auth(client, "qa1")
    ).json()
    assert link["format"] == "opus"
    played = client.get(link["url"], headers={"Range": "bytes=0-3"})
    assert played.status_code == 206
    assert played.content == b"OggS"
    assert played.headers["content-type"] == "audio/ogg"
    media = client.get(
        f"/api/v1/recordings/{made.recording_id}/media", headers=auth(client, "qa1")
    ).json()
    assert media["audio_verified"] is True
    assert media["peak_seconds"] == 0.1
    assert len(media["peaks"]) == 30


@pytest.fixture
def s3_ctx(ctx: AppContext, s3_endpoint: str, s3_bucket: str) -> Iterator[AppContext]:
    """The test's database, recordings kept in a bucket of the S3-compatible server."""
    configured = ctx.settings.model_copy(
        update={
            "recording_storage": RecordingStorageSettings(
                backend="s3",
                endpoint_url=s3_endpoint,
                bucket=s3_bucket,
                prefix="center1",
                access_key_id="test",
                secret_access_key="test",
            )
        }
    )
    context = build_context(configured)
    runtime.set_context(context)
    yield context
    runtime.set_context(ctx)
    context.close()


def test_s3_store_receives_both_files_and_serves_ranges(
    s3_ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    made = make_call()
    original = made.path.read_bytes()
    assert jobs.process_recording(made.recording_id)["result"] == "processed"
    media = _media(s3_ctx, made.recording_id)
    store = jobs.processing.store(s3_ctx)
    assert store.name == "s3"
    assert read_all(store, str(media.wav_key)) == original
    assert read_all(store, str(media.audio_key))[:4] == b"OggS"
    assert not made.path.exists()  # the store holds the verified copy; the local one is gone
    with TestClient(create_app(s3_ctx)) as client:
        link = client.post(
            f"/api/v1/recordings/{made.recording_id}/link",
            json={"format": "wav"},
            headers=auth(client, "qa1"),
        ).json()
        part = client.get(link["url"], headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.content == original[1000:2000]
    assert jobs.process_recording(made.recording_id)["result"] == "already-processed"


def test_the_call_record_consumer_enqueues_post_processing(ctx: AppContext, tmp_path: Path) -> None:
    """recording_stopped applied from the event stream → one post-processing job queued, and
    the call's agent, caller and queue copied onto the recording for the search."""
    from datetime import UTC, datetime

    from callcenter.streams import CallEvent
    from ivr.records import CallRecordConsumer
    from tests.recordings.conftest import write_wav

    path = Path(ctx.settings.recordings_dir) / "2026/12/06/call-x.wav"
    write_wav(path, 1.0, 0.0)
    facts = wav.facts(path)
    at = datetime.now(UTC).isoformat()
    timeline: list[tuple[str, dict[str, object]]] = [
        ("call_arrived", {"caller": "13800138000", "did": "4008001234"}),
        ("call_queued", {"queue": "fees"}),
        ("agent_answered", {"agent_uri": "sip:1003@127.0.0.1"}),
        ("recording_started", {"recording_id": "call-x", "path": str(path)}),
        (
            "recording_stopped",
            {
                "recording_id": "call-x",
                "path": str(path),
                "duration": facts.duration,
                "bytes": facts.bytes,
                "sha256": facts.sha256,
            },
        ),
    ]
    for kind, data in timeline:
        event = CallEvent(type=kind, call_id="call-x", slot="s1", at=at, data=data)
        ctx.redis.xadd(ctx.keys.events, event.to_fields())  # type: ignore[arg-type]
    assert CallRecordConsumer(ctx, consumer="t").run_once(block_ms=10) == 5
    low = {q.name.rsplit(":", 1)[-1]: q for q in queues(ctx)}["low"]
    assert low.job_ids == [f"{ctx.keys.prefix}-recording-process-call-x"]
    with ctx.sessions() as session:
        recording = session.get(Recording, "call-x")
        assert recording is not None
        assert (recording.caller_number, recording.queue_code) == ("13800138000", "fees")
        assert recording.agent_id is not None
    qs = queues(ctx)
    Worker(qs, connection=qs[0].connection).work(burst=True)
    assert _media(ctx, "call-x").audio_verified
