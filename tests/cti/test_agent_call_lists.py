"""An agent's call list: the calls they answered, and apart from those the calls offered to
them that they missed. Records built by the real consumer code from engine-shaped events on
the seeded SQLite database; read through the API with real tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter import runtime
from callcenter.app import create_app
from callcenter.context import AppContext, build_context
from callcenter.db import transaction
from callcenter.demo import seed_demo
from callcenter.migrate import upgrade
from callcenter.streams import CallEvent
from config.settings import Settings
from cti.models import Agent
from ivr.records import apply_event
from tests.conftest import TEST_POSTGRES_URL, TEST_REDIS_URL, auth, reset_postgres


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_ctx(
    request: pytest.FixtureRequest, ctx: AppContext, tmp_path: Path
) -> Iterator[AppContext]:
    """The seeded SQLite context, or the same demo center on PostgreSQL (JSON queries differ)."""
    if request.param == "sqlite":
        yield ctx
        return
    reset_postgres(TEST_POSTGRES_URL)
    upgrade(TEST_POSTGRES_URL)
    settings = Settings(
        environment="test",
        state_dir=tmp_path / "pg",
        redis_url=TEST_REDIS_URL,
        database_url=TEST_POSTGRES_URL,
    )
    context = build_context(settings)
    seed_demo(context)
    runtime.set_context(context)
    yield context
    runtime.set_context(ctx)
    context.close()
    reset_postgres(TEST_POSTGRES_URL)


def _record(ctx: AppContext, call_id: str, steps: list[tuple[str, dict[str, Any]]]) -> None:
    arrived = ("call_arrived", {"caller": "13800138000", "did": "4008001234", "direction": "in"})
    with transaction(ctx.sessions) as session:
        for n, (kind, data) in enumerate([arrived, *steps]):
            apply_event(session, f"{call_id}-{n}", CallEvent(kind, call_id, data=data))


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(c["id"] for c in response.json()["items"])


def test_agents_see_answered_calls_and_missed_offers_apart(any_ctx: AppContext) -> None:
    with TestClient(create_app(any_ctx)) as client:
        _check_lists(any_ctx, client)


def _check_lists(ctx: AppContext, client: TestClient) -> None:
    with ctx.sessions() as session:
        ids = {a.extension: a.id for a in session.scalars(select(Agent))}
    a1001, a1002 = ids["1001"], ids["1002"]
    _record(
        ctx,
        "answered",
        [
            ("call_reserved", {"agent_id": a1001}),
            ("agent_offered", {"agent_id": a1001}),
            ("agent_answered", {"agent_id": a1001}),
            ("call_ended", {"reason": "caller_hung_up", "outcome": "answered"}),
        ],
    )
    _record(  # the caller gave up while 1001's phone rang
        ctx,
        "abandoned-ringing",
        [
            ("call_reserved", {"agent_id": a1001}),
            ("agent_offered", {"agent_id": a1001}),
            ("call_ended", {"reason": "caller_hung_up", "outcome": "abandoned"}),
        ],
    )
    _record(  # 1001 did not answer; 1002 did
        ctx,
        "passed-on",
        [
            ("call_reserved", {"agent_id": a1001}),
            ("agent_offered", {"agent_id": a1001}),
            ("agent_missed", {"agent_id": a1001, "reason": "no answer"}),
            ("call_reserved", {"agent_id": a1002}),
            ("agent_offered", {"agent_id": a1002}),
            ("agent_answered", {"agent_id": a1002}),
        ],
    )
    agent1 = auth(client, "1001")
    assert _ids(client.get("/api/v1/calls", headers=agent1)) == ["answered"]
    assert _ids(client.get("/api/v1/calls?view=answered", headers=agent1)) == ["answered"]
    assert _ids(client.get("/api/v1/calls?view=missed", headers=agent1)) == [
        "abandoned-ringing",
        "passed-on",
    ]
    agent2 = auth(client, "1002")
    assert _ids(client.get("/api/v1/calls", headers=agent2)) == ["passed-on"]
    assert _ids(client.get("/api/v1/calls?view=missed", headers=agent2)) == []
    # an agent opens a missed call's record, but not someone else's list
    assert client.get("/api/v1/calls/passed-on", headers=agent1).status_code == 200
    mine_only = client.get(f"/api/v1/calls?agent_id={a1002}", headers=agent1)
    assert mine_only.status_code == 403

    lead = auth(client, "lead1")
    assert _ids(client.get(f"/api/v1/calls?agent_id={a1001}&view=missed", headers=lead)) == [
        "abandoned-ringing",
        "passed-on",
    ]
    assert len(_ids(client.get("/api/v1/calls", headers=lead))) == 3
