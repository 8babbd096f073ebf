"""The SQL side of CTI on PostgreSQL: the agent state log and the screen-pop lookup."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from callcenter.context import AppContext, build_context
from callcenter.demo import seed_demo
from callcenter.migrate import upgrade
from config.settings import Settings
from cti import services
from cti.models import AgentStateChange, Call
from cti.router import Router
from cti.routing import Routing
from tests.conftest import TEST_POSTGRES_URL, TEST_REDIS_URL, reset_postgres
from tests.cti.conftest import EngineSide, TestClock, agent_ids

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_ctx(
    tmp_path: Path, config_dir: Path, clock: TestClock, redis_client: object
) -> Iterator[AppContext]:
    reset_postgres(TEST_POSTGRES_URL)
    upgrade(TEST_POSTGRES_URL)
    settings = Settings(
        environment="test",
        state_dir=tmp_path,
        redis_url=TEST_REDIS_URL,
        database_url=TEST_POSTGRES_URL,
        config_dir=config_dir,
    )
    context = build_context(settings)
    seed_demo(context)
    services.use_routing(context, Routing(context.redis, context.keys, context.config, clock=clock))
    yield context
    context.close()
    reset_postgres(TEST_POSTGRES_URL)


def test_state_log_and_screen_pop_on_postgres(pg_ctx: AppContext) -> None:
    ctx = pg_ctx
    routing = services.routing_for(ctx)
    router = Router(ctx, routing=routing, consumer="pg")
    engine = EngineSide(ctx.redis, ctx.keys)
    with ctx.sessions() as session, session.begin():
        session.add(Call(id="older", caller_number="13800138000", outcome="abandoned"))
    agent = agent_ids(ctx)["1001"]
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="1001")
    engine.queue("pg-1", "general", caller="13800138000")
    router.drain()
    pop = ctx.redis.get(ctx.keys.routing("call:pg-1:pop"))
    assert pop is not None and "张伟" in str(pop) and '"1280.00"' in str(pop)
    assert '"older"' in str(pop)
    engine.publish("agent_answered", "pg-1", agent_id=agent)
    engine.publish("call_ended", "pg-1")
    router.drain()
    with ctx.sessions() as session:
        rows = session.scalars(
            select(AgentStateChange)
            .where(AgentStateChange.agent_id == agent)
            .order_by(AgentStateChange.id)
        ).all()
    assert [r.transition for r in rows] == ["login", "ready", "reserve", "answer", "end_call"]
    assert rows[0].at.tzinfo is not None and rows[2].call_id == "pg-1"
