"""SLA timers with a controllable clock: warn before, overdue and escalate after, run by RQ."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from rq.registry import ScheduledJobRegistry

from callcenter.context import AppContext
from callcenter.queues import queues
from tests.conftest import auth
from tests.tickets.helpers import payload, run_worker
from ticketing import jobs, scheduling, services
from ticketing.schemas import TicketCreate

# 10:00 in Shanghai, a week after the repository's "today", so no real-time timer fires.
T0 = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def create(ctx: AppContext, now: datetime = T0, **changes: Any) -> int:
    return services.create_ticket(ctx, TicketCreate(**payload(**changes)), actor="1001", now=now).id


def run_check(ctx: AppContext, ticket_id: int, now: datetime) -> None:
    high = next(q for q in queues(ctx) if q.name.endswith(":high"))
    high.enqueue(jobs.check_sla, ticket_id, now=now)
    run_worker(ctx)


def events(ctx: AppContext, ticket_id: int) -> list[dict[str, Any]]:
    return list(services.ticket_detail(ctx, ticket_id)["timeline"])


def kinds(ctx: AppContext, ticket_id: int) -> list[str]:
    return [
        e["type"] for e in events(ctx, ticket_id) if e["type"] not in {"registered", "dispatched"}
    ]


def test_warn_then_overdue_then_escalate_to_manager_then_above(ctx: AppContext) -> None:
    ticket_id = create(ctx)  # general, 30 minutes, warned 10 minutes before
    run_check(ctx, ticket_id, T0 + timedelta(minutes=19))
    assert kinds(ctx, ticket_id) == []
    run_check(ctx, ticket_id, T0 + timedelta(minutes=21))
    run_check(ctx, ticket_id, T0 + timedelta(minutes=22))  # a second run changes nothing
    assert kinds(ctx, ticket_id) == ["sla_warning"]
    warning = events(ctx, ticket_id)[-1]
    assert (
        warning["data"]["minutes_left"] == 9
        and warning["data"]["recipients"][0]["role"] == "supervisor"
    )

    run_check(ctx, ticket_id, T0 + timedelta(minutes=31))
    run_check(ctx, ticket_id, T0 + timedelta(minutes=32))
    assert kinds(ctx, ticket_id) == ["sla_warning", "overdue", "escalated"]
    escalated = events(ctx, ticket_id)[-1]
    assert escalated["data"]["level"] == 1 and escalated["data"]["to_role"] == "manager"
    assert escalated["data"]["recipients"][0]["name"] == "工程部经理"

    run_check(ctx, ticket_id, T0 + timedelta(minutes=30 + 61))
    run_check(ctx, ticket_id, T0 + timedelta(minutes=30 + 62))
    assert kinds(ctx, ticket_id) == ["sla_warning", "overdue", "escalated", "escalated"]
    above = events(ctx, ticket_id)[-1]
    assert above["data"]["level"] == 2 and above["data"]["to_role"] == "leadership"
    detail = services.ticket_detail(ctx, ticket_id)
    assert detail["overdue"] and detail["escalation_level"] == 2
    assert detail["overdue_at"] == T0 + timedelta(minutes=31)


def test_emergency_escalates_from_the_manager_to_leadership(ctx: AppContext) -> None:
    ticket_id = create(ctx, track="emergency", category="fire_safety")
    run_check(ctx, ticket_id, T0 + timedelta(hours=5))
    escalations = [e for e in events(ctx, ticket_id) if e["type"] == "escalated"]
    assert [e["data"]["to_role"] for e in escalations] == ["leadership"]


def test_resolved_work_stops_the_clock_and_late_work_is_recorded(ctx: AppContext) -> None:
    on_time, late = create(ctx), create(ctx)
    steps: list[dict[str, Any]] = [
        {"to": "assigned", "assignee": "王师傅"},
        {"to": "on_site"},
        {"to": "resolved", "done": "修好", "materials": "无", "minutes_spent": 20},
    ]
    for fields in steps:
        services.transition(ctx, on_time, fields, actor="eng1", now=T0 + timedelta(minutes=25))
        services.transition(ctx, late, fields, actor="eng1", now=T0 + timedelta(minutes=45))
    run_check(ctx, on_time, T0 + timedelta(hours=3))
    assert kinds(ctx, on_time) == ["transition"] * 3
    late_detail = services.ticket_detail(ctx, late)
    assert late_detail["overdue"] and "overdue" in kinds(ctx, late)
    resolved = next(e for e in late_detail["timeline"] if e["to_status"] == "resolved")
    assert resolved["data"]["late_minutes"] == 15


def test_timers_are_rq_scheduled_jobs_and_the_scan_recovers_lost_ones(ctx: AppContext) -> None:
    ticket_id = create(ctx, sla="3h", track="urgent")
    high = next(q for q in queues(ctx) if q.name.endswith(":high"))
    registry = ScheduledJobRegistry(queue=high)
    due = T0 + timedelta(hours=3)

    def timers() -> dict[str, datetime]:
        return {
            job_id: registry.get_scheduled_time(job_id)
            for job_id in registry.get_job_ids()
            if job_id.startswith(f"cc-tickets-sla-{ticket_id}-")
        }

    # one timer at a time: the warning first (urgent track: 15 minutes before)
    assert timers() == {
        scheduling.sla_job_id(ctx, ticket_id, "warn", due): due - timedelta(minutes=15)
    }
    # when it fires it schedules the next one: the deadline, then the escalation above
    run_check(ctx, ticket_id, due - timedelta(minutes=15))
    assert timers()[scheduling.sla_job_id(ctx, ticket_id, "due", due)] == due
    run_check(ctx, ticket_id, due)
    assert timers()[scheduling.sla_job_id(ctx, ticket_id, "above", due)] == due + timedelta(
        minutes=60
    )
    assert kinds(ctx, ticket_id) == ["sla_warning", "overdue", "escalated"]

    # a lost Redis (or a killed worker) loses the timers; the SQL scan still finds the work
    other = create(ctx, sla="3h", track="urgent")
    for job_id in registry.get_job_ids():
        registry.remove(job_id, delete_job=True)
    report = jobs.scan(now=due + timedelta(minutes=1), reschedule=False)
    assert report["sla"]["overdue"] == 1 and report["sla"]["escalated"] == 1
    assert kinds(ctx, other) == ["overdue", "escalated"]


def test_scan_and_overdue_report(ctx: AppContext, client: TestClient) -> None:
    late = [create(ctx) for _ in range(3)]
    create(ctx, category="house_quality")  # 3 days: not due
    report = jobs.scan_sla(now=T0 + timedelta(minutes=40))
    assert report == {"checked": 3, "warned": 0, "overdue": 3, "escalated": 3}
    assert jobs.scan_sla(now=T0 + timedelta(minutes=41))["overdue"] == 0
    lead = auth(client, "lead1")
    body = client.get("/api/v1/tickets/reports/overdue", headers=lead).json()
    assert sorted(item["id"] for item in body["items"]) == sorted(late)
    assert body["by_department"] == {"engineering": 3}
    assert all(item["still_open"] and item["escalation_level"] == 1 for item in body["items"])
    none = client.get(
        "/api/v1/tickets/reports/overdue", headers=lead, params={"since": "2027-01-01T00:00:00Z"}
    ).json()
    assert none["total"] == 0
    listed = client.get("/api/v1/tickets", headers=lead, params={"overdue": "true"}).json()
    assert listed["total"] == 3
    assert (
        client.get("/api/v1/tickets/reports/overdue", headers=auth(client, "1001")).status_code
        == 403
    )


def test_reopened_ticket_gets_a_fresh_deadline_and_new_warnings(ctx: AppContext) -> None:
    ticket_id = create(ctx)
    at = T0 + timedelta(minutes=20)
    for fields in (
        {"to": "assigned", "assignee": "王师傅"},
        {"to": "on_site"},
        {"to": "resolved", "done": "修好", "materials": "无", "minutes_spent": 20},
        {"to": "returned_to_supervisor"},
        {"to": "returned_to_front_desk"},
        {"to": "callback", "result": "unsatisfied", "reason": "还漏"},
    ):
        services.transition(ctx, ticket_id, fields, actor="1001", now=at)
    detail = services.ticket_detail(ctx, ticket_id)
    assert detail["status"] == "dispatched" and detail["due_at"] == at + timedelta(minutes=30)
    run_check(ctx, ticket_id, at + timedelta(minutes=31))
    assert kinds(ctx, ticket_id)[-2:] == ["overdue", "escalated"]
