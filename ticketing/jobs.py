"""RQ jobs for tickets: SLA timers, callbacks (回访) and webhook deliveries.

Every job takes ids (and an optional ``now`` so tests can drive the clock), reads the truth
from SQL and is safe to run twice: a timer that fires early, late or twice only does what is
due and not yet recorded. Timers are RQ scheduled jobs (``enqueue_at``, run by a worker
started ``with_scheduler=True``) with stable job ids, so rescheduling replaces them. A
periodic :func:`scan` (re-enqueued by itself every ``SCAN_INTERVAL``) is the safety net: it
finds in SQL whatever a lost timer or a killed worker left behind.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.db import utcnow
from callcenter.runtime import get_context
from callcenter.streams import CallEvent, Command, CommandType, EventType
from ticketing import consumers, sla
from ticketing.attempts import record_attempt, retry_or_give_up
from ticketing.callbacks import due_callbacks, next_allowed
from ticketing.change import SYSTEM, Change, apply_effects, changing, local_tz
from ticketing.models import CallbackAttempt, SatisfactionCallback, Ticket, WebhookDelivery
from ticketing.scheduling import (
    SCAN_INTERVAL,
    enqueue_scan,
    schedule_sla_timers,
    schedule_webhook,
)
from ticketing.state import OPEN_STATUSES, CallbackResult

log = logging.getLogger(__name__)

ORIGINATE_STREAM_MAXLEN = 100_000
SIGNATURE_HEADER = "X-Callcenter-Signature"


def _now(now: datetime | str | None) -> datetime:
    if now is None:
        return utcnow()
    if isinstance(now, str):
        now = datetime.fromisoformat(now)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


# ---------------------------------------------------------------- SLA


def check_sla(ticket_id: int, now: datetime | str | None = None) -> list[str]:
    """Warn / mark overdue / escalate one ticket as its deadline requires (idempotent)."""
    ctx = get_context()
    moment = _now(now)
    lock = ctx.redis.lock(ctx.keys.tickets(f"lock:{ticket_id}"), timeout=60, blocking_timeout=30)
    with lock, changing(ctx, actor=SYSTEM, now=moment) as change:
        ticket = change.session.get(Ticket, ticket_id)
        if ticket is None:
            return []
        done = sla.check_sla(change, ticket)
        still_open = ticket.status in OPEN_STATUSES and ticket.due_at is not None
        due_at, track = ticket.due_at, ticket.track
    if still_open and due_at is not None:
        schedule_sla_timers(ctx, ticket_id, due_at, track, after=moment)
    return done


def scan_sla(now: datetime | str | None = None) -> dict[str, int]:
    """Check every open ticket whose warning time has come, in one pass."""
    ctx = get_context()
    moment = _now(now)
    counts = {"checked": 0, "warned": 0, "overdue": 0, "escalated": 0}
    with changing(ctx, actor=SYSTEM, now=moment) as change:
        for ticket in sla.sla_candidates(change.session, ctx, moment):
            counts["checked"] += 1
            for what in sla.check_sla(change, ticket):
                counts[what.split(":")[0]] += 1
    return counts


def scan(now: datetime | str | None = None, reschedule: bool = True) -> dict[str, Any]:
    """The safety net: SLA checks, due or stale callbacks, pending webhooks; then again later."""
    ctx = get_context()
    moment = _now(now)
    report: dict[str, Any] = {"sla": scan_sla(moment)}
    report["callback_events"] = consumers.consume(ctx, now=None if now is None else moment)
    cfg = ctx.config.callbacks
    with ctx.sessions() as session:
        due, stale = due_callbacks(session, moment, timedelta(minutes=cfg.retry_after_minutes))
        pending = [
            (row.id, row.attempts)
            for row in session.execute(
                select(WebhookDelivery.id, WebhookDelivery.attempts).where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= moment - timedelta(seconds=30),
                )
            )
        ]
    # One bad row must not stop the rest: each item is tried on its own and logged.
    for callback_id in stale:
        try:
            record_attempt(
                ctx,
                callback_id,
                outcome="no_answer",
                note="no result reported / 未回报结果",
                actor=SYSTEM,
                now=moment,
            )
        except Exception:
            log.exception("scan: could not time out callback %s", callback_id)
    for callback_id in due:
        try:
            place_callback(callback_id, now=moment)
        except Exception:
            log.exception("scan: could not place callback %s", callback_id)
    for delivery_id, attempts in pending:
        schedule_webhook(ctx, delivery_id, attempts + 1)
    report.update(
        callbacks_placed=len(due), callbacks_stale=len(stale), webhooks_requeued=len(pending)
    )
    if reschedule:
        ctx.redis.set(
            ctx.keys.tickets("scan-chain"), "1", ex=int(SCAN_INTERVAL.total_seconds() * 3)
        )
        enqueue_scan(ctx)
    return report


# ---------------------------------------------------------------- callbacks (回访)

SURVEY = {
    "kind": "satisfaction_1_5",
    "digits": "12345",
    "prompt_zh": "您好，这里是物业客服中心，对您报修的处理情况进行回访。"
    "非常满意请按5，满意请按4，一般请按3，不满意请按2，非常不满意请按1。",
    "prompt_en": "Hello, this is the property service center calling about your recent "
    "request. Press 5 if very satisfied, 4 satisfied, 3 neutral, 2 unsatisfied, "
    "1 very unsatisfied.",
    "variable": "satisfaction",
}


def publish_callback_call(ctx: AppContext, call_id: str, data: dict[str, Any]) -> None:
    """Hand a callback call to whoever places it.

    Agent mode: routing owns agent choice, so the callback joins the callback queue as a
    ``callback_requested`` event (published by "ticketing"); when an agent of that queue is
    free, routing asks the engine for an agent-first call. Survey mode needs no agent: an
    ``originate`` command goes straight to the engine nodes' shared command stream.
    """
    if data.get("agent_first"):
        event = CallEvent(
            type=EventType.callback_requested, call_id=call_id, node="ticketing", data=data
        )
        ctx.redis.xadd(ctx.keys.events, event.to_fields())  # type: ignore[arg-type]
        return
    command = Command(type=CommandType.originate, call_id=call_id, id=call_id, data=data)
    ctx.redis.xadd(
        ctx.keys.engine_commands,
        command.to_fields(),  # type: ignore[arg-type]
        maxlen=ORIGINATE_STREAM_MAXLEN,
        approximate=True,
    )


def place_callback(callback_id: int, now: datetime | str | None = None) -> str:
    """Ask the engine for an agent-first call (or an automatic survey) to the customer.

    The request is published (see ``publish_callback_call``) with a stable id
    (``callback-<id>-<attempt>``) *before* the attempt is committed: a worker killed in
    between re-publishes the same id on the next run, which routing and the engine ignore
    as duplicates.
    """
    ctx = get_context()
    moment = _now(now)
    cfg = ctx.config.callbacks
    with ctx.sessions() as session, session.begin():
        change = Change(session, ctx, SYSTEM, moment)
        cb = session.get(SatisfactionCallback, callback_id)
        if cb is None or cb.status != "scheduled":
            return "nothing to do"
        if cb.scheduled_for > moment:
            return "not yet"
        if cb.assigned_agent_id is not None and moment <= cb.deadline:
            return "assigned"  # the agent places it from the desktop (ticketing/assignment.py)
        ticket = session.get(Ticket, cb.ticket_id)
        assert ticket is not None
        refusal = ctx.config.telephony.dial_plan.plan().refusal(cb.number)
        if refusal:
            # Never dialled: the number is outside telephony.toml's dial plan.
            cb.status = "unreachable"
            cb.result = CallbackResult.unreachable
            cb.reason = refusal
            cb.completed_at = moment
            change.flush()
            return "refused"
        if moment > cb.deadline:
            retry_or_give_up(change, cb, ticket)
            rescheduled = True
        else:
            rescheduled = False
            allowed = next_allowed(moment, cfg, local_tz(ctx))
            if allowed > moment:  # fired inside a rest period: move to its end
                cb.scheduled_for = allowed
                if allowed > cb.deadline:
                    retry_or_give_up(change, cb, ticket)
                else:
                    change.schedule_callback(cb)
                rescheduled = True
            else:
                attempt_no = cb.attempts + 1
                command_id = f"callback-{cb.id}-{attempt_no}"
                data: dict[str, Any] = {
                    "number": cb.number,
                    "purpose": "callback",
                    "mode": cb.mode,
                    "queue": cfg.queue,
                    "agent_first": cb.mode == "agent",
                    "ticket_id": ticket.id,
                    "ticket_number": ticket.number,
                    "callback_id": cb.id,
                    "attempt": attempt_no,
                    "result_url": f"/api/v1/callbacks/{cb.id}/attempts",
                }
                if cb.mode == "survey":
                    data["survey"] = SURVEY
                consumers.ensure_group(ctx)  # so the call's events are kept for us
                publish_callback_call(ctx, command_id, data)
                cb.attempts = attempt_no
                cb.status = "in_progress"
                session.add(
                    CallbackAttempt(
                        callback_id=cb.id, at=moment, outcome="placed", call_id=command_id
                    )
                )
        change.flush()
    if rescheduled:
        apply_effects(ctx, change.effects)
        return "rescheduled"
    return "placed"


# ---------------------------------------------------------------- webhooks


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver_webhook(delivery_id: int, now: datetime | str | None = None) -> str:
    """POST one delivery, signed; on failure retry with exponential backoff (logged in SQL)."""
    ctx = get_context()
    cfg = ctx.config.webhooks
    # The lock outlives one attempt (HTTP timeout plus SQL); a worker killed while holding it
    # only delays the next attempt until it expires.
    hold = cfg.timeout_seconds * 2 + 2
    lock = ctx.redis.lock(ctx.keys.tickets(f"webhook-lock:{delivery_id}"), timeout=hold)
    if not lock.acquire(blocking=False):
        # Another worker is on it, or one died holding the lock: look again once it expires.
        later = utcnow() + timedelta(seconds=hold)
        schedule_webhook(ctx, delivery_id, f"busy-{int(later.timestamp() * 1000)}", at=later)
        return "busy"
    try:
        with ctx.sessions() as session, session.begin():
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.status != "pending":
                return "nothing to do"
            target = next((t for t in cfg.targets.values() if t.url == delivery.url), None)
            delivery.attempts += 1
            if target is None:
                delivery.status = "failed"
                delivery.last_error = "target no longer configured in webhooks.toml"
                return "failed"
            body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
            request = urllib.request.Request(
                delivery.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": "callcenter-webhooks/1",
                    "X-Callcenter-Event": delivery.event,
                    "X-Callcenter-Delivery": str(delivery.id),
                    "X-Callcenter-Attempt": str(delivery.attempts),
                    "X-Callcenter-Timestamp": str(int(_now(now).timestamp())),
                    SIGNATURE_HEADER: sign(target.secret, body),
                    "Idempotency-Key": f"delivery-{delivery.id}",
                },
            )
            status: int | None = None
            error: str | None = None
            try:
                with urllib.request.urlopen(request, timeout=cfg.timeout_seconds) as response:
                    status = response.status
            except urllib.error.HTTPError as exc:
                status, error = exc.code, f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            delivery.last_status_code = status
            moment = _now(now) if now is not None else utcnow()
            if status is not None and 200 <= status < 300:
                delivery.status = "delivered"
                delivery.delivered_at = moment
                delivery.last_error = None
                delivery.next_attempt_at = None
                return "delivered"
            delivery.last_error = error or f"HTTP {status}"
            if delivery.attempts >= cfg.max_attempts:
                delivery.status = "failed"
                delivery.next_attempt_at = None
                return "failed"
            wait = min(cfg.backoff_seconds * 2 ** (delivery.attempts - 1), cfg.max_backoff_seconds)
            delivery.next_attempt_at = moment + timedelta(seconds=wait)
            retry_at, attempts = delivery.next_attempt_at, delivery.attempts
    finally:
        lock.release()
    schedule_webhook(ctx, delivery_id, attempts + 1, at=retry_at)
    return "retry"


def open_ticket_ids(ctx: AppContext) -> list[int]:
    with ctx.sessions() as session:
        return list(
            session.scalars(
                select(Ticket.id).where(Ticket.status.in_([s.value for s in OPEN_STATUSES]))
            )
        )
