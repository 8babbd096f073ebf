"""Fixtures for metrics tests: events published to the real test Redis, a consumer to drain
them, an app without the background consumer (tests drain explicitly) and a live server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from fastapi.testclient import TestClient

from callcenter.app import create_app
from callcenter.context import AppContext
from callcenter.streams import CallEvent
from metrics.consumer import MetricsConsumer
from metrics.http import CONSUMER_WANTED
from metrics.reader import LiveReader

TZ = ZoneInfo("Asia/Shanghai")


def local(day: int, hour: int, minute: int = 0, second: float = 0.0) -> datetime:
    """A moment in the center's time zone on 2026-11-<day>."""
    whole = int(second)
    micro = round((second - whole) * 1_000_000)
    return datetime(2026, 11, day, hour, minute, whole, micro, tzinfo=TZ)


class Events:
    """Publishes events exactly as the engine/routing do (XADD of CallEvent.to_fields())."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.consumer = MetricsConsumer(ctx, block_ms=1)

    def call(self, kind: str, call_id: str, at: datetime, /, **data: Any) -> str:
        event = CallEvent(
            kind,
            call_id,
            slot="node1-s01",
            node="node1",
            at=at.astimezone(UTC).isoformat(),
            data=data,
        )
        redis_client: Any = self.ctx.redis
        return str(redis_client.xadd(self.ctx.keys.events, event.to_fields()))

    def agent(self, kind: str, agent_id: str, at: datetime, /, **data: Any) -> str:
        event = CallEvent(
            kind,
            agent_id,
            node="routing",
            at=at.astimezone(UTC).isoformat(),
            data={"agent_id": agent_id, **data},
        )
        redis_client: Any = self.ctx.redis
        return str(redis_client.xadd(self.ctx.keys.agent_events, event.to_fields()))

    def drain(self) -> int:
        return self.consumer.drain()

    def snapshot(self, now: datetime) -> dict[str, Any]:
        return LiveReader(self.ctx).snapshot(now.astimezone(UTC))


@pytest.fixture
def events(ctx: AppContext) -> Events:
    return Events(ctx)


@pytest.fixture
def api(ctx: AppContext) -> Iterator[TestClient]:
    """The app without the background consumer: tests drain the streams themselves."""
    ctx.services.set(CONSUMER_WANTED, False)
    with TestClient(create_app(ctx)) as test_client:
        yield test_client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(ctx: AppContext) -> Iterator[str]:
    """The real app (with its metrics consumer) served by uvicorn on a loopback port."""
    ctx.services.set(CONSUMER_WANTED, True)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


__all__ = ["TZ", "Events", "local", "timedelta", "wait_for"]


@pytest.fixture(scope="session")
def _pg_seeded() -> str:
    """PostgreSQL migrated and demo-seeded once per session (argon2 hashing is slow)."""
    from callcenter.context import build_context
    from callcenter.demo import seed_demo
    from callcenter.migrate import upgrade
    from config.settings import Settings
    from tests.conftest import TEST_POSTGRES_URL, TEST_REDIS_URL, reset_postgres

    reset_postgres(TEST_POSTGRES_URL)
    upgrade(TEST_POSTGRES_URL)
    settings = Settings(
        environment="test", database_url=TEST_POSTGRES_URL, redis_url=TEST_REDIS_URL
    )
    context = build_context(settings)
    seed_demo(context)
    context.close()
    return TEST_POSTGRES_URL


@pytest.fixture
def pg_ctx(_pg_seeded: str, redis_client: Any, tmp_path: Any) -> Iterator[AppContext]:
    """A context on the seeded PostgreSQL database; rows a test adds are removed after it."""
    from sqlalchemy import text

    from callcenter.context import build_context
    from config.settings import Settings
    from tests.conftest import TEST_REDIS_URL

    settings = Settings(
        environment="test",
        database_url=_pg_seeded,
        state_dir=tmp_path,
        redis_url=TEST_REDIS_URL,
    )
    context = build_context(settings)
    yield context
    with context.engine.begin() as conn:
        for table in ("callbacks", "tickets", "call_events", "agent_state_changes", "calls"):
            conn.execute(text(f"DELETE FROM {table}"))
    context.close()
