"""Handing ticket work to RQ: SLA timers, callback attempts, webhook deliveries, the scan chain.

Jobs are enqueued by their dotted name (``ticketing.jobs.check_sla``), which is exactly what RQ
stores for a function object too: the jobs module imports the domain modules, and nothing
here imports it back. Job ids are stable (``{prefix}-tickets-<kind>-...``), so rescheduling
replaces a timer rather than adding one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rq import get_current_job

from callcenter.context import AppContext
from callcenter.db import utcnow
from callcenter.queues import queue
from callcenter.service_keys import Service

SCAN_INTERVAL = timedelta(seconds=60)
FAILURE_TTL = 7 * 86400

# The job functions, by the dotted name RQ stores and the worker imports.
CHECK_SLA = "ticketing.jobs.check_sla"
PLACE_CALLBACK = "ticketing.jobs.place_callback"
DELIVER_WEBHOOK = "ticketing.jobs.deliver_webhook"
SCAN = "ticketing.jobs.scan"
JOB_FUNCTIONS = (CHECK_SLA, PLACE_CALLBACK, DELIVER_WEBHOOK, SCAN)


@dataclass
class Effects:
    """Work to hand to RQ once the transaction has committed."""

    deliveries: list[int] = field(default_factory=list)  # webhook delivery ids to send
    # (ticket id, deadline, track) whose SLA timers to (re)schedule
    sla: list[tuple[int, datetime, str]] = field(default_factory=list)
    # (callback id, when) to (re)schedule
    callbacks: list[tuple[int, datetime]] = field(default_factory=list)


def job_id(ctx: AppContext, *parts: object) -> str:
    return "-".join([ctx.keys.prefix, "tickets", *(str(p) for p in parts)])


def sla_moments(ctx: AppContext, due_at: datetime, track: str) -> list[tuple[str, datetime]]:
    """When a deadline needs looking at: the warning, the deadline, the escalation above."""
    cfg = ctx.config.dispatch.tracks[track]  # type: ignore[index]
    return [
        ("warn", due_at - timedelta(minutes=cfg.warn_before_minutes)),
        ("due", due_at),
        ("above", due_at + timedelta(minutes=cfg.escalate_above_after_minutes)),
    ]


def sla_job_id(ctx: AppContext, ticket_id: int, name: str, due_at: datetime) -> str:
    return job_id(ctx, "sla", ticket_id, name, int(due_at.timestamp()))


def callback_job_id(ctx: AppContext, callback_id: int, at: datetime) -> str:
    """One job id per planned moment: a job must never reschedule its own id (RQ deletes a
    finished job's hash, which would orphan the new schedule)."""
    return job_id(ctx, "callback", callback_id, int(at.timestamp()))


def schedule_sla_timers(
    ctx: AppContext,
    ticket_id: int,
    due_at: datetime,
    track: str,
    pipeline: Any = None,
    after: datetime | None = None,
) -> str | None:
    """Schedule the next SLA timer of this deadline (the first moment after ``after``); each
    timer, when it fires, schedules the one after it. One RQ job per open ticket at a time;
    pass ``pipeline`` to batch several tickets in one Redis round trip."""
    for name, at in sla_moments(ctx, due_at, track):
        if after is not None and at <= after:
            continue
        timer_id = sla_job_id(ctx, ticket_id, name, due_at)
        current = get_current_job()
        if current is not None and current.id == timer_id:
            return None  # never reschedule the running job's own id
        high = queue(ctx, "high")
        pipe = pipeline if pipeline is not None else high.connection.pipeline()
        high.enqueue_at(
            at,
            CHECK_SLA,
            ticket_id,
            job_id=timer_id,
            result_ttl=0,
            failure_ttl=FAILURE_TTL,
            pipeline=pipe,
        )
        if pipeline is None:
            pipe.execute()
        return timer_id
    return None


def schedule_effects(ctx: AppContext, effects: Effects) -> None:
    """Everything one change hands to RQ, in one Redis round trip (one MULTI/EXEC)."""
    high, default = queue(ctx, "high"), queue(ctx, "default")
    if effects.sla or effects.callbacks or effects.deliveries:
        pipe = high.connection.pipeline()
        pipe.multi()  # before any command: RQ's enqueue would start it and refuse a busy pipe
        for ticket_id, due_at, track in effects.sla:
            schedule_sla_timers(ctx, ticket_id, due_at, track, pipeline=pipe)
        for callback_id, at in effects.callbacks:
            high.enqueue_at(
                at,
                PLACE_CALLBACK,
                callback_id,
                job_id=callback_job_id(ctx, callback_id, at),
                result_ttl=0,
                failure_ttl=FAILURE_TTL,
                pipeline=pipe,
            )
        for delivery_id in effects.deliveries:
            default.enqueue(
                DELIVER_WEBHOOK,
                delivery_id,
                job_id=job_id(ctx, "webhook", delivery_id, 1),
                result_ttl=0,
                failure_ttl=FAILURE_TTL,
                pipeline=pipe,
            )
        pipe.execute()
    ensure_scan(ctx)


def schedule_webhook(
    ctx: AppContext, delivery_id: int, attempt: object, at: datetime | None = None
) -> None:
    """(Re)send one delivery, now or at ``at``; ``attempt`` names the job (stable per try)."""
    default = queue(ctx, "default")
    if at is None:
        default.enqueue(
            DELIVER_WEBHOOK, delivery_id, job_id=job_id(ctx, "webhook", delivery_id, attempt)
        )
        return
    default.enqueue_at(
        at,
        DELIVER_WEBHOOK,
        delivery_id,
        job_id=job_id(ctx, "webhook", delivery_id, attempt),
        result_ttl=0,
        failure_ttl=FAILURE_TTL,
    )


SCAN_CHECKED: Service[float] = Service("ticket scan chain last checked (monotonic)")


def ensure_scan(ctx: AppContext) -> None:
    """Start the periodic scan chain unless one is alive (a key with a TTL marks it).
    Asked at most once per SCAN_INTERVAL per process."""
    checked = ctx.services.get(SCAN_CHECKED)
    if checked is not None and time.monotonic() - checked < SCAN_INTERVAL.total_seconds():
        return
    ctx.services.set(SCAN_CHECKED, time.monotonic())
    if ctx.redis.set(
        ctx.keys.tickets("scan-chain"), "1", nx=True, ex=int(SCAN_INTERVAL.total_seconds() * 3)
    ):
        enqueue_scan(ctx)


def enqueue_scan(ctx: AppContext) -> None:
    """The next link of the scan chain, one SCAN_INTERVAL from now."""
    at = utcnow() + SCAN_INTERVAL
    queue(ctx, "low").enqueue_at(
        at, SCAN, job_id=job_id(ctx, "scan", int(at.timestamp())), result_ttl=0, failure_ttl=86400
    )
