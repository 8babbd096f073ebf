"""Callback attempts (回访): how each call went, and the ticket's ``callback`` step it leads to
(answered), a retry inside the window, or ``unreachable`` once attempts or time run out."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from callcenter.auth import Principal
from callcenter.context import AppContext
from callcenter.db import utcnow
from callcenter.errors import Conflict, InvalidInput, NotFound
from ticketing.assignment import check_may_record
from ticketing.callbacks import next_allowed
from ticketing.change import Change, actor_name, changing, local_tz
from ticketing.errors import (
    CALLBACK_BAD_RESULT,
    CALLBACK_CLOSED,
    CALLBACK_NOT_FOUND,
    TICKET_ILLEGAL_TRANSITION,
)
from ticketing.models import CallbackAttempt, SatisfactionCallback, Ticket
from ticketing.queries import load_ticket
from ticketing.state import CallbackResult, Status
from ticketing.transitions import apply_transition, authorize


def _answer(result: str | None, score: int | None, reason: str | None) -> tuple[str, str | None]:
    """An answered call's result and reason: a survey score alone decides (4-5 satisfied),
    and an unsatisfied customer's reason is required."""
    if result is None and score is not None:
        result = "satisfied" if score >= 4 else "unsatisfied"
        reason = reason or f"survey score {score} / 满意度评分 {score}"
    if result is None:
        raise InvalidInput(
            "result: required when answered (satisfied or unsatisfied) / 请填写回访结果",
            details={"field": "result"},
            error_id=CALLBACK_BAD_RESULT,
        )
    if result == "unsatisfied" and not (reason and reason.strip()):
        raise InvalidInput(
            "reason: required when the customer is unsatisfied / 不满意须填写原因",
            details={"field": "reason"},
            error_id=CALLBACK_BAD_RESULT,
        )
    return result, reason


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
            raise NotFound(
                f"callback {callback_id} does not exist / 回访不存在", error_id=CALLBACK_NOT_FOUND
            )
        if cb.status not in {"scheduled", "in_progress"}:
            raise Conflict(
                f"callback {callback_id} is {cb.status}; nothing to record / 该回访已结束",
                details={"status": cb.status},
                error_id=CALLBACK_CLOSED,
            )
        ticket = load_ticket(session, cb.ticket_id)
        if isinstance(actor, Principal):
            authorize(actor, ticket, Status.callback)
        check_may_record(actor, cb)
        if outcome == "answered":
            result, reason = _answer(result, score, reason)
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
                    error_id=TICKET_ILLEGAL_TRANSITION,
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
