"""The whole 投诉报修流程 per track through the API, with RQ running the timed work in-process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rq.registry import ScheduledJobRegistry

from callcenter.context import AppContext
from callcenter.queues import queues
from cti.models import Call
from tests.conftest import auth
from tests.tickets.conftest import MakeCtx
from tests.tickets.helpers import callback_requests, payload, run_worker
from ticketing import jobs, scheduling

ALL_MEMBERS = """
delay_after_sla_hours = 24
within_days = 3
member_share = 1.0
other_share = 1.0
mode = "agent"
max_attempts = 3
retry_after_minutes = 120
queue = "callback"
rest_weekdays = []
[[rest_periods]]
start = "12:00"
end = "14:00"
[[rest_periods]]
start = "21:00"
end = "08:30"
"""


def step(
    client: TestClient, headers: dict[str, str], ticket_id: int, **body: Any
) -> dict[str, Any]:
    response = client.post(f"/api/v1/tickets/{ticket_id}/transitions", headers=headers, json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def scheduled_at(ctx: AppContext, job_id: str) -> datetime | None:
    high = next(q for q in queues(ctx) if q.name.endswith(":high"))
    registry = ScheduledJobRegistry(queue=high)
    if job_id not in registry.get_job_ids():
        return None
    return registry.get_scheduled_time(job_id).replace(tzinfo=UTC)


def full_lifecycle(
    ctx: AppContext, client: TestClient, track: str, category: str, staff: str
) -> dict[str, Any]:
    desk = auth(client, "1001")
    dept = auth(client, staff)
    created = client.post(
        "/api/v1/tickets", headers=desk, json=payload(track=track, category=category)
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "dispatched"
    assert body["number"].startswith("GD") and len(body["number"]) == len("GD20261129-0001")
    assert body["due_at"] and body["customer_id"] is not None  # matched by 13800138000
    ticket_id = body["id"]
    # the SLA timers are RQ scheduled jobs at warn, due and escalation-above times
    due = datetime.fromisoformat(body["due_at"])
    warn_minutes = ctx.config.dispatch.tracks[track].warn_before_minutes  # type: ignore[index]
    timer = scheduled_at(ctx, scheduling.sla_job_id(ctx, ticket_id, "warn", due))
    assert timer is not None
    assert abs(timer.timestamp() - (due - timedelta(minutes=warn_minutes)).timestamp()) < 1

    step(client, dept, ticket_id, to="assigned", assignee="维修工 王师傅")
    step(client, dept, ticket_id, to="on_site", note="已到现场")
    step(
        client,
        dept,
        ticket_id,
        to="resolved",
        done="更换阀门",
        materials="DN20阀门1个",
        minutes_spent=25,
        attachments=["https://files.example/1.jpg"],
    )
    if track == "general":
        detail = client.get(f"/api/v1/tickets/{ticket_id}", headers=desk).json()
        assert detail["allowed_next"] == ["returned_to_supervisor"]
        step(client, dept, ticket_id, to="returned_to_supervisor")
    detail = step(client, dept, ticket_id, to="returned_to_front_desk")
    callback = detail["callbacks"][-1]
    assert callback["status"] == "scheduled"
    # scheduled 24 h after the SLA completion standard, outside rest hours
    assert datetime.fromisoformat(callback["scheduled_for"]) >= due + timedelta(hours=24)
    timer = scheduled_at(
        ctx,
        scheduling.callback_job_id(
            ctx, callback["id"], datetime.fromisoformat(callback["scheduled_for"])
        ),
    )
    assert timer is not None
    assert (
        abs(timer.timestamp() - datetime.fromisoformat(callback["scheduled_for"]).timestamp()) < 1
    )

    # the callback job, run by an RQ worker at the scheduled moment, asks the engine to call
    high = next(q for q in queues(ctx) if q.name.endswith(":high"))
    high.enqueue(jobs.place_callback, callback["id"], now=callback["scheduled_for"])
    run_worker(ctx)
    # agent mode: the call joins routing's callback queue (agent first, then the customer)
    mine = [e for e in callback_requests(ctx) if e.data["callback_id"] == callback["id"]]
    assert len(mine) == 1 and mine[0].data["queue"] == "callback"
    assert mine[0].data["number"] == "13800138000" and mine[0].data["agent_first"] is True

    answered = client.post(
        f"/api/v1/callbacks/{callback['id']}/attempts",
        headers=desk,
        json={"outcome": "answered", "result": "satisfied", "score": 5, "call_id": mine[0].call_id},
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "done" and answered.json()["attempts"] == 1
    final = step(client, desk, ticket_id, to="archived")
    assert final["status"] == "archived" and final["allowed_next"] == []
    return final


@pytest.mark.parametrize(
    ("track", "category", "staff"),
    [
        ("general", "public_water", "eng1"),
        ("urgent", "neighbour_leak", "csa1"),
        ("emergency", "fire_safety", "sec1"),
    ],
)
def test_full_lifecycle_per_track(
    make_ctx: MakeCtx, client_for: Any, track: str, category: str, staff: str
) -> None:
    ctx = make_ctx(**{"callbacks.toml": ALL_MEMBERS})
    client = client_for(ctx)
    final = full_lifecycle(ctx, client, track, category, staff)
    timeline = final["timeline"]
    statuses = [e["to_status"] for e in timeline if e["to_status"]]
    expected = ["registered", "dispatched", "assigned", "on_site", "resolved"]
    if track == "general":
        expected.append("returned_to_supervisor")
    expected += ["returned_to_front_desk", "callback", "archived"]
    assert statuses == expected
    assert all(e["actor"] and e["at"] for e in timeline)
    assert final["work_orders"][0]["materials"] == "DN20阀门1个"
    assert final["work_orders"][0]["minutes_spent"] == 25
    registered = timeline[0]["data"]
    assert registered["customer"]["member"] is True
    assert registered["customer"]["fee_status"] == "arrears"
    assert registered["customer"]["arrears"] == "1280.00"
    dispatched = next(e for e in timeline if e["type"] == "dispatched")
    if track == "emergency":
        # to the department manager, and senior leadership told at the same moment
        assert dispatched["data"]["to_role"] == "manager"
        assert dispatched["data"]["recipients"][0]["name"].endswith("经理")
        notified = next(e for e in timeline if e["type"] == "leadership_notified")
        assert notified["at"] == dispatched["at"]
        assert notified["data"]["recipients"][0]["role"] == "leadership"
    else:
        assert dispatched["data"]["to_role"] == "supervisor"
        assert not any(e["type"] == "leadership_notified" for e in timeline)


def test_unsatisfied_callback_reopens_to_dispatched(make_ctx: MakeCtx, client_for: Any) -> None:
    ctx = make_ctx(**{"callbacks.toml": ALL_MEMBERS})
    client = client_for(ctx)
    desk, eng = auth(client, "1001"), auth(client, "eng1")
    ticket_id = client.post("/api/v1/tickets", headers=desk, json=payload()).json()["id"]
    step(client, eng, ticket_id, to="assigned", assignee="王师傅")
    step(client, eng, ticket_id, to="on_site")
    step(client, eng, ticket_id, to="resolved", done="修好", materials="无", minutes_spent=10)
    step(client, eng, ticket_id, to="returned_to_supervisor")
    first_due = step(client, eng, ticket_id, to="returned_to_front_desk")["due_at"]
    reopened = step(client, desk, ticket_id, to="callback", result="unsatisfied", reason="仍在漏水")
    assert reopened["status"] == "dispatched"
    assert reopened["assignee"] is None and reopened["due_at"] != first_due
    kinds = [(e["type"], e["to_status"]) for e in reopened["timeline"][-2:]]
    assert kinds == [("transition", "callback"), ("dispatched", "dispatched")]
    assert "回访不满意" in reopened["timeline"][-1]["data"]["reason"]
    assert reopened["callbacks"][-1]["result"] == "unsatisfied"
    # the supervisor names someone again and the loop repeats
    step(client, eng, ticket_id, to="assigned", assignee="李师傅")


def test_department_staff_see_and_act_on_their_own_department_only(
    make_ctx: MakeCtx, client_for: Any
) -> None:
    ctx = make_ctx()
    client = client_for(ctx)
    desk, eng, sec = auth(client, "1001"), auth(client, "eng1"), auth(client, "sec1")
    water = client.post("/api/v1/tickets", headers=desk, json=payload()).json()
    client.post("/api/v1/tickets", headers=desk, json=payload(category="access_control"))
    refused = client.post(
        f"/api/v1/tickets/{water['id']}/transitions",
        headers=sec,
        json={"to": "assigned", "assignee": "x"},
    )
    assert refused.status_code == 403
    mine = client.get("/api/v1/tickets", headers=eng).json()
    assert [t["department"] for t in mine["items"]] == ["engineering"]
    queue = client.get(f"/api/v1/departments/{water['department_id']}/tickets", headers=eng)
    assert queue.status_code == 200 and queue.json()["total"] == 1
    assert client.get("/api/v1/departments/security/tickets", headers=eng).status_code == 403
    assert client.get("/api/v1/departments/security/tickets", headers=desk).json()["total"] == 1
    # department staff may not archive or register
    assert client.post("/api/v1/tickets", headers=eng, json=payload()).status_code == 403


def test_screen_pop_walk_in_and_filters(ctx: AppContext, client: TestClient) -> None:
    with ctx.sessions() as session, session.begin():
        session.add(Call(id="call-abc", caller_number="13800138000", customer_id=1))
    desk = auth(client, "1001")
    pop = client.post(
        "/api/v1/tickets",
        headers=desk,
        json=payload(call_id="call-abc", contact="+86 138 0013 8000"),
    )
    assert pop.status_code == 201, pop.text
    assert pop.json()["channel"] == "phone" and pop.json()["call_id"] == "call-abc"
    walk = client.post(
        "/api/v1/tickets",
        headers=desk,
        json=payload(
            channel="walk_in", contact="010-9999 9999", category="fees", auto_dispatch=False
        ),
    )
    assert walk.json()["channel"] == "walk_in" and walk.json()["status"] == "registered"
    assert walk.json()["department"] == "finance"
    numbers = {pop.json()["number"], walk.json()["number"]}
    assert len(numbers) == 2
    by_customer = client.get(
        "/api/v1/tickets", headers=desk, params={"customer_number": "13800138000"}
    ).json()
    assert [t["id"] for t in by_customer["items"]] == [pop.json()["id"]]
    registered = client.get("/api/v1/tickets", headers=desk, params={"status": "registered"}).json()
    assert [t["id"] for t in registered["items"]] == [walk.json()["id"]]
    assert (
        client.get("/api/v1/tickets", headers=desk, params={"department": "finance"}).json()[
            "total"
        ]
        == 1
    )
    assert (
        client.get("/api/v1/tickets", headers=desk, params={"overdue": "true"}).json()["total"] == 0
    )
    later = client.get(
        "/api/v1/tickets", headers=desk, params={"from": "2099-01-01T00:00:00Z"}
    ).json()
    assert later["total"] == 0
    step(client, desk, walk.json()["id"], to="dispatched")
    cats = client.get("/api/v1/ticket-categories", headers=desk).json()
    house = next(c for c in cats if c["code"] == "house_quality")
    assert (
        house["department"] == "cs_assistant" and house["sla"] == "3d" and house["written_notice"]
    )
