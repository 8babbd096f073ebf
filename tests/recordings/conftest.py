"""Recording fixtures: a real S3-compatible server (moto_server on loopback), the two stores,
and calls with recordings made through the same event consumer the engine feeds."""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.config import Config

from callcenter import runtime
from callcenter.context import AppContext, build_context
from callcenter.streams import CallEvent
from config.settings import Settings
from recordings.storage import LocalStorage, S3Storage, Storage
from ticketing.models import Ticket


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3-compatible HTTP server, started for this test session on a free port."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto_server did not start on port {port}") from None
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)
    log.close()


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    bucket = f"rec-{uuid.uuid4().hex[:12]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    endpoint: str = request.getfixturevalue("s3_endpoint")
    bucket: str = request.getfixturevalue("s3_bucket")
    return S3Storage(s3_client(endpoint), bucket, prefix="center1")


# ---------------------------------------------------------------- SQLite and PostgreSQL

# the tables these tests fill; emptied around each PostgreSQL test (TRUNCATE does not fire
# the audit log's row triggers)
_FILLED = (
    "evaluations",
    "recording_media",
    "recordings",
    "call_events",
    "calls",
    "tickets",
    "audit_log",
)


def _seeded_postgres() -> None:
    """Migrate and seed the test PostgreSQL database unless it already holds the demo users
    (other test modules drop its schema, so this is checked before every test)."""
    from sqlalchemy import inspect, text

    from callcenter.context import build_context
    from callcenter.db import make_engine
    from callcenter.demo import seed_demo
    from callcenter.migrate import upgrade
    from tests.conftest import TEST_POSTGRES_URL, TEST_REDIS_URL, reset_postgres

    engine = make_engine(TEST_POSTGRES_URL)
    try:
        with engine.connect() as conn:
            ready = inspect(conn).has_table("recording_media") and bool(
                conn.execute(text("SELECT count(*) FROM users WHERE username = 'qa1'")).scalar()
            )
    finally:
        engine.dispose()
    if ready:
        return
    reset_postgres(TEST_POSTGRES_URL)
    upgrade(TEST_POSTGRES_URL)
    context = build_context(
        Settings(environment="test", database_url=TEST_POSTGRES_URL, redis_url=TEST_REDIS_URL)
    )
    seed_demo(context)
    context.close()


def _empty_postgres(context: AppContext) -> None:
    from sqlalchemy import text

    with context.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(_FILLED)} CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def ctx(
    request: pytest.FixtureRequest, settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> Iterator[AppContext]:
    """Every recordings test runs on the seeded SQLite copy and on PostgreSQL."""
    from tests.conftest import TEST_POSTGRES_URL

    if request.param == "postgres":
        _seeded_postgres()
        settings = settings.model_copy(update={"database_url": TEST_POSTGRES_URL})
    context = build_context(settings)
    if request.param == "postgres":
        _empty_postgres(context)
    runtime.set_context(context)
    yield context
    runtime.set_context(None)
    if request.param == "postgres":
        _empty_postgres(context)
    context.close()


# ---------------------------------------------------------------- calls with recordings

TONE_HZ = 440.0


def write_wav(path: Path, tone_seconds: float, silence_seconds: float, rate: int = 8000) -> None:
    """A real 8 kHz mono 16-bit WAV as the engine writes it: a tone, then silence."""
    import math
    from array import array

    from ivr import wav

    tone = array(
        "h",
        (
            int(12000 * math.sin(2 * math.pi * TONE_HZ * n / rate))
            for n in range(int(tone_seconds * rate))
        ),
    )
    quiet = array("h", bytes(2 * int(silence_seconds * rate)))
    pcm = (tone + quiet).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav.header(len(pcm), rate) + pcm)


@dataclass(frozen=True)
class MadeCall:
    call_id: str
    recording_id: str
    path: Path
    sha256: str
    started_at: datetime


@pytest.fixture
def make_call(ctx: AppContext) -> Callable[..., MadeCall]:
    """A finished call with its recording, applied through the call-record consumer's own
    ``apply_event`` (the events the engine publishes), and a real WAV on disk."""
    counter = itertools.count(1)

    def make(
        *,
        agent: str | None = "1001",
        caller: str = "13800138000",
        queue: str | None = "repair",
        started: datetime | None = None,
        tone_seconds: float = 2.0,
        silence_seconds: float = 1.0,
        ticket: str | None = None,
        collected: dict[str, str] | None = None,
        record: bool = True,
    ) -> MadeCall:
        from ivr import wav
        from ivr.records import apply_event

        n = next(counter)
        started = started or datetime.now(UTC) - timedelta(minutes=10, seconds=n)
        call_id = f"call-{uuid.uuid4().hex[:10]}"
        path = (
            Path(ctx.settings.recordings_dir)
            / f"{started:%Y}"
            / f"{started:%m}"
            / f"{started:%d}"
            / f"{call_id}.wav"
        )
        duration = tone_seconds + silence_seconds
        events: list[tuple[str, dict[str, Any], datetime]] = [
            ("call_arrived", {"caller": caller, "did": "4008001234"}, started),
        ]
        if collected:
            for variable, value in collected.items():
                events.append(("digits_collected", {"variable": variable, "value": value}, started))
        if queue:
            events.append(("call_queued", {"queue": queue, "priority": 0}, started))
        if agent:
            events.append(("agent_answered", {"agent_uri": f"sip:{agent}@127.0.0.1"}, started))
        facts = None
        if record and agent:
            write_wav(path, tone_seconds, silence_seconds)
            facts = wav.facts(path)
            events.append(
                ("recording_started", {"recording_id": call_id, "path": str(path)}, started)
            )
            events.append(
                (
                    "recording_stopped",
                    {
                        "recording_id": call_id,
                        "path": str(path),
                        "duration": facts.duration,
                        "bytes": facts.bytes,
                        "sha256": facts.sha256,
                        "status": "complete",
                    },
                    started + timedelta(seconds=duration),
                )
            )
        outcome = "answered" if agent else "abandoned"
        events.append(
            (
                "call_ended",
                {"outcome": outcome, "reason": "caller_hung_up"},
                started + timedelta(seconds=duration),
            )
        )
        with ctx.sessions() as session, session.begin():
            for index, (kind, data, at) in enumerate(events):
                event = CallEvent(
                    type=kind, call_id=call_id, slot="s1", node="", at=at.isoformat(), data=data
                )
                apply_event(session, f"{int(at.timestamp() * 1000)}-{n}{index:02d}", event)
            if ticket:
                session.add(
                    Ticket(
                        number=ticket,
                        category="repair_public",
                        reporter="张伟",
                        unit="3-2-1201",
                        what="漏水",
                        when_text="今天",
                        contact=caller,
                        call_id=call_id,
                        created_by="1001",
                    )
                )
        return MadeCall(call_id, call_id, path, facts.sha256 if facts else "", started)

    return make
