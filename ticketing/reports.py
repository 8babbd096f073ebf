"""Reports: overdue work (没有按规定时间完成的工作记录并上报) and the callback summary
(回访总结报告)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.db import utcnow
from cti.models import Customer
from ticketing.dispatch import department_codes
from ticketing.models import SatisfactionCallback, Ticket
from ticketing.state import OPEN_STATUSES


def overdue_report(
    ctx: AppContext,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    department_id: int | None = None,
) -> dict[str, Any]:
    """Work not finished in the required time (没有按规定时间完成的工作记录并上报); with
    ``department_id``, that department's only. Reads only the columns it reports."""
    columns = (
        Ticket.id,
        Ticket.number,
        Ticket.department_id,
        Ticket.category,
        Ticket.track,
        Ticket.status,
        Ticket.due_at,
        Ticket.overdue_at,
        Ticket.resolved_at,
        Ticket.escalation_level,
    )
    with ctx.sessions() as session:
        codes = department_codes(session)
        query = select(*columns).where(Ticket.overdue.is_(True))
        if since:
            query = query.where(Ticket.overdue_at >= since)
        if until:
            query = query.where(Ticket.overdue_at < until)
        if department_id is not None:
            query = query.where(Ticket.department_id == department_id)
        rows = session.execute(query.order_by(Ticket.overdue_at)).all()
    now = utcnow()
    items = []
    by_department: dict[str, int] = {}
    for t in rows:
        code = codes.get(t.department_id or 0, "")
        by_department[code] = by_department.get(code, 0) + 1
        end = t.resolved_at
        items.append(
            {
                "id": t.id,
                "number": t.number,
                "department": code,
                "category": t.category,
                "track": t.track,
                "status": t.status,
                "due_at": t.due_at,
                "overdue_at": t.overdue_at,
                "resolved_at": t.resolved_at,
                "escalation_level": t.escalation_level,
                "late_minutes": int(((end or now) - t.due_at).total_seconds() // 60)
                if t.due_at
                else None,
                "still_open": t.status in OPEN_STATUSES,
            }
        )
    return {
        "since": since,
        "until": until,
        "total": len(items),
        "by_department": by_department,
        "items": items,
    }


def callback_report(
    ctx: AppContext, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """回访总结报告: callbacks created in the period, their results and reasons."""
    with ctx.sessions() as session:
        codes = department_codes(session)
        query = (
            select(SatisfactionCallback, Ticket, Customer.member)
            .join(Ticket, Ticket.id == SatisfactionCallback.ticket_id)
            .outerjoin(Customer, Customer.id == SatisfactionCallback.customer_id)
        )
        if since:
            query = query.where(SatisfactionCallback.created_at >= since)
        if until:
            query = query.where(SatisfactionCallback.created_at < until)
        by_status: dict[str, int] = {}
        by_result: dict[str, int] = {}
        departments: dict[str, dict[str, int]] = {}
        reasons: list[dict[str, Any]] = []
        scores: list[int] = []
        members = members_called = on_time = finished = attempts = 0
        for cb, ticket, member in session.execute(query):
            by_status[cb.status] = by_status.get(cb.status, 0) + 1
            attempts += cb.attempts
            if cb.result:
                by_result[cb.result] = by_result.get(cb.result, 0) + 1
            dept = departments.setdefault(
                codes.get(ticket.department_id or 0, ""),
                {"satisfied": 0, "unsatisfied": 0, "unreachable": 0},
            )
            if cb.result in dept:
                dept[cb.result] += 1
            if member:
                members += 1
                members_called += cb.status != "skipped"
            if cb.completed_at and cb.status in {"done", "unreachable"}:
                finished += 1
                on_time += cb.completed_at <= cb.deadline
            if cb.score:
                scores.append(cb.score)
            if cb.result == "unsatisfied":
                reasons.append(
                    {
                        "ticket": ticket.number,
                        "department": codes.get(ticket.department_id or 0),
                        "reason": cb.reason,
                    }
                )
        answered = by_result.get("satisfied", 0) + by_result.get("unsatisfied", 0)
        return {
            "since": since,
            "until": until,
            "total": sum(by_status.values()),
            "by_status": by_status,
            "by_result": by_result,
            "satisfaction_rate": round(by_result.get("satisfied", 0) / answered, 4)
            if answered
            else None,
            "member_coverage": round(members_called / members, 4) if members else None,
            "on_time_rate": round(on_time / finished, 4) if finished else None,
            "average_score": round(sum(scores) / len(scores), 2) if scores else None,
            "attempts": attempts,
            "by_department": departments,
            "unsatisfied_reasons": reasons,
        }
