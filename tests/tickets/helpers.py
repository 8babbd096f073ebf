"""Helpers shared by the ticket tests: a payload, an in-process RQ worker, counting rows."""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker
from sqlalchemy import func, select

from callcenter.context import AppContext
from callcenter.queues import queues
from callcenter.streams import CallEvent, Command, EventType
from ticketing.models import (
    CallbackAttempt,
    SatisfactionCallback,
    Ticket,
    TicketEvent,
    WebhookDelivery,
    WorkOrder,
)


def payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "category": "public_water",
        "description": "楼道水管漏水",
        "track": "general",
        "reporter": "张伟",
        "unit": "3-2-1201",
        "what": "3号楼2单元12层楼道水管漏水",
        "when": "今天上午9点",
        "contact": "13800138000",
        "complaint_kind": "help_seeking",
    }
    body.update(overrides)
    return body


class _BurstWorker(SimpleWorker):
    """RQ's worker without its pub/sub command listener (remote "kill horse" / "shutdown"
    commands, which tests never send). Its thread polls with ``sleep_time=60``, and a burst
    worker's teardown joins it: a burst run then took up to a minute instead of milliseconds,
    and tests that poll the worker against a deadline failed."""

    def subscribe(self) -> None:
        pass

    def unsubscribe(self) -> None:
        pass


def run_worker(ctx: AppContext) -> None:
    """Run every job that is due now, in this process (RQ's own scheduler moves due jobs)."""
    qs = queues(ctx)
    worker = _BurstWorker(qs, connection=qs[0].connection)
    worker.work(burst=True, with_scheduler=True, logging_level="WARNING")


def survey_commands(ctx: AppContext) -> list[Command]:
    """Originate commands (survey mode) on the engine nodes' shared command stream."""
    entries: Any = ctx.redis.xrange(ctx.keys.engine_commands)
    return [Command.from_fields(fields) for _id, fields in entries]


def callback_requests(ctx: AppContext) -> list[CallEvent]:
    """Agent-first callbacks handed to routing as ``callback_requested`` events."""
    entries: Any = ctx.redis.xrange(ctx.keys.events)
    events = [CallEvent.from_fields(fields) for _id, fields in entries]
    return [e for e in events if e.type == EventType.callback_requested and e.node == "ticketing"]


def placed_calls(ctx: AppContext) -> list[tuple[str, dict[str, Any]]]:
    """Every callback call asked for, whichever way: (call id, data)."""
    return [(c.call_id, c.data) for c in survey_commands(ctx)] + [
        (e.call_id, e.data) for e in callback_requests(ctx)
    ]


def counts(ctx: AppContext) -> dict[str, int]:
    tables = {
        "tickets": Ticket,
        "events": TicketEvent,
        "work_orders": WorkOrder,
        "callbacks": SatisfactionCallback,
        "attempts": CallbackAttempt,
        "deliveries": WebhookDelivery,
    }
    with ctx.sessions() as session:
        return {
            name: session.scalar(select(func.count()).select_from(model)) or 0
            for name, model in tables.items()
        }


def snapshot(ctx: AppContext) -> list[tuple[Any, ...]]:
    """Every ticket's mutable columns, to show a refused request changed nothing."""
    with ctx.sessions() as session:
        return [
            tuple(row)
            for row in session.execute(
                select(
                    Ticket.id,
                    Ticket.status,
                    Ticket.assignee,
                    Ticket.due_at,
                    Ticket.updated_at,
                    Ticket.resolved_at,
                    Ticket.closed_at,
                ).order_by(Ticket.id)
            )
        ]
