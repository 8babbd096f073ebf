"""Recording search and playback benchmark (PostgreSQL).

1,000,000 calls with their recordings (and 50,000 tickets) are bulk-loaded with COPY, then a
real ``callcenter api`` on loopback is asked, one request at a time over a kept-alive
connection:

- ``GET /api/v1/recordings`` with each filter the QA page uses (and the first page with no
  filter, a combination, a deep page), next to ``GET /api/v1/me`` (auth only, no SQL) in the
  same run; and the same searches as SQL in this process next to ``SELECT 1``.
  Goal: search p99 < 200 ms over 1,000,000 rows.
- first byte of playback through a replay link (``Range: bytes=0-``) of real 60 s WAV files,
  next to the first byte of ``GET /healthz``. Goal: p99 < 50 ms.

Usage:
  .venv/bin/python bench/recordings_search.py --rows 1000000 --repeat 100
  (PostgreSQL from CALLCENTER_TEST_POSTGRES_URL: the schema there is dropped and rebuilt)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _measure import free_port, gc_paused, percentile  # noqa: E402
from _serve import start_api  # noqa: E402

from callcenter.context import build_context  # noqa: E402
from callcenter.db import make_engine  # noqa: E402
from callcenter.demo import seed_demo  # noqa: E402
from callcenter.migrate import upgrade  # noqa: E402
from config.settings import Settings  # noqa: E402
from cti.models import Agent  # noqa: E402
from ivr import wav  # noqa: E402
from recordings.search import RecordingFilter, search  # noqa: E402

REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
POSTGRES_URL = os.environ.get(
    "CALLCENTER_TEST_POSTGRES_URL",
    "postgresql://callcenter:callcenter@127.0.0.1:5432/callcenter_test",
)
QUEUES = ("general", "repair", "complaint", "fees", "callback")
NOW = datetime.now(UTC).replace(microsecond=0)
PLAY_FILES = 20


def prepare(state_dir: Path) -> Settings:
    engine = make_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(POSTGRES_URL)
    settings = Settings(
        environment="test", state_dir=state_dir, database_url=POSTGRES_URL, redis_url=REDIS_URL
    )
    ctx = build_context(settings)
    ctx.redis.flushdb()
    seed_demo(ctx)
    ctx.close()
    return settings


def _wav(path: Path, seconds: int) -> tuple[int, str]:
    rng = random.Random(str(path))
    pcm = bytes(rng.getrandbits(8) for _ in range(seconds * 16000))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav.header(len(pcm)) + pcm)
    facts = wav.facts(path)
    return facts.bytes, facts.sha256


def load(settings: Settings, rows: int) -> dict[str, Any]:
    """COPY ``rows`` calls and recordings (the first PLAY_FILES with real files) + tickets."""
    rng = random.Random(20261206)
    engine = make_engine(settings.database_url)
    with engine.connect() as conn:
        agent_ids = list(conn.execute(select(Agent.id)).scalars())
    callers = [f"139{n:08d}" for n in rng.sample(range(10**8), 50_000)]
    played = []
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        connection: Any = raw.driver_connection
        with connection.cursor() as cursor:
            calls_copy = cursor.copy(
                "COPY calls (id, direction, caller_number, did, menu_path, collected, queue_code,"
                " priority, agent_id, arrived_at, answered_at, ended_at, outcome) FROM STDIN"
            )
            recordings_rows = []
            with calls_copy as calls:
                for n in range(rows):
                    call_id = f"bench-{n:08d}"
                    begin = NOW - timedelta(seconds=rng.randrange(365 * 86400))
                    duration = rng.randrange(10, 600)
                    agent = rng.choice(agent_ids)
                    caller = rng.choice(callers)
                    queue = rng.choice(QUEUES)
                    calls.write_row(
                        (
                            call_id,
                            "in",
                            caller,
                            "4008001234",
                            "[]",
                            "{}",
                            queue,
                            0,
                            agent,
                            begin,
                            begin,
                            begin + timedelta(seconds=duration),
                            "answered",
                        )
                    )
                    roll = rng.random()
                    status = "disputed" if roll < 0.002 else "scored" if roll < 0.08 else "unscored"
                    path = settings.recordings_dir / f"{begin:%Y/%m/%d}/{call_id}.wav"
                    size, digest = 0, None
                    if n < PLAY_FILES:
                        size, digest = _wav(path, 60)
                        played.append(call_id)
                    recordings_rows.append(
                        (
                            call_id,
                            call_id,
                            str(path),
                            begin,
                            begin + timedelta(seconds=duration),
                            float(duration),
                            size,
                            digest,
                            "complete",
                            agent,
                            caller,
                            queue,
                            status,
                            False,
                        )
                    )
            with cursor.copy(
                "COPY recordings (id, call_id, path, started_at, ended_at, duration_seconds,"
                " bytes, sha256, status, agent_id, caller_number, queue_code, qa_status,"
                " legal_hold) FROM STDIN"
            ) as copy:
                for row in recordings_rows:
                    copy.write_row(row)
            with cursor.copy(
                "COPY tickets (number, category, track, status, reporter, unit, what, when_text,"
                " contact, description, call_id, channel, sla_class, escalation_level, overdue,"
                " created_by, created_at, updated_at) FROM STDIN"
            ) as copy:
                for t, n in enumerate(rng.sample(range(rows), min(50_000, rows))):
                    copy.write_row(
                        (
                            f"GB{t:08d}",
                            "repair_public",
                            "general",
                            "registered",
                            "张伟",
                            "3-2-1201",
                            "漏水",
                            "今天",
                            "13800138000",
                            "",
                            f"bench-{n:08d}",
                            "phone",
                            "30m",
                            0,
                            False,
                            "bench",
                            NOW,
                            NOW,
                        )
                    )
        connection.commit()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE calls")
            cursor.execute("ANALYZE recordings")
            cursor.execute("ANALYZE tickets")
        connection.commit()
    finally:
        raw.close()
    engine.dispose()
    return {
        "rows": rows,
        "load_seconds": round(time.perf_counter() - started, 1),
        "played": played,
        "a_caller": callers[7],
        "an_agent_extension": "1005",
    }


def searches(facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    week_ago = (NOW - timedelta(days=7)).isoformat()
    return {
        "no filter": {},
        "agent": {"agent": facts["an_agent_extension"]},
        "caller": {"caller": facts["a_caller"]},
        "queue": {"queue": "complaint"},
        "ticket": {"ticket": "GB00000042"},
        "last 7 days": {"since": week_ago},
        "min 9 min": {"min_duration": 540},
        "disputed": {"qa_status": "disputed"},
        "agent+queue+7d": {
            "agent": facts["an_agent_extension"],
            "queue": "fees",
            "since": week_ago,
        },
        "page 20": {"offset": 1000},
    }


def timed(repeat: int, call: Callable[[], Any]) -> dict[str, float]:
    samples = []
    with gc_paused():
        for _ in range(repeat):
            begin = time.perf_counter()
            call()
            samples.append((time.perf_counter() - begin) * 1000)
    return {
        "p50_ms": round(percentile(samples, 0.5), 2),
        "p99_ms": round(percentile(samples, 0.99), 2),
        "max_ms": round(max(samples), 2),
    }


def sql_phase(settings: Settings, facts: dict[str, Any], repeat: int) -> dict[str, Any]:
    """The search functions against the database in this process, next to SELECT 1."""
    ctx = build_context(settings)
    results: dict[str, Any] = {}
    with ctx.sessions() as session:
        results["baseline SELECT 1"] = timed(repeat, lambda: session.execute(text("SELECT 1")))
        for name, params in searches(facts).items():
            offset = int(params.pop("offset", 0))
            since = params.pop("since", None)
            wanted = RecordingFilter(
                agent_extension=params.get("agent"),
                caller=params.get("caller"),
                queue=params.get("queue"),
                ticket=params.get("ticket"),
                since=datetime.fromisoformat(since) if since else None,
                min_duration=params.get("min_duration"),
                qa_status=params.get("qa_status"),
            )
            results[name] = timed(
                repeat, functools.partial(search, session, wanted, limit=50, offset=offset)
            )
    ctx.close()
    return results


def http_phase(port: int, facts: dict[str, Any], repeat: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        answer = client.post(
            "/api/v1/auth/token", json={"username": "qa1", "password": "pwqa1"}
        ).json()
        client.headers["Authorization"] = f"Bearer {answer['access_token']}"
        results: dict[str, Any] = {}
        for _ in range(20):  # warm: principal cache, connection pool, query plans
            client.get("/api/v1/me")
            client.get("/api/v1/recordings")
        results["baseline GET /me"] = timed(repeat, lambda: client.get("/api/v1/me"))
        counts = {}
        for name, params in searches(facts).items():
            reply = client.get("/api/v1/recordings", params=params)
            assert reply.status_code == 200, reply.text
            counts[name] = len(reply.json()["items"])
            results[f"GET recordings: {name}"] = timed(
                repeat, functools.partial(client.get, "/api/v1/recordings", params=params)
            )
        results["items returned"] = counts
        links = [
            client.post(f"/api/v1/recordings/{rid}/link", json={"format": "wav"}).json()["url"]
            for rid in facts["played"]
        ]
        anonymous = httpx.Client(base_url=base, timeout=30)

        def first_byte(url: str, headers: dict[str, str]) -> None:
            with anonymous.stream("GET", url, headers=headers) as reply:
                next(reply.iter_raw(1024))

        results["baseline first byte GET /healthz"] = timed(
            repeat * 2, lambda: first_byte("/healthz", {})
        )
        picks = iter(random.Random(1).choices(links, k=repeat * 2))
        results["first byte of playback (link, Range bytes=0-)"] = timed(
            repeat * 2, lambda: first_byte(next(picks), {"Range": "bytes=0-"})
        )
        anonymous.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-recordings-") as tmp:
        settings = prepare(Path(tmp))
        facts = load(settings, args.rows)
        print(f"loaded {args.rows:,} calls + recordings in {facts['load_seconds']} s", flush=True)
        sql = sql_phase(settings, facts, args.repeat)
        port = free_port()
        api = start_api(settings, port, env={"CALLCENTER_HTTP__ACCESS_LOG": "false"})
        try:
            http = http_phase(port, facts, args.repeat)
        finally:
            api.terminate()
            api.wait(timeout=30)
    print(json.dumps({"sql": sql, "http": http}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
