"""A queue or shift that exists only through the config API (``PUT /api/v1/config/...``) can be
given to agents at once (admin ``PATCH /users/{id}``, the lead's live move), on SQLite and
PostgreSQL: ``agent_queues.queue_code`` and ``agents.shift_code`` are foreign keys to the SQL
mirrors ``queues`` / ``shifts``, which a stored version keeps current. A queue removed later
stays in the mirror, so the agents still holding it are not refused or broken."""

from __future__ import annotations

import copy
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.app import create_app
from callcenter.context import build_context
from callcenter.demo import seed_demo
from callcenter.migrate import upgrade
from config.settings import Settings
from cti.models import Agent, AgentQueue, Queue, Shift
from tests.conftest import TEST_REDIS_URL, auth


def test_a_queue_and_shift_added_through_the_api_can_be_given_to_agents(
    database_url: str, tmp_path: Path, redis_client: object
) -> None:
    upgrade(database_url)
    settings = Settings(
        environment="test", state_dir=tmp_path, database_url=database_url, redis_url=TEST_REDIS_URL
    )
    ctx = build_context(settings)
    try:
        seed_demo(ctx)
        with TestClient(create_app(ctx)) as client:
            admin = auth(client, "admin")
            queues = client.get("/api/v1/config/queues", headers=admin).json()["document"]
            with_vip = copy.deepcopy(queues)
            with_vip["queues"]["vip"] = {
                **copy.deepcopy(queues["queues"]["general"]),
                "name": {"zh-CN": "贵宾", "en": "VIP"},
            }
            with_vip["queues"]["vip"].pop("overflow", None)
            stored = client.put("/api/v1/config/queues", json=with_vip, headers=admin)
            assert stored.status_code == 201, stored.text
            shifts = client.get("/api/v1/config/shifts", headers=admin).json()["document"]
            with_late = copy.deepcopy(shifts)
            with_late["shifts"]["late"] = {
                **copy.deepcopy(shifts["shifts"]["day"]),
                "name": {"zh-CN": "晚班", "en": "Late"},
            }
            stored = client.put("/api/v1/config/shifts", json=with_late, headers=admin)
            assert stored.status_code == 201, stored.text
            # the SQL mirrors (reports join on them) know the new codes as soon as they are stored
            with ctx.sessions() as session:
                vip = session.get(Queue, "vip")
                assert vip is not None and vip.name_en == "VIP"
                assert session.get(Shift, "late") is not None

            with ctx.sessions() as session:
                agent = session.scalar(select(Agent).where(Agent.extension == "1001"))
                assert agent is not None
                user_id, agent_id = agent.user_id, agent.id
            body = {"agent": {"queues": {"general": 5, "vip": 7}, "shift": "late"}}
            patched = client.patch(f"/api/v1/users/{user_id}", json=body, headers=admin)
            assert patched.status_code == 200, patched.text
            assert patched.json()["agent"]["queues"] == {"general": 5, "vip": 7}
            assert patched.json()["agent"]["shift"] == "late"

            # the lead's live move to the new queue works too
            lead = auth(client, "lead1")
            moved = client.put(
                f"/api/v1/agents/{agent_id}/queues",
                json={"queues": {"vip": 9}},
                headers=lead,
            )
            assert moved.status_code == 200, moved.text
            with ctx.sessions() as session:
                rows = session.execute(
                    select(AgentQueue.queue_code, AgentQueue.skill_level).where(
                        AgentQueue.agent_id == agent_id
                    )
                ).all()
            assert dict(rows) == {"vip": 9}

            # the queue removed again: the agent still holding it keeps working and editable
            back = client.post("/api/v1/config/queues/versions/0/rollback", headers=admin)
            assert back.status_code == 201, back.text
            with ctx.sessions() as session:
                assert session.get(Queue, "vip") is not None  # still referenced: kept
            shown = client.get(f"/api/v1/users/{user_id}", headers=admin)
            assert shown.status_code == 200 and shown.json()["agent"]["queues"] == {"vip": 9}
            renamed = client.patch(
                f"/api/v1/users/{user_id}", json={"agent": {"team": "客服三组"}}, headers=admin
            )
            assert renamed.status_code == 200, renamed.text
            refused = client.patch(
                f"/api/v1/users/{user_id}", json={"agent": {"queues": {"vip": 3}}}, headers=admin
            )
            assert refused.status_code == 422
            assert refused.json()["details"]["problems"][0]["field"] == "agent.queues.vip"
            cleared = client.patch(
                f"/api/v1/users/{user_id}",
                json={"agent": {"queues": {"general": 4}}},
                headers=admin,
            )
            assert cleared.status_code == 200 and cleared.json()["agent"]["queues"] == {
                "general": 4
            }
    finally:
        ctx.close()
