"""Reading tickets and callbacks as the API answers them (``TicketPublic``, ``TicketDetail``,
``CallbackPublic``), and the ticket list with its filters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, func, or_, select
from sqlalchemy.orm import Session

from callcenter.auth import Principal
from callcenter.context import AppContext
from callcenter.errors import Forbidden, NotFound
from callcenter.models import Role
from cti.models import CustomerPhone
from cti.numbers import normalize
from ticketing.callbacks import callback_flags
from ticketing.dispatch import department_codes, resolve_department
from ticketing.errors import TICKET_NOT_FOUND, TICKET_OTHER_DEPARTMENT
from ticketing.models import CallbackAttempt, SatisfactionCallback, Ticket, TicketEvent, WorkOrder
from ticketing.sla import written_notice
from ticketing.state import Status, allowed_next, parse_status


def load_ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(
            f"ticket {ticket_id} does not exist / 工单不存在",
            details={"id": ticket_id},
            error_id=TICKET_NOT_FOUND,
        )
    return ticket


def allowed_for(session: Session, ticket: Ticket) -> list[str]:
    required, result = callback_flags(session, ticket)
    return [
        s.value
        for s in allowed_next(
            Status(ticket.status), ticket.track, callback_required=required, callback_result=result
        )
    ]


def ticket_dict(
    session: Session, ctx: AppContext, ticket: Ticket, codes: dict[int, str]
) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "number": ticket.number,
        "status": ticket.status,
        "category": ticket.category,
        "department": codes.get(ticket.department_id) if ticket.department_id else None,
        "department_id": ticket.department_id,
        "track": ticket.track,
        "complaint_kind": ticket.complaint_kind,
        "reporter": ticket.reporter,
        "unit": ticket.unit,
        "what": ticket.what,
        "when": ticket.when_text,
        "contact": ticket.contact,
        "description": ticket.description,
        "customer_id": ticket.customer_id,
        "call_id": ticket.call_id,
        "channel": ticket.channel,
        "sla": ticket.sla_class,
        "written_notice": written_notice(ctx, ticket.sla_class),
        "due_at": ticket.due_at,
        "assignee": ticket.assignee,
        "escalation_level": ticket.escalation_level,
        "overdue": ticket.overdue,
        "overdue_at": ticket.overdue_at,
        "created_by": ticket.created_by,
        "created_at": ticket.created_at,
        "updated_at": ticket.updated_at,
        "resolved_at": ticket.resolved_at,
        "closed_at": ticket.closed_at,
        "allowed_next": allowed_for(session, ticket),
    }


def callback_dict(
    cb: SatisfactionCallback | Row[Any], attempts: Sequence[CallbackAttempt | Row[Any]]
) -> dict[str, Any]:
    """A callback as ``CallbackPublic``, from the object or a row of ``callbacks``."""
    return {
        "id": cb.id,
        "ticket_id": cb.ticket_id,
        "customer_id": cb.customer_id,
        "number": cb.number,
        "mode": cb.mode,
        "scheduled_for": cb.scheduled_for,
        "deadline": cb.deadline,
        "status": cb.status,
        "attempts": cb.attempts,
        "result": cb.result,
        "score": cb.score,
        "reason": cb.reason,
        "completed_at": cb.completed_at,
        "assigned_agent_id": cb.assigned_agent_id,
        "history": [
            {"id": a.id, "at": a.at, "outcome": a.outcome, "call_id": a.call_id, "note": a.note}
            for a in attempts
        ],
    }


def ticket_summary(ctx: AppContext, ticket: int | Ticket) -> dict[str, Any]:
    """The ticket as ``TicketPublic``; pass the ticket just written to skip reading it again."""
    with ctx.sessions() as session:
        if not isinstance(ticket, Ticket):
            ticket = load_ticket(session, ticket)
        return ticket_dict(session, ctx, ticket, department_codes(session))


_TIMELINE = (
    select(
        TicketEvent.id,
        TicketEvent.at,
        TicketEvent.actor,
        TicketEvent.type,
        TicketEvent.from_status,
        TicketEvent.to_status,
        TicketEvent.data,
    )
    .where(TicketEvent.ticket_id == bindparam("ticket_id"))
    .order_by(TicketEvent.id)
)
_WORK_ORDERS = (
    select(
        WorkOrder.id,
        WorkOrder.done,
        WorkOrder.materials,
        WorkOrder.minutes_spent,
        WorkOrder.attachments,
        WorkOrder.filled_by,
        WorkOrder.completed_at,
    )
    .where(WorkOrder.ticket_id == bindparam("ticket_id"))
    .order_by(WorkOrder.id)
)
_CALLBACKS = (
    select(cast(Table, SatisfactionCallback.__table__))
    .where(SatisfactionCallback.ticket_id == bindparam("ticket_id"))
    .order_by(SatisfactionCallback.id)
)
_ATTEMPTS = (
    select(cast(Table, CallbackAttempt.__table__))
    .where(CallbackAttempt.callback_id.in_(bindparam("ids", expanding=True)))
    .order_by(CallbackAttempt.id)
)


def ticket_detail(
    ctx: AppContext, ticket: int | Ticket, *, viewer: Principal | None = None
) -> dict[str, Any]:
    """The ticket with its timeline, work orders and callbacks (``TicketDetail``); pass the
    ticket just written to skip reading it again. Rows are read as plain tuples."""
    with ctx.sessions() as session:
        if not isinstance(ticket, Ticket):
            ticket = load_ticket(session, ticket)
        if (
            viewer is not None
            and viewer.role is Role.department
            and viewer.department_id != ticket.department_id
        ):
            raise Forbidden(
                "this ticket belongs to another department / 该工单不属于本部门",
                error_id=TICKET_OTHER_DEPARTMENT,
            )
        return read_detail(session, ctx, ticket)


def read_detail(session: Session, ctx: AppContext, ticket: Ticket) -> dict[str, Any]:
    out = ticket_dict(session, ctx, ticket, department_codes(session))
    conn = session.connection()
    key = {"ticket_id": ticket.id}
    out["timeline"] = [dict(row._mapping) for row in conn.execute(_TIMELINE, key)]
    out["work_orders"] = [dict(row._mapping) for row in conn.execute(_WORK_ORDERS, key)]
    cbs = list(conn.execute(_CALLBACKS, key))
    attempts: dict[int, list[Row[Any]]] = {cb.id: [] for cb in cbs}
    if cbs:
        for attempt in conn.execute(_ATTEMPTS, {"ids": list(attempts)}):
            attempts[attempt.callback_id].append(attempt)
    out["callbacks"] = [callback_dict(cb, attempts[cb.id]) for cb in cbs]
    return out


def list_tickets(
    ctx: AppContext,
    *,
    status: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
    customer_number: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    with ctx.sessions() as session:
        codes = department_codes(session)
        query = select(Ticket)
        if status:
            parse_status(status, field="status")
            query = query.where(Ticket.status == status)
        if department:
            dept_id = resolve_department(session, department).id
            query = query.where(Ticket.department_id == dept_id)
        if overdue is not None:
            query = query.where(Ticket.overdue.is_(overdue))
        if customer_number:
            number = normalize(customer_number)
            customers = select(CustomerPhone.customer_id).where(CustomerPhone.number == number)
            query = query.where(or_(Ticket.contact == number, Ticket.customer_id.in_(customers)))
        if created_from:
            query = query.where(Ticket.created_at >= created_from)
        if created_to:
            query = query.where(Ticket.created_at < created_to)
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(Ticket.id.desc()).limit(limit).offset(offset))
        return {
            "items": [ticket_dict(session, ctx, t, codes) for t in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }


def list_callbacks(
    ctx: AppContext,
    *,
    status: str | None = None,
    limit: int = 100,
    assigned_to: int | None = None,
    unassigned: bool = False,
) -> list[dict[str, Any]]:
    """Callbacks by status; ``assigned_to`` one agent's, or the ``unassigned`` ones."""
    with ctx.sessions() as session:
        query = select(SatisfactionCallback)
        if status:
            query = query.where(SatisfactionCallback.status == status)
        if assigned_to is not None:
            query = query.where(SatisfactionCallback.assigned_agent_id == assigned_to)
        elif unassigned:
            query = query.where(SatisfactionCallback.assigned_agent_id.is_(None))
        rows = list(
            session.scalars(query.order_by(SatisfactionCallback.scheduled_for).limit(limit))
        )
        return [callback_dict(cb, []) for cb in rows]
