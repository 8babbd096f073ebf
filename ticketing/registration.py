"""Registering a report (the 5 clarities, 5清楚): who calls, the day's number, the ticket and
its first events, dispatched at once unless told not to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from callcenter.auth import Principal
from callcenter.context import AppContext
from callcenter.db import utcnow
from callcenter.errors import Conflict, InvalidInput
from cti.models import Call, Customer, CustomerPhone
from cti.numbers import normalize
from ticketing.change import actor_name, changing
from ticketing.dispatch import contacts_for, department_by_code, dispatch_ticket
from ticketing.errors import TICKET_NUMBER_UNAVAILABLE, TICKET_UNKNOWN_CATEGORY
from ticketing.idempotency import IdempotencyKey, is_key_clash, record, stored_ticket
from ticketing.models import Ticket
from ticketing.numbering import NUMBER_RETRIES, allocate_number, number_day
from ticketing.schemas import TicketCreate
from ticketing.sla import resolve_sla, written_notice
from ticketing.state import Status

# Statements of the request path, built once: building a SELECT costs several times more
# Python than running it. They run on the session's connection (Core: rows, not objects).
_TICKETS = cast(Table, Ticket.__table__)
_IDENTITY = (
    Customer.id,
    Customer.name,
    Customer.member,
    Customer.fee_status,
    Customer.arrears_amount,
)
_CUSTOMER_OF_CALL = (
    select(*_IDENTITY)
    .join(Call, Call.customer_id == Customer.id)
    .where(Call.id == bindparam("call_id"))
)
_CUSTOMER_OF_NUMBER = (
    select(*_IDENTITY)
    .join(CustomerPhone, CustomerPhone.customer_id == Customer.id)
    .where(CustomerPhone.number == bindparam("number"))
    .limit(1)
)
_INSERT_TICKET = insert(_TICKETS).returning(_TICKETS.c.id)
_TICKET_COLUMNS = [c.key for c in _TICKETS.columns if c.key != "id"]


def caller_identity(
    session: Session, *, call_id: str | None, contact: str
) -> dict[str, Any] | None:
    """Who reports, as the registration records it (处理投诉：确认对方的身份、查看投诉者的缴费情况):
    the customer of the linked call's record when it has one, else the customer owning the
    contact number. One query in the usual case."""
    conn = session.connection()
    row = conn.execute(_CUSTOMER_OF_CALL, {"call_id": call_id}).first() if call_id else None
    number = normalize(contact)
    if row is None and number:
        row = conn.execute(_CUSTOMER_OF_NUMBER, {"number": number}).first()
    if row is None:
        return None
    return {
        "customer_id": row.id,
        "name": row.name,
        "member": row.member,
        "fee_status": str(row.fee_status),
        "arrears": str(row.arrears_amount),
    }


def _insert_ticket(session: Session, ticket: Ticket) -> None:
    """Write a new ticket's row as it stands, in one INSERT … RETURNING id (no ORM unit of
    work). The object then stands for that row, detached, as if loaded and its session
    closed: adding it to a session later updates the row rather than inserting it again."""
    values = {key: getattr(ticket, key) for key in _TICKET_COLUMNS}
    ticket.id = session.connection().execute(_INSERT_TICKET, values).scalar_one()
    for key, value in values.items():  # every column loaded, None ones included
        setattr(ticket, key, value)
    make_transient_to_detached(ticket)


@dataclass(frozen=True)
class Registered:
    """The ticket a registration answers with; ``replayed``: registered by an earlier request
    with the same idempotency key, nothing written now."""

    ticket: Ticket
    replayed: bool = False


def _registered_before(
    session: Session, idempotency: IdempotencyKey | None, now: datetime
) -> Registered | None:
    """The ticket an earlier request with this key registered, or None."""
    if idempotency is None:
        return None
    earlier = stored_ticket(session, idempotency, now)
    if earlier is None:
        return None
    stored = session.get(Ticket, earlier)
    assert stored is not None  # the key's row holds a foreign key to it
    return Registered(stored, replayed=True)


def _same_key_first(exc: IntegrityError, idempotency: IdempotencyKey | None) -> bool:
    """Did a request with the same key commit while this one ran (PostgreSQL: both looked
    for the key before either committed)?"""
    return idempotency is not None and is_key_clash(exc)


def create_ticket(
    ctx: AppContext, data: TicketCreate, *, actor: Principal | str, now: datetime | None = None
) -> Ticket:
    """Register a report; dispatch it at once to the category's department unless told not to.

    In SQL: the caller's identity (read before any write), the day's number (the first write,
    which takes SQLite's write lock), the ticket, its events — then the commit; the SLA timer
    goes to Redis after it."""
    return register(ctx, data, actor=actor, now=now).ticket


def register(
    ctx: AppContext,
    data: TicketCreate,
    *,
    actor: Principal | str,
    now: datetime | None = None,
    idempotency: IdempotencyKey | None = None,
) -> Registered:
    """:func:`create_ticket`, once per ``idempotency`` key: the key is looked for first and
    written with the ticket, in its transaction (``ticketing.idempotency``); a key found
    answers its ticket as it is now."""
    now = now or utcnow()
    cfg = ctx.config.dispatch
    category = cfg.categories.get(data.category)
    if category is None:
        raise InvalidInput(
            f"category: unknown category {data.category!r} / 未知类别 "
            "(see GET /api/v1/ticket-categories)",
            details={"field": "category", "allowed": sorted(cfg.categories)},
            error_id=TICKET_UNKNOWN_CATEGORY,
        )
    sla, due_at = resolve_sla(ctx, category.sla, data.sla, data.due_at, now)
    channel = data.channel or ("phone" if data.call_id else "api")
    track = cfg.tracks[data.track]
    resync = False
    for _attempt in range(NUMBER_RETRIES):
        try:
            with changing(ctx, actor=actor_name(actor), now=now) as change:
                session = change.session
                replayed = _registered_before(session, idempotency, now)
                if replayed is not None:
                    return replayed
                # A screen-pop ticket is registered while the call is live: the call's record
                # may not be written yet (the calls consumer follows the event stream); the id
                # is kept as it is and the contact number finds the customer.
                identity = caller_identity(session, call_id=data.call_id, contact=data.contact)
                dept = department_by_code(session, category.department)
                # Read (and cache) who gets it before the first write: fewer round trips
                # while SQLite's write lock is held.
                contacts_for(session, dept.id, track.dispatch_to)
                if track.notify_leadership:
                    contacts_for(session, None, "leadership")
                ticket = Ticket(
                    number=allocate_number(session, number_day(ctx, now), resync=resync),
                    category=data.category,
                    department_id=dept.id,
                    track=data.track,
                    status=Status.registered,
                    complaint_kind=data.complaint_kind,
                    reporter=data.reporter,
                    unit=data.unit,
                    what=data.what,
                    when_text=data.when,
                    contact=data.contact,
                    description=data.description,
                    customer_id=identity["customer_id"] if identity else None,
                    call_id=data.call_id,
                    channel=channel,
                    sla_class=sla,
                    due_at=due_at,
                    escalation_level=0,
                    overdue=False,
                    created_by=change.actor,
                    created_at=now,
                    updated_at=now,
                )
                change.event(
                    ticket,
                    "registered",
                    to_status=Status.registered,
                    data={
                        "channel": channel,
                        "call_id": data.call_id,
                        "sla": sla,
                        "due_at": due_at.isoformat(),
                        "written_notice": written_notice(ctx, sla),
                        "complaint_kind": data.complaint_kind,
                        "customer": identity,
                    },
                )
                if data.auto_dispatch:
                    dispatch_ticket(change, ticket, dept, from_status=Status.registered)
                _insert_ticket(session, ticket)  # once, as registered and dispatched leave it
                if idempotency is not None:
                    record(session, idempotency, ticket.id, now)
                change.schedule_sla(ticket)
        except IntegrityError as exc:
            if _same_key_first(exc, idempotency):
                continue  # look again: the key is found, its ticket answered
            message = str(exc.orig).lower()
            if "uq_tickets_number" in message or "tickets.number" in message:
                resync = True  # the number was taken outside the counter: catch up, retry
                continue
            raise
        return Registered(ticket)
    raise Conflict(
        "could not allocate a ticket number; try again / 工单号分配失败，请重试",
        error_id=TICKET_NUMBER_UNAVAILABLE,
    )
