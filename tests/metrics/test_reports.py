"""Reports: not-ready time by reason, tickets created and satisfaction, by agent and team; on
SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.context import AppContext
from cti.models import Agent, AgentStateChange, Call, CallEvent
from metrics import reports
from ticketing.models import SatisfactionCallback, Ticket

from .conftest import local


def _fill(ctx: AppContext) -> dict[str, Any]:
    with ctx.sessions() as session, session.begin():
        agent = session.scalars(select(Agent).order_by(Agent.id)).first()
        assert agent is not None
        a = agent.id
        changes = [
            (local(27, 9, 0), "logged_out", "ready", None),
            (local(27, 9, 10), "ready", "not_ready", "break"),
            (local(27, 9, 25), "not_ready", "ready", None),  # 15 min break
            (local(27, 10, 0), "ready", "on_call", None),
            (local(27, 10, 3), "on_call", "wrap_up", None),
            (local(27, 10, 4), "wrap_up", "not_ready", "meal"),
            (local(27, 10, 34), "not_ready", "logged_out", None),  # 30 min meal
        ]
        for at, old, new, reason in changes:
            session.add(
                AgentStateChange(agent_id=a, at=at, from_state=old, to_state=new, reason=reason)
            )
        session.add(
            Call(
                id="t1",
                queue_code="general",
                agent_id=a,
                outcome="answered",
                queued_at=local(27, 9, 59, 50),
                answered_at=local(27, 10, 0),
                ended_at=local(27, 10, 3),
            )
        )
        session.flush()
        for n, (kind, at, data) in enumerate(
            [
                ("call_queued", local(27, 9, 59, 50), {"queue": "general"}),
                ("agent_answered", local(27, 10, 0), {"agent_id": a}),
                ("call_ended", local(27, 10, 3), {}),
                ("wrap_up_ended", local(27, 10, 4), {"agent_id": a}),
            ]
        ):
            session.add(CallEvent(call_id="t1", stream_id=f"9-{n}", type=kind, at=at, data=data))
        ticket = Ticket(
            number="GD20261127-0001",
            category="water_leak",
            reporter="张伟",
            unit="3-2-1201",
            what="漏水",
            when_text="今天",
            contact="13800138000",
            call_id="t1",
            created_by="1001",
            created_at=local(27, 10, 2),
        )
        session.add(ticket)
        session.flush()
        session.add(
            SatisfactionCallback(
                ticket_id=ticket.id,
                number="13800138000",
                scheduled_for=local(27, 16),
                deadline=local(29, 16),
                status="done",
                result="satisfied",
                score=5,
                completed_at=local(27, 16, 5),
            )
        )
        # a call with no stored events: replayed from its row
        session.add(
            Call(
                id="t2",
                queue_code="fees",
                outcome="abandoned",
                queued_at=local(27, 11, 0),
                ended_at=local(27, 11, 1),
            )
        )
    return {"agent": str(a), "team": str(agent.team_id)}


def _check(ctx: AppContext) -> None:
    ids = _fill(ctx)
    start = local(27, 0).astimezone(UTC)
    end = start + timedelta(days=1)
    by_agent = reports.report(ctx, start=start, end=end, period="day", group="agent")
    row = next(r for r in by_agent if r["agent"] == ids["agent"])
    assert row["not_ready_seconds"] == {"break": 900.0, "meal": 1800.0}
    assert row["answered"] == 1 and row["aht_seconds"] == 240.0  # 3 min talk + 1 min wrap-up
    assert row["tickets_created"] == 1
    assert (row["satisfaction_callbacks"], row["satisfied"], row["satisfaction_score_avg"]) == (
        1,
        1,
        5.0,
    )
    assert row["occupancy"] == pytest.approx((180 + 60) / (180 + 60 + 600 + 35 * 60))
    team = reports.report(ctx, start=start, end=end, period="day", group="team")
    assert next(r for r in team if r["team"] == ids["team"])["not_ready_seconds"]["meal"] == 1800
    queues = {
        r["queue"]: r
        for r in reports.report(ctx, start=start, end=end, period="hour", group="queue")
    }
    assert "general" in queues and queues["fees"]["abandoned"] == 1
    hours = {
        (r["period"], r["queue"])
        for r in reports.report(ctx, start=start, end=end, period="hour", group="queue")
    }
    assert ("2026-11-27 09:00", "general") in hours  # the cohort is the queue entry at 09:59:50
    csv_text = reports.to_csv(by_agent, "agent")
    assert "not_ready_break_seconds" in csv_text.splitlines()[0]


def test_report_on_sqlite(ctx: AppContext) -> None:
    _check(ctx)


@pytest.mark.postgres
def test_report_on_postgres(pg_ctx: AppContext) -> None:
    _check(pg_ctx)


def test_report_rejects_bad_ranges(ctx: AppContext) -> None:
    now = datetime.now(UTC)
    with pytest.raises(Exception, match="after"):
        reports.report(ctx, start=now, end=now - timedelta(hours=1), period="day", group="queue")
    with pytest.raises(Exception, match="at most"):
        reports.report(ctx, start=now - timedelta(days=800), end=now, period="day", group="queue")
