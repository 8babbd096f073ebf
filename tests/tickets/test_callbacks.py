"""Satisfaction callbacks (回访): when they are placed, retries, the 3-day window, the report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rq.registry import ScheduledJobRegistry
from sqlalchemy.exc import OperationalError

from callcenter.context import AppContext, build_context
from callcenter.queues import queues
from callcenter.streams import CallEvent
from callcenter.testkit.faults import free_port
from config.schemas import CallbacksFile
from tests.conftest import auth
from tests.tickets.conftest import MakeCtx
from tests.tickets.helpers import payload, placed_calls, run_worker, survey_commands
from ticketing import jobs, scheduling, services
from ticketing.schemas import TicketCreate

SH = ZoneInfo("Asia/Shanghai")


def local(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SH).astimezone(UTC)


def callbacks_toml(**values: Any) -> str:
    base: dict[str, Any] = {
        "delay_after_sla_hours": 24,
        "within_days": 3,
        "member_share": 1.0,
        "other_share": 0.0,
        "mode": "agent",
        "max_attempts": 3,
        "retry_after_minutes": 120,
        "queue": "callback",
        "rest_weekdays": [],
    }
    base.update(values)
    lines = []
    for key, value in base.items():
        if isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(v).replace(chr(39), chr(34)) for v in value)}]")
        else:
            lines.append(f"{key} = {value}")
    lines += [
        "[[rest_periods]]",
        'start = "12:00"',
        'end = "14:00"',
        "[[rest_periods]]",
        'start = "21:00"',
        'end = "08:30"',
    ]
    return "\n".join(lines) + "\n"


def to_front_desk(ctx: AppContext, created: datetime, returned: datetime, **changes: Any) -> int:
    ticket_id = services.create_ticket(
        ctx, TicketCreate(**payload(**changes)), actor="1001", now=created
    ).id
    for fields in (
        {"to": "assigned", "assignee": "王师傅"},
        {"to": "on_site"},
        {"to": "resolved", "done": "修好", "materials": "无", "minutes_spent": 20},
        {"to": "returned_to_supervisor"},
        {"to": "returned_to_front_desk"},
    ):
        services.transition(ctx, ticket_id, fields, actor="eng1", now=returned)
    return ticket_id


def callback_of(ctx: AppContext, ticket_id: int) -> dict[str, Any]:
    return dict(services.ticket_detail(ctx, ticket_id)["callbacks"][-1])


def place(ctx: AppContext, callback_id: int, now: datetime) -> None:
    high = next(q for q in queues(ctx) if q.name.endswith(":high"))
    high.enqueue(jobs.place_callback, callback_id, now=now)
    run_worker(ctx)


def test_next_allowed_skips_rest_hours_and_rest_weekdays() -> None:
    cfg = CallbacksFile.model_validate(
        {"rest_periods": [{"start": "12:00", "end": "14:00"}, {"start": "21:00", "end": "08:30"}]}
    )
    assert services.next_allowed(local(2026, 12, 8, 12, 30), cfg, SH) == local(2026, 12, 8, 14, 0)
    assert services.next_allowed(local(2026, 12, 8, 22, 0), cfg, SH) == local(2026, 12, 9, 8, 30)
    assert services.next_allowed(local(2026, 12, 8, 7, 0), cfg, SH) == local(2026, 12, 8, 8, 30)
    assert services.next_allowed(local(2026, 12, 8, 10, 0), cfg, SH) == local(2026, 12, 8, 10, 0)
    weekend = cfg.model_copy(update={"rest_weekdays": ["sat", "sun"]})
    # Friday 21:30 → Monday 08:30
    assert services.next_allowed(local(2026, 12, 4, 21, 30), weekend, SH) == local(
        2026, 12, 7, 8, 30
    )


def test_callback_is_scheduled_24h_after_the_standard_outside_rest_hours(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml()})
    # created 11:45 with a 30-minute standard → 12:15 next day is lunch rest → 14:00
    ticket_id = to_front_desk(ctx, local(2026, 12, 7, 11, 45), local(2026, 12, 7, 12, 0))
    cb = callback_of(ctx, ticket_id)
    assert cb["status"] == "scheduled" and cb["mode"] == "agent"
    assert cb["scheduled_for"] == local(2026, 12, 8, 14, 0)
    assert cb["deadline"] == local(2026, 12, 8, 12, 15) + timedelta(days=3)
    high = next(q for q in queues(ctx) if q.name.endswith(":high"))
    registry = ScheduledJobRegistry(queue=high)
    assert registry.get_scheduled_time(
        scheduling.callback_job_id(ctx, cb["id"], cb["scheduled_for"])
    ) == local(2026, 12, 8, 14, 0)
    # fired early (e.g. by hand), the job does nothing
    place(ctx, cb["id"], local(2026, 12, 8, 13, 0))
    assert placed_calls(ctx) == [] and callback_of(ctx, ticket_id)["status"] == "scheduled"


def test_weekend_is_skipped_and_the_three_day_limit_holds(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml(rest_weekdays=["sat", "sun"])})
    # Thursday 21:00 + 30 min + 24 h = Friday 21:30 (night rest) → weekend → Monday 08:30
    ticket_id = to_front_desk(ctx, local(2026, 12, 3, 21, 0), local(2026, 12, 3, 21, 20))
    cb = callback_of(ctx, ticket_id)
    assert cb["scheduled_for"] == local(2026, 12, 7, 8, 30)
    assert cb["scheduled_for"] <= cb["deadline"] == local(2026, 12, 7, 21, 30)

    strict = make_ctx(
        **{"callbacks.toml": callbacks_toml(rest_weekdays=["sat", "sun", "mon", "tue"])}
    )
    # the first free moment (Wednesday 08:30) is past the 3-day window: recorded as unreachable
    late_id = to_front_desk(strict, local(2026, 12, 3, 21, 0), local(2026, 12, 3, 21, 20))
    late = services.ticket_detail(strict, late_id)
    assert late["callbacks"][-1]["status"] == "unreachable"
    assert "window" in late["callbacks"][-1]["reason"]
    assert late["status"] == "callback" and late["allowed_next"] == ["archived"]


def test_unanswered_calls_are_retried_then_unreachable(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml()})
    ticket_id = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    cb = callback_of(ctx, ticket_id)
    assert cb["scheduled_for"] == local(2026, 12, 8, 10, 30)
    place(ctx, cb["id"], local(2026, 12, 8, 10, 30))
    place(ctx, cb["id"], local(2026, 12, 8, 10, 31))  # twice: still one call
    assert [call_id for call_id, _data in placed_calls(ctx)] == [f"callback-{cb['id']}-1"]
    services.record_attempt(
        ctx, cb["id"], outcome="no_answer", actor="1001", now=local(2026, 12, 8, 10, 35)
    )
    cb = callback_of(ctx, ticket_id)
    # 12:35 falls in the lunch rest → 14:00
    assert cb["status"] == "scheduled" and cb["scheduled_for"] == local(2026, 12, 8, 14, 0)
    place(ctx, cb["id"], local(2026, 12, 8, 14, 0))
    services.record_attempt(
        ctx, cb["id"], outcome="busy", actor="1001", now=local(2026, 12, 8, 14, 1)
    )
    cb = callback_of(ctx, ticket_id)
    assert cb["scheduled_for"] == local(2026, 12, 8, 16, 1)
    place(ctx, cb["id"], local(2026, 12, 8, 16, 1))
    services.record_attempt(
        ctx, cb["id"], outcome="no_answer", actor="1001", now=local(2026, 12, 8, 16, 2)
    )
    detail = services.ticket_detail(ctx, ticket_id)
    cb = detail["callbacks"][-1]
    assert cb["status"] == "unreachable" and cb["attempts"] == 3
    assert [a["outcome"] for a in cb["history"]] == ["no_answer", "busy", "no_answer"]
    assert detail["status"] == "callback" and detail["allowed_next"] == ["archived"]
    assert len(placed_calls(ctx)) == 3


def test_a_retry_past_the_window_gives_up(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml(within_days=0.05)})  # 72 minutes
    ticket_id = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    cb = callback_of(ctx, ticket_id)
    place(ctx, cb["id"], cb["scheduled_for"])
    services.record_attempt(
        ctx, cb["id"], outcome="no_answer", actor="1001", now=cb["scheduled_for"]
    )
    cb = callback_of(ctx, ticket_id)
    assert cb["status"] == "unreachable" and cb["attempts"] == 1 and "window" in cb["reason"]


def test_only_members_and_the_sampled_share_are_called(make_ctx: MakeCtx, client_for: Any) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml(other_share=0.0)})
    stranger = to_front_desk(
        ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20), contact="010-9999 9999"
    )
    detail = services.ticket_detail(ctx, stranger)
    assert detail["customer_id"] is None and detail["callbacks"][-1]["status"] == "skipped"
    assert detail["allowed_next"] == ["callback", "archived"]
    services.transition(ctx, stranger, {"to": "archived"}, actor="1001")
    cfg = CallbacksFile(other_share=0.3)
    chosen = [services.callback_selected(f"GD20261207-{n:04d}", False, cfg) for n in range(2000)]
    assert chosen == [
        services.callback_selected(f"GD20261207-{n:04d}", False, cfg) for n in range(2000)
    ]
    assert 0.25 < sum(chosen) / len(chosen) < 0.35
    assert all(services.callback_selected(f"GD20261207-{n:04d}", True, cfg) for n in range(200))


def test_survey_mode_and_the_summary_report(make_ctx: MakeCtx, client_for: Any) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml(mode="survey")})
    client = client_for(ctx)
    good = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    bad = to_front_desk(
        ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20), category="cleaning"
    )
    for ticket_id in (good, bad):
        cb = callback_of(ctx, ticket_id)
        place(ctx, cb["id"], cb["scheduled_for"])
    commands = survey_commands(ctx)
    assert len(commands) == 2 and all(c.data["survey"]["digits"] == "12345" for c in commands)
    assert all(c.data["agent_first"] is False for c in commands)
    desk = auth(client, "1001")
    for ticket_id, score in ((good, 5), (bad, 2)):
        cb = callback_of(ctx, ticket_id)
        response = client.post(
            f"/api/v1/callbacks/{cb['id']}/attempts",
            headers=desk,
            json={"outcome": "answered", "score": score},
        )
        assert response.status_code == 200, response.text
    assert services.ticket_detail(ctx, good)["status"] == "callback"
    assert services.ticket_detail(ctx, bad)["status"] == "dispatched"  # reopened
    again = client.post(
        f"/api/v1/callbacks/{callback_of(ctx, good)['id']}/attempts",
        headers=desk,
        json={"outcome": "no_answer"},
    )
    assert again.status_code == 409
    report = client.get("/api/v1/callbacks/report", headers=auth(client, "lead1")).json()
    assert report["total"] == 2 and report["by_result"] == {"satisfied": 1, "unsatisfied": 1}
    assert report["satisfaction_rate"] == 0.5 and report["member_coverage"] == 1.0
    assert report["average_score"] == 3.5
    assert report["by_department"]["environment"]["unsatisfied"] == 1
    assert report["unsatisfied_reasons"][0]["department"] == "environment"
    listed = client.get("/api/v1/callbacks", headers=desk, params={"status": "done"}).json()
    assert len(listed) == 2


def test_the_scan_places_due_callbacks_and_times_out_silent_ones(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml()})
    ticket_id = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    cb = callback_of(ctx, ticket_id)
    # the timer was lost: the scan places the call
    report = jobs.scan(now=local(2026, 12, 8, 10, 40), reschedule=False)
    assert report["callbacks_placed"] == 1 and len(placed_calls(ctx)) == 1
    # nobody reports a result: after retry_after_minutes the attempt counts as unanswered
    report = jobs.scan(now=local(2026, 12, 8, 12, 41), reschedule=False)
    assert report["callbacks_stale"] == 1
    cb = callback_of(ctx, ticket_id)
    assert cb["status"] == "scheduled" and cb["history"][0]["outcome"] == "no_answer"


def test_engine_events_record_survey_scores_and_unanswered_calls(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml(mode="survey")})
    answered = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    silent = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    for ticket_id in (answered, silent):
        cb = callback_of(ctx, ticket_id)
        place(ctx, cb["id"], cb["scheduled_for"])
    first, second = (c.call_id for c in survey_commands(ctx))
    # what the engine publishes for the two calls it originated
    for event in (
        CallEvent(type="originated", call_id=first, data={"number": "13800138000"}),
        CallEvent(
            type="digits_collected", call_id=first, data={"variable": "satisfaction", "value": "4"}
        ),
        CallEvent(type="call_ended", call_id=first, data={"outcome": "answered"}),
        CallEvent(type="call_ended", call_id=second, data={"outcome": "no_answer"}),
        CallEvent(type="call_ended", call_id="some-other-call", data={"outcome": "answered"}),
    ):
        ctx.redis.xadd(ctx.keys.events, event.to_fields())  # type: ignore[arg-type]
    low = next(q for q in queues(ctx) if q.name.endswith(":low"))
    low.enqueue(jobs.scan, now=local(2026, 12, 8, 10, 40), reschedule=False)
    run_worker(ctx)
    done = callback_of(ctx, answered)
    assert done["status"] == "done" and done["result"] == "satisfied" and done["score"] == 4
    assert services.ticket_detail(ctx, answered)["status"] == "callback"
    retry = callback_of(ctx, silent)
    assert retry["status"] == "scheduled" and retry["history"][0]["outcome"] == "no_answer"
    # read again: everything was acknowledged, nothing is recorded twice
    assert jobs.consumers.consume(ctx)["read"] == 0


def test_a_lead_assigns_a_callback_to_one_agent_who_alone_records_it(
    make_ctx: MakeCtx, client_for: Any
) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml()})
    client = client_for(ctx)
    ticket_id = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    other_id = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    cb = callback_of(ctx, ticket_id)
    lead, me, colleague = auth(client, "lead1"), auth(client, "1001"), auth(client, "1002")
    agent_id = client.get("/api/v1/me", headers=me).json()["agent_id"]
    url = f"/api/v1/callbacks/{cb['id']}/assignee"
    # only a lead assigns; a wrong agent or body is refused and changes nothing
    assert client.put(url, headers=me, json={"agent_id": agent_id}).status_code == 403
    refused = client.put(url, headers=lead, json={"agent_id": 99999})
    assert refused.status_code == 422 and "agent_id" in refused.json()["message"]
    assert client.put(url, headers=lead, json={"agent": agent_id}).status_code == 422
    assert callback_of(ctx, ticket_id)["assigned_agent_id"] is None
    assigned = client.put(url, headers=lead, json={"agent_id": agent_id})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assigned_agent_id"] == agent_id
    # listed as mine; the other ticket's callback stays with the callback queue
    mine = client.get("/api/v1/callbacks", headers=me, params={"assigned_to": "me"}).json()
    assert [c["id"] for c in mine] == [cb["id"]]
    unassigned = client.get("/api/v1/callbacks", headers=me, params={"assigned_to": "none"})
    assert [c["ticket_id"] for c in unassigned.json()] == [other_id]
    assert (
        client.get("/api/v1/callbacks", headers=me, params={"assigned_to": "x"}).status_code == 422
    )
    # not placed through the callback queue while its window is open (the agent calls)
    place(ctx, cb["id"], cb["scheduled_for"])
    assert placed_calls(ctx) == []
    jobs.scan(now=cb["scheduled_for"] + timedelta(minutes=5), reschedule=False)
    other = callback_of(ctx, other_id)  # unassigned: placed by the scan
    assert [call_id for call_id, _data in placed_calls(ctx)] == [f"callback-{other['id']}-1"]
    # a colleague may not record it; the assigned agent does
    attempt = {"outcome": "answered", "result": "satisfied"}
    attempts_url = f"/api/v1/callbacks/{cb['id']}/attempts"
    assert client.post(attempts_url, headers=colleague, json=attempt).status_code == 403
    done = client.post(attempts_url, headers=me, json=attempt)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done"
    # a finished callback is not reassigned
    assert client.put(url, headers=lead, json={"agent_id": None}).status_code == 409


def test_an_assigned_callback_past_its_deadline_is_closed_by_the_scan(make_ctx: MakeCtx) -> None:
    from callcenter.auth import Principal
    from callcenter.models import Role
    from ticketing.assignment import assign_callback

    ctx = make_ctx(**{"callbacks.toml": callbacks_toml(max_attempts=1)})
    ticket_id = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    cb = callback_of(ctx, ticket_id)
    lead = Principal(user_id=0, username="lead1", role=Role.lead)
    assign_callback(ctx, cb["id"], 1, actor=lead)
    jobs.scan(now=cb["deadline"] + timedelta(minutes=1), reschedule=False)
    assert callback_of(ctx, ticket_id)["status"] == "unreachable"


def test_a_callback_event_read_while_the_database_was_down_is_recorded_by_the_next_run(
    make_ctx: MakeCtx,
) -> None:
    ctx = make_ctx(**{"callbacks.toml": callbacks_toml(mode="survey")})
    ticket_id = to_front_desk(ctx, local(2026, 12, 7, 10, 0), local(2026, 12, 7, 10, 20))
    cb = callback_of(ctx, ticket_id)
    place(ctx, cb["id"], cb["scheduled_for"])
    (command,) = survey_commands(ctx)
    jobs.consumers.ensure_group(ctx)
    ended = CallEvent(type="call_ended", call_id=command.call_id, data={"outcome": "no_answer"})
    ctx.redis.xadd(ctx.keys.events, ended.to_fields())  # type: ignore[arg-type]
    # The same reader (same Redis, same consumer name) on a database that refuses connections:
    # it receives the entry and fails on it.
    down = build_context(
        ctx.settings.model_copy(
            update={"database_url": f"postgresql://x@127.0.0.1:{free_port()}/x"}
        )
    )
    try:
        with pytest.raises(OperationalError):
            jobs.consumers.consume(down)
    finally:
        down.close()
    # The database back: the next run records it (the entry was received, never acknowledged).
    assert jobs.consumers.consume(ctx)["unanswered"] == 1
    retry = callback_of(ctx, ticket_id)
    assert retry["history"][0]["outcome"] == "no_answer", retry
    assert jobs.consumers.consume(ctx)["read"] == 0
