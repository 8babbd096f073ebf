"""A queue's ring time changed through the config API is used by the next offer, while a call
already ringing keeps the ring time it was offered with; a rollback restores the old one."""

from __future__ import annotations

import copy

from fastapi.testclient import TestClient

from callcenter.context import AppContext
from cti import services
from cti.router import Router
from tests.conftest import auth
from tests.cti.conftest import EngineSide, TestClock, agent_ids


def test_ring_time_change_reaches_the_next_offer_not_the_ringing_call(
    ctx: AppContext, client: TestClient, clock: TestClock, router: Router, engine: EngineSide
) -> None:
    ids = agent_ids(ctx)
    first, second, third = ids["1001"], ids["1002"], ids["1009"]
    for agent in (first, second, third):
        services.login(ctx, agent_id=agent, actor="test")
        services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="test")
        clock.advance(1)

    engine.queue("before", "repair")
    router.drain()
    assert engine.offers("before") == [first]
    assert engine.commands("before", "offer")[0].data["ring_timeout"] == 15

    admin = auth(client, "admin")
    queues = client.get("/api/v1/config/queues", headers=admin).json()["document"]
    longer = copy.deepcopy(queues)
    longer["queues"]["repair"]["ring_timeout_seconds"] = 40
    assert client.put("/api/v1/config/queues", json=longer, headers=admin).status_code == 201

    engine.queue("after", "repair")
    router.drain()
    assert engine.offers("after") == [second]
    assert engine.commands("after", "offer")[0].data["ring_timeout"] == 40

    # 15 s + 3 s grace: the call offered before the change times out and moves on; the one
    # offered after it keeps ringing its 40 s.
    clock.advance(18.5)
    router.drain()
    assert engine.offers("before") == [first, third]
    assert engine.offers("after") == [second]

    back = client.post("/api/v1/config/queues/versions/0/rollback", headers=admin)
    assert back.status_code == 201
    services.set_state(ctx, agent_id=first, state="ready", reason=None, actor="test")  # missed
    engine.queue("rolled_back", "repair")
    router.drain()
    assert engine.offers("rolled_back") == [first]
    assert engine.commands("rolled_back", "offer")[0].data["ring_timeout"] == 15
