"""The database down (stopped, crashed, restarting) while the rest of the center runs, on a
PostgreSQL cluster of the test's own (never the machine's server): the API answers 503 with
Retry-After instead of 500, and works again on its own when the database is back; the router
keeps beating and writes the agent state changes it could not write as soon as it can; a screen
pop is built from the number alone; a worker job is tried again later instead of failed.
The whole center under load: ``test_faults_postgres.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from callcenter import runtime
from callcenter.app import create_app
from callcenter.context import AppContext, build_context
from callcenter.db import database_down, make_engine
from callcenter.demo import seed_demo
from callcenter.migrate import upgrade
from callcenter.queues import queue, queues
from callcenter.testkit.faults import PrivatePostgres, free_port
from callcenter.worker import EXCEPTION_HANDLERS
from config.settings import Settings
from cti import screenpop, services
from cti.models import Agent, AgentStateChange
from cti.router import Router
from tests.conftest import TEST_REDIS_URL, auth
from tests.tickets.helpers import _BurstWorker, payload


@pytest.fixture(scope="module")
def database() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    try:
        server.start()
        server.create_database()
        upgrade(server.url)
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg(database: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The module's server, up again after each test (tests kill it)."""
    yield database
    if not database.answers():
        database.start()


@pytest.fixture
def ctx(pg: PrivatePostgres, tmp_path: Path, redis_client: redis.Redis) -> Iterator[AppContext]:
    settings = Settings(environment="test", state_dir=tmp_path, redis_url=TEST_REDIS_URL,
                        database_url=pg.url)  # fmt: skip
    context = build_context(settings)
    with context.sessions() as session:
        seeded = session.scalar(select(Agent.id).limit(1)) is not None
    if not seeded:
        seed_demo(context)
    runtime.set_context(context)
    yield context
    runtime.set_context(None)
    context.close()


def _agent_id(ctx: AppContext, extension: str) -> int:
    with ctx.sessions() as session:
        found = session.scalar(select(Agent.id).where(Agent.extension == extension))
    assert found is not None
    return found


def test_the_api_answers_503_while_the_database_is_down_and_works_when_it_is_back(
    pg: PrivatePostgres, ctx: AppContext
) -> None:
    mark = "written after the outage"
    body = payload(description=mark)
    with TestClient(create_app(ctx)) as client:
        headers = auth(client, "1001")
        assert client.get("/readyz").json()["checks"]["database"] == "ok"
        pg.kill()
        refused = client.post("/api/v1/tickets", json=body, headers=headers)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error_id"] == "database-unavailable"
        assert refused.headers["Retry-After"] == "5"
        assert "connection" not in refused.text  # no driver text in the answer
        assert "database: not answering" in client.get("/readyz").json()["missing"]
        pg.start()
        # The pool's connections died with the server: the first request after must work.
        created = client.post("/api/v1/tickets", json=body, headers=headers)
        assert created.status_code == 201, created.text
        assert client.get("/readyz").json()["checks"]["database"] == "ok"
    with ctx.sessions() as session:
        stored = session.execute(
            text("SELECT count(*) FROM tickets WHERE description = :d"), {"d": mark}
        ).scalar()
    assert stored == 1


def test_the_router_beats_while_the_database_is_down_and_logs_at_once_when_it_is_back(
    pg: PrivatePostgres, ctx: AppContext
) -> None:
    router = Router(ctx)
    router.bookkeeping_step(0)
    agent_id = _agent_id(ctx, "1002")
    services.login(ctx, agent_id=agent_id, actor="1002")
    services.set_state(ctx, agent_id=agent_id, state="ready", reason=None, actor="1002")
    entries: list[tuple[str, dict[str, str]]] = ctx.redis.xrange(ctx.keys.agent_events)  # type: ignore[assignment]
    changes = {i for i, f in entries if f.get("type") == "agent_state_changed"}
    assert changes
    pg.kill()
    heartbeat = ctx.keys.process_heartbeat("router")
    ctx.redis.delete(heartbeat)
    router._next_beat = 0.0  # its next step is due to beat
    with pytest.raises(OperationalError):
        router.bookkeeping_step(0)
    assert ctx.redis.exists(heartbeat), "routing works: the router must not look dead"
    pg.start()
    router.bookkeeping_step(0)  # one step: no waiting for the dead-consumer claim (30 s)
    with ctx.sessions() as session:
        logged = set(session.scalars(select(AgentStateChange.stream_id)))
    assert changes <= logged


def test_a_screen_pop_while_the_database_is_down_carries_the_number_alone(
    pg: PrivatePostgres, ctx: AppContext
) -> None:
    pg.kill()
    record = screenpop.prepare(ctx, "c-down", "13800138000")
    assert record["records_unavailable"] is True
    assert record["customer"] is None and record["open_tickets"] == []
    assert record["caller"] == {"raw": "13800138000", "number": "13800138000", "kind": "mobile"}
    assert not ctx.redis.exists(screenpop.record_key(ctx, "c-down"))  # looked up again later
    pg.start()
    record = screenpop.prepare(ctx, "c-down", "13800138000")
    assert record["customer"]["name"] == "张伟"
    assert "records_unavailable" not in record


def touch_database(url: str) -> int:
    """A job that needs the database."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT 1")).scalar_one())
    finally:
        engine.dispose()


def test_a_job_failed_by_the_outage_is_scheduled_again_not_failed(
    pg: PrivatePostgres, ctx: AppContext
) -> None:
    pg.kill()
    job = queue(ctx, "default").enqueue(touch_database, pg.url)
    qs = queues(ctx)
    worker = _BurstWorker(qs, connection=qs[0].connection,
                          exception_handlers=list(EXCEPTION_HANDLERS))  # fmt: skip
    worker.work(burst=True, logging_level="CRITICAL")
    default = next(q for q in qs if q.name.endswith(":default"))
    assert job.id not in FailedJobRegistry(queue=default).get_job_ids()
    assert job.id in ScheduledJobRegistry(queue=default).get_job_ids()
    assert job.get_status(refresh=True) == "scheduled"


def test_a_wrong_statement_is_not_the_database_being_down(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(OperationalError) as wrong, engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
    finally:
        engine.dispose()
    assert not database_down(wrong.value)  # a 500 and a bug report, not a 503 and a retry
    refused = make_engine(f"postgresql://x@127.0.0.1:{free_port()}/x")
    try:
        with pytest.raises(OperationalError) as down, refused.connect():
            pass
    finally:
        refused.dispose()
    assert database_down(down.value)
