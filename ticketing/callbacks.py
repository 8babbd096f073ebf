"""Satisfaction callbacks (回访): the window, rest hours, who is sampled, and the callback facts
the state machine needs."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from callcenter.context import AppContext
from callcenter.errors import InvalidInput
from config.schemas import CallbacksFile
from cti.models import Customer
from cti.numbers import normalize
from ticketing.change import local_tz
from ticketing.errors import CALLBACK_NO_CALLING_TIME
from ticketing.models import CallbackAttempt, SatisfactionCallback, Ticket
from ticketing.state import CallbackResult, Status


def current_callback(session: Session, ticket_id: int) -> SatisfactionCallback | None:
    return session.scalar(
        select(SatisfactionCallback)
        .where(SatisfactionCallback.ticket_id == ticket_id)
        .order_by(SatisfactionCallback.id.desc())
        .limit(1)
    )


def callback_flags(session: Session, ticket: Ticket) -> tuple[bool, str | None]:
    """(callback required before archiving, last callback result) for the state machine."""
    if ticket.status not in (Status.returned_to_front_desk, Status.callback):
        return True, None  # only those two states depend on the callback
    cb = current_callback(session, ticket.id)
    if ticket.status == Status.returned_to_front_desk:
        return (cb is None or cb.status != "skipped"), (cb.result if cb else None)
    return True, (cb.result if cb else None)


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
    raise InvalidInput(
        "callbacks.toml: rest periods and weekdays leave no time to call back",
        error_id=CALLBACK_NO_CALLING_TIME,
    )


def callback_selected(number: str, member: bool, cfg: CallbacksFile) -> bool:
    """Members at member_share (100% by default), others at other_share, decided by a hash of
    the ticket number so the choice is stable and auditable."""
    share = cfg.member_share if member else cfg.other_share
    digest = hashlib.sha256(number.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def plan_callback(
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


def due_callbacks(
    session: Session, now: datetime, stale_after: timedelta
) -> tuple[list[int], list[int]]:
    """(scheduled callbacks whose time has come, in-progress ones nobody reported on).

    A callback assigned to an agent is theirs to place from the desktop: it is due here only
    once its deadline has passed (then closed like any other: retried or unreachable)."""
    due = list(
        session.scalars(
            select(SatisfactionCallback.id).where(
                SatisfactionCallback.status == "scheduled",
                SatisfactionCallback.scheduled_for <= now,
                or_(
                    SatisfactionCallback.assigned_agent_id.is_(None),
                    SatisfactionCallback.deadline < now,
                ),
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
