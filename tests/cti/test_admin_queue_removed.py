"""A queue removed by a new ``queues`` version leaves routing at once: its settings go from
Redis, a call waiting in it moves to the queue it would overflow to (else the first queue), a
call ringing an agent from it follows when the agent misses it."""

from __future__ import annotations

import copy

from fastapi.testclient import TestClient

from callcenter.context import AppContext
from cti import services
from cti.router import Router
from tests.conftest import auth
from tests.cti.conftest import EngineSide, TestClock, agent_ids


def moves(engine: EngineSide) -> list[tuple[str, str, str]]:
    found = engine.routing_events("call_overflowed")
    return [(e.call_id, e.data["to_queue"], e.data["reason"]) for e in found]


def test_removed_queue_is_retired_and_its_calls_move(
    ctx: AppContext, client: TestClient, clock: TestClock, router: Router, engine: EngineSide
) -> None:
    admin = auth(client, "admin")
    queues = client.get("/api/v1/config/queues", headers=admin).json()["document"]
    holiday = copy.deepcopy(queues)
    holiday["queues"]["holiday"] = {
        "name": {"zh-CN": "节日专线", "en": "Holiday"},
        "no_agents": "wait",
        "ring_timeout_seconds": 15,
        "overflow": {"after_seconds": 600, "to": "repair"},
    }
    assert client.put("/api/v1/config/queues", json=holiday, headers=admin).status_code == 201

    agent = agent_ids(ctx)["1001"]  # day shift
    services.login(ctx, agent_id=agent, actor="test")
    services.routing_for(ctx).set_queues(agent, {"holiday": 5}, actor="test")
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="test")
    engine.queue("ringing", "holiday")
    router.drain()
    assert engine.offers("ringing") == [agent]
    engine.queue("waiting", "holiday")
    router.drain()

    # the version without it (here: the file again)
    removed = client.post("/api/v1/config/queues/versions/0/rollback", headers=admin)
    assert removed.status_code == 201, removed.text
    assert (
        "queues removed from routing: holiday (1 waiting call(s) moved)"
        in (removed.json()["applied_live"])
    )
    r = ctx.redis
    assert not r.sismember(ctx.keys.routing("queues"), "holiday")
    assert not r.exists(ctx.keys.routing("queue:holiday:config"))
    assert r.zcard(ctx.keys.routing("queue:holiday:waiting")) == 0
    assert [c.data["queue"] for c in engine.commands("waiting", "requeue")] == ["repair"]
    assert moves(engine) == [("waiting", "repair", "queue_removed")]

    # the agent lets the offer ring out: that call follows the other, not back to "holiday"
    clock.advance(20)
    router.drain()
    assert ("ringing", "repair", "queue_removed") in moves(engine)
    assert r.zcard(ctx.keys.routing("queue:holiday:waiting")) == 0
    assert r.zscore(ctx.keys.routing("queue:repair:waiting"), "ringing") is not None
