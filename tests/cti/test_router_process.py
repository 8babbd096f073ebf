"""The router as it runs in production: its own thread, the real clock, shortened queue timers
(ring timeout 3 s, overflow after 5 s), and a restart in the middle."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime

import pytest

from callcenter.context import AppContext
from callcenter.testkit.config import queues_toml
from cti import services
from cti.router import Router
from cti.routing import Routing
from tests.cti.conftest import ZONE, EngineSide, Running, agent_ids

SHORT = queues_toml(
    repair={
        "ring_timeout_seconds": 3,
        "wrap_up_seconds": 3,
        "overflow": {"after_seconds": 5, "to": "general"},
    }
)


def wait_for(check: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def real_clock_routing(ctx: AppContext) -> Iterator[Routing]:
    # Real time, shifted so that the local wall clock reads 10:00 (day and middle on shift).
    now = time.time()
    target = datetime.fromtimestamp(now, ZONE).replace(hour=10, minute=0).timestamp()
    offset = target - now
    routing = Routing(ctx.redis, ctx.keys, ctx.config, clock=lambda: time.time() + offset)
    services.use_routing(ctx, routing)
    yield routing


@pytest.mark.queues_toml(SHORT)
def test_ring_timeout_overflow_and_wrap_up_in_real_time_across_a_restart(
    ctx: AppContext, real_clock_routing: Routing, engine: EngineSide
) -> None:
    routing = real_clock_routing
    assert routing.config.queues.queues["repair"].ring_timeout_seconds == 3
    ids = agent_ids(ctx)
    repair_agent, general_agent = ids["1001"], ids["1003"]
    running = Running(ctx, routing, "router-a")
    try:
        services.set_state(ctx, agent_id=repair_agent, state="ready", reason=None, actor="t")
        services.login(ctx, agent_id=general_agent, actor="t")
        engine.queue("live-1", "repair")
        wait_for(lambda: engine.offers("live-1") == [repair_agent], "the offer")
        # Nobody answers: the router's own ring timer makes the agent not ready (missed).
        wait_for(lambda: routing.agent(repair_agent)["reason"] == "missed", "the ring timeout")
        assert routing.call("live-1")["state"] == "waiting"
        running.halt()
        running = Running(ctx, routing, "router-a")  # restarted process, same name
        # The overflow timer set before the restart still fires.
        wait_for(lambda: routing.call("live-1").get("queue") == "general", "the overflow")
        services.set_state(ctx, agent_id=general_agent, state="ready", reason=None, actor="t")
        wait_for(lambda: engine.offers("live-1") == [repair_agent, general_agent], "re-offer")
        engine.publish("agent_answered", "live-1", agent_id=general_agent)
        wait_for(lambda: routing.agent(general_agent)["state"] == "on_call", "the answer")
        engine.publish("call_ended", "live-1")
        wait_for(lambda: routing.agent(general_agent)["state"] == "wrap_up", "the wrap-up")
        # general's wrap-up is 30 s; end it early as the agent would.
        services.wrap_up(
            ctx,
            agent_id=general_agent,
            action="end",
            disposition="resolved",
            seconds=None,
            then_state="ready",
            reason=None,
            actor="t",
        )
        assert routing.agent(general_agent)["state"] == "ready"
        # A repair call answered by 1001 gets repair's 3 s wrap-up, ended by the timer.
        services.set_state(ctx, agent_id=repair_agent, state="ready", reason=None, actor="t")
        services.set_state(
            ctx, agent_id=general_agent, state="not_ready", reason="break", actor="t"
        )
        engine.queue("live-2", "repair")
        wait_for(lambda: engine.offers("live-2") == [repair_agent], "the second offer")
        engine.publish("agent_answered", "live-2", agent_id=repair_agent)
        engine.publish("call_ended", "live-2")
        wait_for(lambda: routing.agent(repair_agent)["state"] == "wrap_up", "wrap-up")
        wait_for(lambda: routing.agent(repair_agent)["state"] == "ready", "wrap-up end")
        assert ctx.redis.exists(ctx.keys.process_heartbeat("router"))
    finally:
        running.halt()


def test_a_router_whose_redis_lost_its_data_routes_new_calls(
    ctx: AppContext, router: Router, routing: Routing, engine: EngineSide
) -> None:
    """Redis back without its data (no AOF): the router recreates its consumer groups and the
    queues' settings instead of failing every round; agents log in again, new calls route."""
    agent = agent_ids(ctx)["1001"]
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="t")
    ctx.redis.flushdb()
    assert router.step() == 0  # NOGROUP handled
    services.login(ctx, agent_id=agent, actor="t")
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="t")
    engine.queue("after-loss", "repair")
    router.drain()
    assert engine.offers("after-loss") == [agent]
