"""Ticket domain logic: registration with the 5 clarities, dispatch, transitions, SLA checks,
callbacks (回访) and the webhook outbox.

Everything that must not be lost is written to SQL in the same transaction as the change
(events, webhook deliveries, callback rows). Timed work (SLA timers, callbacks, webhook
retries) is then handed to RQ *after* the commit (:class:`Effects`); if that hand-off is lost
(Redis down, process killed), the periodic scan in ``ticketing.jobs`` finds the work in SQL.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Row, Table, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import flag_modified, set_committed_value

from callcenter.auth import Principal
from callcenter.context import AppContext
from callcenter.db import utcnow, write_gate
from callcenter.errors import Conflict, Forbidden, InvalidInput, NotFound
from callcenter.models import Role
from callcenter.params import row_id_in
from config.schemas import CallbacksFile
from cti.models import Call, Customer, CustomerPhone, Department, DepartmentContact
from cti.numbers import normalize
from ticketing.models import (
    CallbackAttempt,
    SatisfactionCallback,
    Ticket,
    TicketEvent,
    TicketNumberCounter,
    WebhookDelivery,
    WorkOrder,
)
from ticketing.schemas import TicketCreate
from ticketing.state import (
    DEPARTMENT_STEPS,
    OPEN_STATUSES,
    CallbackResult,
    Status,
    allowed_next,
    check_transition,
    parse_status,
)

log = logging.getLogger(__name__)

SYSTEM = "system"
NUMBER_RETRIES = 20


# ---------------------------------------------------------------- one change: events, effects


@dataclass
class Effects:
    """Work to hand to RQ once the transaction has committed."""

    deliveries: list[int] = field(default_factory=list)  # webhook delivery ids to send
    # (ticket id, deadline, track) whose SLA timers to (re)schedule
    sla: list[tuple[int, datetime, str]] = field(default_factory=list)
    # (callback id, when) to (re)schedule
    callbacks: list[tuple[int, datetime]] = field(default_factory=list)


_EVENTS = cast(Table, TicketEvent.__table__)
_DELIVERIES = cast(Table, WebhookDelivery.__table__)
# RETURNING makes SQLAlchemy send the rows as one multi-row INSERT (its "insertmanyvalues")
# rather than an executemany, which psycopg runs as a pipeline of several round trips.
_INSERT_EVENTS = insert(_EVENTS).returning(_EVENTS.c.id)
_INSERT_DELIVERIES = insert(_DELIVERIES).returning(_DELIVERIES.c.id, sort_by_parameter_order=True)


@dataclass
class _PendingEvent:
    ticket: Ticket
    row: dict[str, Any]
    deliveries: list[dict[str, Any]]  # WebhookDelivery rows, payload["ticket"]["id"] to fill


@dataclass
class Change:
    """One transaction's changes to tickets and what goes with them.

    Each step records its timeline entries through :meth:`event` (who acts and when is the
    change's unless told otherwise); their rows and the matching webhook deliveries are
    inserted by :meth:`flush` just before the commit, in the same transaction, one multi-row
    INSERT each, once the tickets have their ids and the ORM has written its pending rows.
    Timed work for RQ collects in ``effects`` and is handed over after the commit. Open one
    with :func:`changing` (a job with its own transaction may flush one itself)."""

    session: Session
    ctx: AppContext
    actor: str
    now: datetime
    effects: Effects = field(default_factory=Effects)
    _events: list[_PendingEvent] = field(default_factory=list)
    _sla: list[tuple[Ticket, datetime, str]] = field(default_factory=list)
    _callbacks: list[SatisfactionCallback] = field(default_factory=list)

    def event(
        self,
        ticket: Ticket,
        type: str,
        *,
        from_status: str | None = None,
        to_status: str | None = None,
        data: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> None:
        """Record one timeline entry of ``ticket`` (as it is now) and its webhook deliveries."""
        actor = actor or self.actor
        data = data or {}
        row = {
            "at": self.now,
            "actor": actor,
            "type": type,
            "from_status": from_status,
            "to_status": to_status,
            "data": data,
        }
        deliveries: list[dict[str, Any]] = []
        name = f"ticket.{type}"
        targets = self.ctx.config.webhooks.targets
        if targets:
            body = {
                "event": name,
                "at": self.now.isoformat(),
                "actor": actor,
                "ticket": {
                    "id": ticket.id,
                    "number": ticket.number,
                    "status": ticket.status,
                    "category": ticket.category,
                    "department_id": ticket.department_id,
                    "track": ticket.track,
                    "due_at": ticket.due_at.isoformat() if ticket.due_at else None,
                    "overdue": ticket.overdue,
                    "escalation_level": ticket.escalation_level,
                    "assignee": ticket.assignee,
                },
                "from_status": from_status,
                "to_status": to_status,
                "data": data,
            }
            for target in targets.values():
                if any(fnmatch.fnmatchcase(name, pattern) for pattern in target.events):
                    deliveries.append(
                        {
                            "url": target.url,
                            "event": name,
                            "payload": body,
                            "status": "pending",
                            "next_attempt_at": self.now,
                        }
                    )
        self._events.append(_PendingEvent(ticket, row, deliveries))

    def recorded(self, ticket_id: int | None, type: str, due: str | None) -> bool:
        """Was this SLA event recorded by this change (not inserted yet)?"""
        return any(
            p.ticket.id == ticket_id
            and p.row["type"] == type
            and p.row["data"].get("due_at") == due
            for p in self._events
        )

    def schedule_sla(self, ticket: Ticket) -> None:
        """(Re)schedule the ticket's SLA timers for its current deadline after the commit."""
        assert ticket.due_at is not None
        self._sla.append((ticket, ticket.due_at, ticket.track))

    def schedule_callback(self, cb: SatisfactionCallback) -> None:
        """(Re)schedule the callback's next attempt (its ``scheduled_for`` at commit)."""
        self._callbacks.append(cb)

    def flush(self) -> None:
        """Write the ORM's pending rows, then every pending event and delivery (one INSERT
        each); safe to call again (only what was added since is written)."""
        self.session.flush()
        events = [{**p.row, "ticket_id": p.ticket.id} for p in self._events]
        deliveries = []
        for pending in self._events:
            for delivery in pending.deliveries:
                delivery["payload"]["ticket"]["id"] = pending.ticket.id
                deliveries.append(delivery)
        # Core inserts on the tables (not ORM bulk inserts, which split rows by the keys
        # holding None): one multi-row statement each, one round trip.
        conn = self.session.connection()
        if events:
            conn.execute(_INSERT_EVENTS, events)
        if deliveries:
            ids = conn.execute(_INSERT_DELIVERIES, deliveries).scalars()
            self.effects.deliveries.extend(ids)
        self.effects.sla.extend((ticket.id, due, track) for ticket, due, track in self._sla)
        planned = {cb.id: cb.scheduled_for for cb in self._callbacks}
        self.effects.callbacks.extend(planned.items())
        self._events.clear()
        self._sla.clear()
        self._callbacks.clear()


@contextmanager
def changing(ctx: AppContext, *, actor: str, now: datetime) -> Iterator[Change]:
    """One transaction of ticket changes: on success its events are inserted, it commits,
    then its timed work is handed to RQ; on an error everything is rolled back."""
    with ctx.sessions() as session:
        with write_gate(ctx.engine), session.begin():
            change = Change(session, ctx, actor, now)
            yield change
            change.flush()
        apply_effects(ctx, change.effects)


def apply_effects(ctx: AppContext, effects: Effects) -> None:
    """Enqueue the timed work; failures are logged, the periodic scan recovers them."""
    from ticketing import jobs  # jobs import services; keep the cycle at call time

    try:
        jobs.schedule_effects(ctx, effects)
    except Exception:  # Redis down: SQL has everything, the scan will find it
        log.exception("could not enqueue ticket jobs; the periodic scan will pick them up")


# ---------------------------------------------------------------- helpers


def local_tz(ctx: AppContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.timezone)


def actor_name(actor: Principal | str) -> str:
    return actor if isinstance(actor, str) else actor.username


# Departments and their contacts change rarely (an admin edits them); every request needs
# them. They are cached per database engine for REFERENCE_TTL seconds.
REFERENCE_TTL = 30.0
_reference: weakref.WeakKeyDictionary[Any, dict[Any, tuple[float, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _cached(session: Session, key: Any, load: Any) -> Any:
    cache = _reference.setdefault(session.get_bind(), {})
    entry = cache.get(key)
    if entry is not None and time.monotonic() - entry[0] < REFERENCE_TTL:
        return entry[1]
    value = load()
    cache[key] = (time.monotonic(), value)
    return value


@dataclass(frozen=True)
class DeptRef:
    id: int
    code: str


def department_codes(session: Session) -> dict[int, str]:
    codes: dict[int, str] = _cached(
        session,
        "departments",
        lambda: {d.id: d.code for d in session.scalars(select(Department))},
    )
    return codes


def _department_by_code(session: Session, code: str) -> DeptRef:
    for dept_id, dept_code in department_codes(session).items():
        if dept_code == code:
            return DeptRef(dept_id, dept_code)
    dept = session.scalar(select(Department).where(Department.code == code))  # added since cached
    if dept is None:
        raise InvalidInput(
            f"department: {code!r} is not in the database (run `callcenter seed-demo` or sync)",
            details={"field": "department", "value": code},
        )
    return DeptRef(dept.id, dept.code)


def contacts_for(session: Session, department_id: int | None, role: str) -> list[dict[str, Any]]:
    """Who to tell: a department's supervisors or managers, or the company's leadership."""
    key = ("contacts", None if role == "leadership" else department_id, role)
    found: list[dict[str, Any]] = _cached(
        session, key, lambda: _contacts(session, department_id, role)
    )
    return [dict(c) for c in found]


def _contacts(session: Session, department_id: int | None, role: str) -> list[dict[str, Any]]:
    query = select(DepartmentContact).where(DepartmentContact.role == role)
    if role != "leadership":
        query = query.where(DepartmentContact.department_id == department_id)
    rows = session.scalars(query.order_by(DepartmentContact.rank, DepartmentContact.id))
    return [{"role": c.role, "name": c.name, "phone": c.phone, "user_id": c.user_id} for c in rows]


# Escalation chain (派单落实责任人 → 经理 → 上级主管领导).
CHAIN = ("supervisor", "manager", "leadership")


def escalation_role(track_dispatch_to: str, level: int) -> str:
    start = CHAIN.index(track_dispatch_to)
    return CHAIN[min(start + level, len(CHAIN) - 1)]


def max_escalation_level(track_dispatch_to: str) -> int:
    return len(CHAIN) - 1 - CHAIN.index(track_dispatch_to)


# ---------------------------------------------------------------- categories and SLA


def categories(ctx: AppContext) -> list[dict[str, Any]]:
    d = ctx.config.dispatch
    out = []
    for code, cat in d.categories.items():
        dept = d.departments[cat.department]
        sla = d.sla[cat.sla]
        out.append(
            {
                "code": code,
                "name_zh": cat.name.zh,
                "name_en": cat.name.en,
                "area": cat.area,
                "department": cat.department,
                "department_name_zh": dept.name.zh,
                "department_name_en": dept.name.en,
                "external": dept.external,
                "sla": cat.sla,
                "sla_minutes": sla.minutes,
                "written_notice": sla.written_notice,
            }
        )
    return out


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
        )
    cls = classes[sla]
    if cls.agreed:
        if due_at is None:
            raise InvalidInput(
                "due_at: required with an agreed SLA / 与客户商定的时限须填写截止时间",
                details={"field": "due_at"},
            )
        if due_at.tzinfo is None:
            raise InvalidInput(
                "due_at: give a time zone (e.g. 2026-11-30T18:00:00+08:00)",
                details={"field": "due_at"},
            )
        if due_at <= now:
            raise InvalidInput(
                f"due_at: {due_at.isoformat()} is in the past / 截止时间已过",
                details={"field": "due_at", "now": now.isoformat()},
            )
        return sla, due_at.astimezone(UTC)
    if due_at is not None:
        raise InvalidInput(
            f"due_at: only with sla=agreed (SLA class {sla!r} has a fixed duration)",
            details={"field": "due_at"},
        )
    assert cls.minutes is not None
    return sla, now + timedelta(minutes=cls.minutes)


def written_notice(ctx: AppContext, sla: str) -> bool:
    cls = ctx.config.dispatch.sla.get(sla)
    return bool(cls and cls.written_notice)


# ---------------------------------------------------------------- creation


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
_NEXT_NUMBER: dict[str, Any] = {}  # dialect name -> the counter upsert


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


def _number_day(ctx: AppContext, now: datetime) -> str:
    """Numbers count per local day (Asia/Shanghai by default), not per UTC day."""
    return f"{now.astimezone(local_tz(ctx)):%Y%m%d}"


def _counter_upsert(dialect: str, floor: int | None = None) -> Any:
    """``INSERT … ON CONFLICT (day) DO UPDATE SET last = last + 1 RETURNING last``; with a
    ``floor``, the counter first rises to it (SQLite and PostgreSQL spell this alike)."""
    counter = TicketNumberCounter
    upsert = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(counter)
    bumped = counter.last + 1
    if floor is not None:
        bumped = case((counter.last < floor, floor), else_=counter.last) + 1
    return (
        upsert.values(day=bindparam("day"), last=bindparam("first"))
        .on_conflict_do_update(index_elements=[counter.day], set_={"last": bumped})
        .returning(counter.last)
    )


def _allocate_number(session: Session, day: str, *, resync: bool = False) -> str:
    """The day's next number: one upsert on the day's counter row, in the creating
    transaction. It is the transaction's first write, so SQLite's write lock (PostgreSQL: the
    row's lock) is held from here to the commit: concurrent creations queue on it, and a
    rolled-back creation gives its number back, so numbers stay dense.

    ``resync`` first lifts the counter to the highest number in use: the unique constraint on
    ``tickets.number`` (the final guard) found the counter behind."""
    dialect = _dialect(session)
    if resync:
        floor = _highest_number_in_use(session, f"GD{day}-")
        statement = _counter_upsert(dialect, floor)
        first = floor + 1
    else:
        statement = _NEXT_NUMBER.get(dialect)
        if statement is None:
            statement = _NEXT_NUMBER.setdefault(dialect, _counter_upsert(dialect))
        first = 1
    sequence = session.connection().execute(statement, {"day": day, "first": first}).scalar_one()
    return f"GD{day}-{sequence:04d}"


def _insert_ticket(session: Session, ticket: Ticket) -> None:
    """Write a new ticket's row as it stands, in one INSERT … RETURNING id (no ORM unit of
    work). The object then stands for that row, detached, as if loaded and its session
    closed: adding it to a session later updates the row rather than inserting it again."""
    values = {key: getattr(ticket, key) for key in _TICKET_COLUMNS}
    ticket.id = session.connection().execute(_INSERT_TICKET, values).scalar_one()
    for key, value in values.items():  # every column loaded, None ones included
        setattr(ticket, key, value)
    make_transient_to_detached(ticket)


def _highest_number_in_use(session: Session, prefix: str) -> int:
    last = session.scalar(
        select(Ticket.number)
        .where(Ticket.number.like(prefix + "%"))
        .order_by(func.length(Ticket.number).desc(), Ticket.number.desc())
        .limit(1)
    )
    return int(last.removeprefix(prefix)) if last else 0


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def create_ticket(
    ctx: AppContext, data: TicketCreate, *, actor: Principal | str, now: datetime | None = None
) -> Ticket:
    """Register a report; dispatch it at once to the category's department unless told not to.

    In SQL: the caller's identity (read before any write), the day's number (the first write,
    which takes SQLite's write lock), the ticket, its events — then the commit; the SLA timer
    goes to Redis after it."""
    now = now or utcnow()
    cfg = ctx.config.dispatch
    category = cfg.categories.get(data.category)
    if category is None:
        raise InvalidInput(
            f"category: unknown category {data.category!r} / 未知类别 "
            "(see GET /api/v1/ticket-categories)",
            details={"field": "category", "allowed": sorted(cfg.categories)},
        )
    sla, due_at = resolve_sla(ctx, category.sla, data.sla, data.due_at, now)
    channel = data.channel or ("phone" if data.call_id else "api")
    track = cfg.tracks[data.track]
    resync = False
    for _attempt in range(NUMBER_RETRIES):
        try:
            with changing(ctx, actor=actor_name(actor), now=now) as change:
                session = change.session
                # A screen-pop ticket is registered while the call is live: the call's record
                # may not be written yet (the calls consumer follows the event stream); the id
                # is kept as it is and the contact number finds the customer.
                identity = caller_identity(session, call_id=data.call_id, contact=data.contact)
                dept = _department_by_code(session, category.department)
                # Read (and cache) who gets it before the first write: fewer round trips
                # while SQLite's write lock is held.
                contacts_for(session, dept.id, track.dispatch_to)
                if track.notify_leadership:
                    contacts_for(session, None, "leadership")
                ticket = Ticket(
                    number=_allocate_number(session, _number_day(ctx, now), resync=resync),
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
                    _dispatch(change, ticket, dept, from_status=Status.registered)
                _insert_ticket(session, ticket)  # once, as registered and dispatched leave it
                change.schedule_sla(ticket)
        except IntegrityError as exc:
            message = str(exc.orig).lower()
            if "uq_tickets_number" in message or "tickets.number" in message:
                resync = True  # the number was taken outside the counter: catch up, retry
                continue
            raise
        return ticket
    raise Conflict("could not allocate a ticket number; try again / 工单号分配失败，请重试")


def _dispatch(
    change: Change,
    ticket: Ticket,
    dept: DeptRef,
    *,
    from_status: str,
    actor: str | None = None,
    reason: str | None = None,
) -> None:
    """Move to ``dispatched``: the department's supervisor (manager on the emergency track);
    an emergency also notifies senior leadership at the same moment (同时上报上级主管领导)."""
    track = change.ctx.config.dispatch.tracks[ticket.track]  # type: ignore[index]
    ticket.status = Status.dispatched
    ticket.department_id = dept.id
    ticket.updated_at = change.now
    recipients = contacts_for(change.session, dept.id, track.dispatch_to)
    change.event(
        ticket,
        "dispatched",
        from_status=from_status,
        to_status=Status.dispatched,
        data={
            "department": dept.code,
            "to_role": track.dispatch_to,
            "recipients": recipients,
            **({"reason": reason} if reason else {}),
        },
        actor=actor,
    )
    if track.notify_leadership:
        change.event(
            ticket,
            "leadership_notified",
            data={"recipients": contacts_for(change.session, None, "leadership")},
            actor=actor,
        )


# ---------------------------------------------------------------- transitions


def _load_ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} does not exist / 工单不存在", details={"id": ticket_id})
    return ticket


def current_callback(session: Session, ticket_id: int) -> SatisfactionCallback | None:
    return session.scalar(
        select(SatisfactionCallback)
        .where(SatisfactionCallback.ticket_id == ticket_id)
        .order_by(SatisfactionCallback.id.desc())
        .limit(1)
    )


def _callback_flags(session: Session, ticket: Ticket) -> tuple[bool, str | None]:
    """(callback required before archiving, last callback result) for the state machine."""
    if ticket.status not in (Status.returned_to_front_desk, Status.callback):
        return True, None  # only those two states depend on the callback
    cb = current_callback(session, ticket.id)
    if ticket.status == Status.returned_to_front_desk:
        return (cb is None or cb.status != "skipped"), (cb.result if cb else None)
    return True, (cb.result if cb else None)


def allowed_for(session: Session, ticket: Ticket) -> list[str]:
    required, result = _callback_flags(session, ticket)
    return [
        s.value
        for s in allowed_next(
            Status(ticket.status), ticket.track, callback_required=required, callback_result=result
        )
    ]


def _authorize(principal: Principal | str, ticket: Ticket, target: Status) -> None:
    if isinstance(principal, str):
        return  # the system itself (jobs)
    if principal.role is Role.qa:
        raise Forbidden("QA may read tickets but not change them / 质检只能查看工单")
    if principal.role is Role.department:
        if principal.department_id != ticket.department_id:
            raise Forbidden(
                "this ticket belongs to another department / 该工单不属于本部门",
                details={"ticket_department_id": ticket.department_id},
            )
        if target not in DEPARTMENT_STEPS:
            raise Forbidden(
                f"department staff may not move a ticket to {target} / 部门人员不能执行此步骤",
                details={"allowed": sorted(DEPARTMENT_STEPS)},
            )


def transition(
    ctx: AppContext,
    ticket_id: int,
    fields: dict[str, Any],
    *,
    actor: Principal | str,
    now: datetime | None = None,
) -> Ticket:
    """Apply one lifecycle step (``fields["to"]`` plus that step's fields) atomically."""
    with changing(ctx, actor=actor_name(actor), now=now or utcnow()) as change:
        return _step(change, ticket_id, fields, actor)


def transition_detail(
    ctx: AppContext,
    ticket_id: int,
    fields: dict[str, Any],
    *,
    actor: Principal | str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """:func:`transition`, answered with the ticket's detail as it commits. The detail is
    read in the step's own transaction once its rows are written: no second connection
    checkout and transaction (on PostgreSQL: three round trips fewer)."""
    with changing(ctx, actor=actor_name(actor), now=now or utcnow()) as change:
        ticket = _step(change, ticket_id, fields, actor)
        change.flush()
        return _detail(change.session, ctx, ticket)


def _step(change: Change, ticket_id: int, fields: dict[str, Any], actor: Principal | str) -> Ticket:
    target = parse_status(str(fields.get("to", "")))
    ticket = _load_ticket(change.session, ticket_id)
    _authorize(actor, ticket, target)
    apply_transition(change, ticket, target, fields)
    return ticket


_MOVES: dict[tuple[str, ...], Any] = {}  # the guarded UPDATE per set of columns


def _move(
    session: Session, ticket: Ticket, current: Status, target: Status, columns: dict[str, Any]
) -> None:
    """Guard against a concurrent step: only one writer moves the ticket out of ``current``.
    The step's other columns go in the same UPDATE, and the loaded ticket takes them as
    stored (so the ORM does not write them again)."""
    values = {"status": target.value, **columns}
    statement = _MOVES.get(tuple(values))
    if statement is None:
        statement = _MOVES.setdefault(
            tuple(values),
            update(_TICKETS)
            .where(_TICKETS.c.id == bindparam("ticket_id"))
            .where(_TICKETS.c.status == bindparam("from_status"))
            .values({key: bindparam(f"new_{key}") for key in values}),
        )
    params = {f"new_{key}": value for key, value in values.items()}
    moved = session.connection().execute(
        statement, {"ticket_id": ticket.id, "from_status": current.value, **params}
    )
    if moved.rowcount != 1:
        raise Conflict(
            "the ticket was changed meanwhile; reload it / 工单已被他人修改，请刷新",
            details={"from": current.value, "to": target.value},
        )
    for key, value in values.items():
        set_committed_value(ticket, key, value)


def apply_transition(
    change: Change,
    ticket: Ticket,
    target: Status,
    fields: dict[str, Any],
    *,
    actor: str | None = None,
) -> None:
    session, ctx, now = change.session, change.ctx, change.now
    actor = actor or change.actor
    current = Status(ticket.status)
    required, result = _callback_flags(session, ticket)
    check_transition(
        current, target, ticket.track, fields, callback_required=required, callback_result=result
    )
    note = fields.get("note")
    data: dict[str, Any] = {"note": note} if note else {}

    if target is Status.dispatched:
        code = fields.get("department")
        codes = department_codes(session)
        dept = (
            _department_by_code(session, str(code))
            if code
            else (
                DeptRef(ticket.department_id, codes[ticket.department_id])
                if ticket.department_id in codes
                else None
            )
        )
        if dept is None:
            raise InvalidInput(
                "department: required (the category has none)", details={"field": "department"}
            )
        reopened = current is Status.callback
        columns: dict[str, Any] = {"department_id": dept.id, "updated_at": now}
        if reopened:
            columns.update(_reopened(ctx, ticket, now))
        _move(session, ticket, current, target, columns)
        if reopened:
            change.schedule_sla(ticket)
        _dispatch(
            change,
            ticket,
            dept,
            from_status=current.value,
            actor=actor,
            reason="reopened after an unsatisfied callback / 回访不满意，继续整改"
            if reopened
            else note,
        )
        return

    columns = {"updated_at": now}
    if target is Status.assigned:
        columns["assignee"] = str(fields["assignee"]).strip()
    elif target is Status.resolved:
        columns["resolved_at"] = now
    elif target is Status.archived:
        columns["closed_at"] = now
    _move(session, ticket, current, target, columns)

    if target is Status.assigned:
        data["assignee"] = ticket.assignee
    elif target is Status.resolved:
        order = WorkOrder(
            ticket_id=ticket.id,
            done=str(fields["done"]),
            materials=str(fields["materials"]),
            minutes_spent=int(fields["minutes_spent"]),
            attachments=list(fields.get("attachments") or []),
            filled_by=actor,
            completed_at=now,
        )
        session.add(order)
        data.update(
            done=order.done,
            materials=order.materials,
            minutes_spent=order.minutes_spent,
            attachments=order.attachments,
        )
        if ticket.due_at and now > ticket.due_at:
            data["late_minutes"] = int((now - ticket.due_at).total_seconds() // 60)
            if _mark_overdue(change, ticket, actor=SYSTEM):
                # the flags' UPDATE carries the step's time, not the column's onupdate clock
                flag_modified(ticket, "updated_at")
    elif target is Status.returned_to_front_desk:
        cb = _plan_callback(session, ctx, ticket, now)
        data["callback"] = {
            "id": cb.id,
            "status": cb.status,
            "scheduled_for": cb.scheduled_for.isoformat(),
            "deadline": cb.deadline.isoformat(),
            "mode": cb.mode,
        }
        if cb.status == "scheduled":
            change.schedule_callback(cb)
    elif target is Status.callback:
        data.update(result=fields["result"], reason=fields.get("reason"), score=fields.get("score"))
        last = current_callback(session, ticket.id)
        if last is not None and last.status in {"scheduled", "in_progress"}:
            cb = last
            cb.status = "done" if fields["result"] != CallbackResult.unreachable else "unreachable"
            cb.result = str(fields["result"])
            cb.reason = fields.get("reason")
            cb.score = fields.get("score")
            cb.completed_at = now
            if not fields.get("_from_attempt"):
                cb.attempts += 1
                session.add(
                    CallbackAttempt(callback_id=cb.id, at=now, outcome="answered", note=note)
                )

    change.event(
        ticket,
        "transition",
        from_status=current.value,
        to_status=target.value,
        data=data,
        actor=actor,
    )
    if target is Status.returned_to_front_desk and data["callback"]["status"] == "unreachable":
        # No time outside rest hours within the window: the callback result is recorded as is.
        session.flush()
        apply_transition(
            change,
            ticket,
            Status.callback,
            {"to": "callback", "result": "unreachable", "_from_attempt": True},
            actor=SYSTEM,
        )
    if target is Status.callback and fields["result"] == CallbackResult.unsatisfied:
        # 如不满意继续整改: back to the department's supervisor at once.
        session.flush()
        apply_transition(change, ticket, Status.dispatched, {"to": "dispatched"}, actor=actor)


def _reopened(ctx: AppContext, ticket: Ticket, now: datetime) -> dict[str, Any]:
    """A fresh SLA window for the rework; the lateness already recorded stays recorded."""
    cls = ctx.config.dispatch.sla.get(ticket.sla_class)
    if cls is not None and cls.minutes is not None:
        window = timedelta(minutes=cls.minutes)
    elif ticket.due_at is not None:
        window = max(ticket.due_at - ticket.created_at, timedelta(minutes=30))
    else:
        window = timedelta(minutes=30)
    return {"due_at": now + window, "escalation_level": 0, "resolved_at": None, "assignee": None}


# ---------------------------------------------------------------- SLA: warn, escalate, overdue


def _mark_overdue(change: Change, ticket: Ticket, *, actor: str) -> bool:
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
    if _mark_overdue(change, ticket, actor=SYSTEM):
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


# ---------------------------------------------------------------- callbacks (回访)


def in_rest(moment: datetime, cfg: CallbacksFile, tz: ZoneInfo) -> datetime | None:
    """If ``moment`` falls in a rest period or rest weekday, the first moment after it."""
    local = moment.astimezone(tz)
    weekday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    if weekday in cfg.rest_weekdays:
        next_day = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return next_day.astimezone(UTC)
    t = local.time()
    for period in cfg.rest_periods:
        if period.start <= period.end:
            if period.start <= t < period.end:
                return local.replace(
                    hour=period.end.hour, minute=period.end.minute, second=0, microsecond=0
                ).astimezone(UTC)
        elif t >= period.start or t < period.end:  # overnight, e.g. 21:00-08:30
            day = local if t < period.end else local + timedelta(days=1)
            return day.replace(
                hour=period.end.hour, minute=period.end.minute, second=0, microsecond=0
            ).astimezone(UTC)
    return None


def next_allowed(moment: datetime, cfg: CallbacksFile, tz: ZoneInfo) -> datetime:
    """The first moment at or after ``moment`` outside every rest period and rest weekday."""
    for _ in range(64):
        later = in_rest(moment, cfg, tz)
        if later is None:
            return moment
        moment = later
    raise InvalidInput("callbacks.toml: rest periods and weekdays leave no time to call back")


def callback_selected(number: str, member: bool, cfg: CallbacksFile) -> bool:
    """Members at member_share (100% by default), others at other_share, decided by a hash of
    the ticket number so the choice is stable and auditable."""
    share = cfg.member_share if member else cfg.other_share
    digest = hashlib.sha256(number.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _plan_callback(
    session: Session, ctx: AppContext, ticket: Ticket, now: datetime
) -> SatisfactionCallback:
    """The callback window opens delay_after_sla_hours after the SLA completion standard
    (或返单时间 if later) and closes within_days after it opens; the first call is placed at
    the first moment of the window outside rest hours."""
    cfg = ctx.config.callbacks
    customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
    member = bool(customer and customer.member)
    standard = ticket.due_at or now
    opens = max(standard + timedelta(hours=cfg.delay_after_sla_hours), now)
    deadline = opens + timedelta(days=cfg.within_days)
    selected = callback_selected(ticket.number, member, cfg)
    cb = SatisfactionCallback(
        ticket_id=ticket.id,
        customer_id=ticket.customer_id,
        number=normalize(ticket.contact) or ticket.contact,
        mode=cfg.mode,
        deadline=deadline,
        created_at=now,
        attempts=0,
    )
    if not selected:
        cb.status, cb.scheduled_for = "skipped", opens
        cb.reason = "not sampled (non-member share) / 非会员抽样未选中"
    else:
        first = next_allowed(opens, cfg, local_tz(ctx))
        cb.scheduled_for = first
        if first > deadline:
            cb.status = "unreachable"
            cb.result = CallbackResult.unreachable
            cb.reason = "no time outside rest hours within the window / 回访期限内无可用时段"
            cb.completed_at = now
        else:
            cb.status = "scheduled"
    session.add(cb)
    session.flush()
    return cb


def record_attempt(
    ctx: AppContext,
    callback_id: int,
    *,
    outcome: str,
    result: str | None = None,
    score: int | None = None,
    reason: str | None = None,
    call_id: str | None = None,
    note: str | None = None,
    actor: Principal | str,
    now: datetime | None = None,
) -> SatisfactionCallback:
    """Record how a callback attempt went; answered → the ticket gets its callback result,
    unanswered → retried within the window, or unreachable once attempts or time run out."""
    now = now or utcnow()
    name = actor_name(actor)
    with changing(ctx, actor=name, now=now) as change:
        session = change.session
        cb = session.get(SatisfactionCallback, callback_id)
        if cb is None:
            raise NotFound(f"callback {callback_id} does not exist / 回访不存在")
        if cb.status not in {"scheduled", "in_progress"}:
            raise Conflict(
                f"callback {callback_id} is {cb.status}; nothing to record / 该回访已结束",
                details={"status": cb.status},
            )
        ticket = _load_ticket(session, cb.ticket_id)
        if isinstance(actor, Principal):
            _authorize(actor, ticket, Status.callback)
        if outcome == "answered":
            if result is None and score is not None:
                result = "satisfied" if score >= 4 else "unsatisfied"
                reason = reason or f"survey score {score} / 满意度评分 {score}"
            if result is None:
                raise InvalidInput(
                    "result: required when answered (satisfied or unsatisfied) / 请填写回访结果",
                    details={"field": "result"},
                )
            if result == "unsatisfied" and not (reason and reason.strip()):
                raise InvalidInput(
                    "reason: required when the customer is unsatisfied / 不满意须填写原因",
                    details={"field": "reason"},
                )
        attempt = session.scalar(
            select(CallbackAttempt)
            .where(CallbackAttempt.callback_id == cb.id, CallbackAttempt.outcome == "placed")
            .order_by(CallbackAttempt.id.desc())
            .limit(1)
        )
        if attempt is None:
            cb.attempts += 1
            attempt = CallbackAttempt(callback_id=cb.id, at=now, outcome=outcome)
            session.add(attempt)
        attempt.outcome = outcome
        attempt.call_id = call_id or attempt.call_id
        attempt.note = note
        if outcome == "answered":
            assert result is not None
            if ticket.status != Status.returned_to_front_desk:
                raise Conflict(
                    f"ticket {ticket.number} is {ticket.status}, not awaiting a callback",
                    details={"status": ticket.status},
                )
            apply_transition(
                change,
                ticket,
                Status.callback,
                {
                    "to": "callback",
                    "result": result,
                    "reason": reason,
                    "score": score,
                    "_from_attempt": True,
                    "note": note,
                },
            )
        else:
            retry_or_give_up(change, cb, ticket)
    return cb


def retry_or_give_up(change: Change, cb: SatisfactionCallback, ticket: Ticket) -> None:
    """An unanswered attempt: try again later inside the window, else record unreachable."""
    ctx, now = change.ctx, change.now
    cfg = ctx.config.callbacks
    retry_at = next_allowed(now + timedelta(minutes=cfg.retry_after_minutes), cfg, local_tz(ctx))
    if cb.attempts < cfg.max_attempts and retry_at <= cb.deadline:
        cb.status = "scheduled"
        cb.scheduled_for = retry_at
        change.schedule_callback(cb)
        change.event(
            ticket,
            "callback_retry",
            data={"callback_id": cb.id, "attempts": cb.attempts, "retry_at": retry_at.isoformat()},
        )
        return
    why = (
        "attempts used up / 已达最大次数"
        if cb.attempts >= cfg.max_attempts
        else "window closed / 超过回访期限"
    )
    cb.status = "unreachable"
    cb.completed_at = now
    if ticket.status == Status.returned_to_front_desk:
        apply_transition(
            change,
            ticket,
            Status.callback,
            {"to": "callback", "result": "unreachable", "reason": why, "_from_attempt": True},
        )
    cb.result = CallbackResult.unreachable
    cb.reason = why


# ---------------------------------------------------------------- reading


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
        "history": [
            {"id": a.id, "at": a.at, "outcome": a.outcome, "call_id": a.call_id, "note": a.note}
            for a in attempts
        ],
    }


def ticket_summary(ctx: AppContext, ticket: int | Ticket) -> dict[str, Any]:
    """The ticket as ``TicketPublic``; pass the ticket just written to skip reading it again."""
    with ctx.sessions() as session:
        if not isinstance(ticket, Ticket):
            ticket = _load_ticket(session, ticket)
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
            ticket = _load_ticket(session, ticket)
        if (
            viewer is not None
            and viewer.role is Role.department
            and viewer.department_id != ticket.department_id
        ):
            raise Forbidden("this ticket belongs to another department / 该工单不属于本部门")
        return _detail(session, ctx, ticket)


def _detail(session: Session, ctx: AppContext, ticket: Ticket) -> dict[str, Any]:
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


def resolve_department(session: Session, ref: str) -> Department:
    """A department by numeric id or by code."""
    row_id = row_id_in(ref)
    dept = (
        session.get(Department, row_id)
        if row_id is not None
        else session.scalar(select(Department).where(Department.code == ref))
    )
    if dept is None:
        raise NotFound(
            f"department {ref!r} does not exist / 部门不存在", details={"department": ref}
        )
    return dept


# ---------------------------------------------------------------- reports


def overdue_report(
    ctx: AppContext, *, since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """Work not finished in the required time (没有按规定时间完成的工作记录并上报)."""
    with ctx.sessions() as session:
        codes = department_codes(session)
        query = select(Ticket).where(Ticket.overdue.is_(True))
        if since:
            query = query.where(Ticket.overdue_at >= since)
        if until:
            query = query.where(Ticket.overdue_at < until)
        items = []
        by_department: dict[str, int] = {}
        for t in session.scalars(query.order_by(Ticket.overdue_at)):
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
                    "late_minutes": int(((end or utcnow()) - t.due_at).total_seconds() // 60)
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


def list_callbacks(
    ctx: AppContext, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    with ctx.sessions() as session:
        query = select(SatisfactionCallback)
        if status:
            query = query.where(SatisfactionCallback.status == status)
        rows = list(
            session.scalars(query.order_by(SatisfactionCallback.scheduled_for).limit(limit))
        )
        return [callback_dict(cb, []) for cb in rows]


def due_callbacks(
    session: Session, now: datetime, stale_after: timedelta
) -> tuple[list[int], list[int]]:
    """(scheduled callbacks whose time has come, in-progress ones nobody reported on)."""
    due = list(
        session.scalars(
            select(SatisfactionCallback.id).where(
                SatisfactionCallback.status == "scheduled",
                SatisfactionCallback.scheduled_for <= now,
            )
        )
    )
    stale = list(
        session.scalars(
            select(SatisfactionCallback.id)
            .join(CallbackAttempt, CallbackAttempt.callback_id == SatisfactionCallback.id)
            .where(
                and_(
                    SatisfactionCallback.status == "in_progress",
                    CallbackAttempt.outcome == "placed",
                    CallbackAttempt.at <= now - stale_after,
                )
            )
        )
    )
    return due, stale
