"""SLA classes and deadlines, and the checks a deadline needs: warn before it, mark the ticket
overdue after it, escalate up the chain (派单落实责任人 → 经理 → 上级主管领导). Safe to repeat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from callcenter.context import AppContext
from callcenter.errors import InvalidInput
from ticketing.change import SYSTEM, Change
from ticketing.dispatch import contacts_for
from ticketing.errors import TICKET_BAD_SLA
from ticketing.models import Ticket, TicketEvent
from ticketing.state import OPEN_STATUSES

# Escalation chain (派单落实责任人 → 经理 → 上级主管领导).
CHAIN = ("supervisor", "manager", "leadership")


def escalation_role(track_dispatch_to: str, level: int) -> str:
    start = CHAIN.index(track_dispatch_to)
    return CHAIN[min(start + level, len(CHAIN) - 1)]


def max_escalation_level(track_dispatch_to: str) -> int:
    return len(CHAIN) - 1 - CHAIN.index(track_dispatch_to)


def resolve_sla(
    ctx: AppContext, category_sla: str, sla: str | None, due_at: datetime | None, now: datetime
) -> tuple[str, datetime]:
    """The SLA class and deadline of a new ticket; an agreed deadline must be in the future."""
    classes = ctx.config.dispatch.sla
    if sla is None:
        sla = (
            next((c for c, s in classes.items() if s.agreed), "agreed") if due_at else category_sla
        )
    if sla not in classes:
        raise InvalidInput(
            f"sla: unknown SLA class {sla!r}; use one of {', '.join(classes)} / 未知时限",
            details={"field": "sla", "allowed": list(classes)},
            error_id=TICKET_BAD_SLA,
        )
    cls = classes[sla]
    if cls.agreed:
        if due_at is None:
            raise InvalidInput(
                "due_at: required with an agreed SLA / 与客户商定的时限须填写截止时间",
                details={"field": "due_at"},
                error_id=TICKET_BAD_SLA,
            )
        if due_at.tzinfo is None:
            raise InvalidInput(
                "due_at: give a time zone (e.g. 2026-11-30T18:00:00+08:00)",
                details={"field": "due_at"},
                error_id=TICKET_BAD_SLA,
            )
        if due_at <= now:
            raise InvalidInput(
                f"due_at: {due_at.isoformat()} is in the past / 截止时间已过",
                details={"field": "due_at", "now": now.isoformat()},
                error_id=TICKET_BAD_SLA,
            )
        return sla, due_at.astimezone(UTC)
    if due_at is not None:
        raise InvalidInput(
            f"due_at: only with sla=agreed (SLA class {sla!r} has a fixed duration)",
            details={"field": "due_at"},
            error_id=TICKET_BAD_SLA,
        )
    assert cls.minutes is not None
    return sla, now + timedelta(minutes=cls.minutes)


def written_notice(ctx: AppContext, sla: str) -> bool:
    cls = ctx.config.dispatch.sla.get(sla)
    return bool(cls and cls.written_notice)


def reopened_columns(ctx: AppContext, ticket: Ticket, now: datetime) -> dict[str, Any]:
    """A fresh SLA window for the rework; the lateness already recorded stays recorded."""
    cls = ctx.config.dispatch.sla.get(ticket.sla_class)
    if cls is not None and cls.minutes is not None:
        window = timedelta(minutes=cls.minutes)
    elif ticket.due_at is not None:
        window = max(ticket.due_at - ticket.created_at, timedelta(minutes=30))
    else:
        window = timedelta(minutes=30)
    return {"due_at": now + window, "escalation_level": 0, "resolved_at": None, "assignee": None}


def mark_overdue(change: Change, ticket: Ticket, *, actor: str) -> bool:
    """Record that the current deadline was missed (once per deadline)."""
    due = ticket.due_at.isoformat() if ticket.due_at else None
    if _has_event(change, ticket.id, "overdue", due):
        return False
    ticket.overdue = True
    ticket.overdue_at = ticket.overdue_at or change.now
    _note_event(change.session, ticket.id, "overdue", due)
    change.event(ticket, "overdue", data={"due_at": due}, actor=actor)
    return True


def _has_event(change: Change, ticket_id: int, type: str, due: str | None) -> bool:
    """Was this SLA event already recorded for this deadline? (preloaded during a scan)"""
    if change.recorded(ticket_id, type, due):
        return True
    session = change.session
    seen = session.info.get("sla_seen")
    if seen is not None and ticket_id in seen["tickets"]:
        return (ticket_id, type, due) in seen["events"]
    rows = session.scalars(
        select(TicketEvent.data).where(TicketEvent.ticket_id == ticket_id, TicketEvent.type == type)
    )
    return any((row or {}).get("due_at") == due for row in rows)


def _note_event(session: Session, ticket_id: int, type: str, due: str | None) -> None:
    seen = session.info.get("sla_seen")
    if seen is not None:
        seen["events"].add((ticket_id, type, due))


def preload_sla_events(session: Session, ticket_ids: list[int]) -> None:
    """One query for the SLA events of many tickets, so a scan does not ask per ticket."""
    events: set[tuple[int, str, str | None]] = set()
    for start in range(0, len(ticket_ids), 500):
        chunk = ticket_ids[start : start + 500]
        rows = session.execute(
            select(TicketEvent.ticket_id, TicketEvent.type, TicketEvent.data).where(
                TicketEvent.ticket_id.in_(chunk), TicketEvent.type.in_(["overdue", "sla_warning"])
            )
        )
        events.update((tid, kind, (data or {}).get("due_at")) for tid, kind, data in rows)
    session.info["sla_seen"] = {"tickets": set(ticket_ids), "events": events}


def check_sla(change: Change, ticket: Ticket) -> list[str]:
    """Warn before the deadline, mark overdue and escalate after it. Safe to repeat."""
    session, ctx, now = change.session, change.ctx, change.now
    done: list[str] = []
    if ticket.status not in OPEN_STATUSES or ticket.due_at is None:
        return done
    track = ctx.config.dispatch.tracks[ticket.track]  # type: ignore[index]
    due = ticket.due_at.isoformat()
    warn_at = ticket.due_at - timedelta(minutes=track.warn_before_minutes)
    if warn_at <= now < ticket.due_at and not _has_event(change, ticket.id, "sla_warning", due):
        change.event(
            ticket,
            "sla_warning",
            actor=SYSTEM,
            data={
                "due_at": due,
                "minutes_left": int((ticket.due_at - now).total_seconds() // 60),
                "recipients": contacts_for(session, ticket.department_id, track.dispatch_to),
            },
        )
        _note_event(session, ticket.id, "sla_warning", due)
        done.append("warned")
    if now < ticket.due_at:
        return done
    if mark_overdue(change, ticket, actor=SYSTEM):
        done.append("overdue")
    top = max_escalation_level(track.dispatch_to)
    wanted = 1 if now < ticket.due_at + timedelta(minutes=track.escalate_above_after_minutes) else 2
    wanted = min(wanted, top)
    for level in range(ticket.escalation_level + 1, wanted + 1):
        claimed = session.execute(
            update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.escalation_level < level)
            .values(escalation_level=level)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        set_committed_value(ticket, "escalation_level", level)  # as stored: not written again
        role = escalation_role(track.dispatch_to, level)
        change.event(
            ticket,
            "escalated",
            actor=SYSTEM,
            data={
                "due_at": due,
                "level": level,
                "to_role": role,
                "recipients": contacts_for(session, ticket.department_id, role),
            },
        )
        done.append(f"escalated:{level}")
    return done


def sla_candidates(session: Session, ctx: AppContext, now: datetime) -> list[Ticket]:
    """Open tickets whose warning time has come and that are not yet at the top escalation."""
    tracks = ctx.config.dispatch.tracks
    horizon = now + timedelta(minutes=max(t.warn_before_minutes for t in tracks.values()))
    tickets = list(
        session.scalars(
            select(Ticket).where(
                Ticket.status.in_([s.value for s in OPEN_STATUSES]),
                Ticket.due_at <= horizon,
                Ticket.escalation_level < 2,
            )
        )
    )
    preload_sla_events(session, [t.id for t in tickets])
    return tickets
