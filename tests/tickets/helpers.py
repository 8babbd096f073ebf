"""Helpers shared by the ticket tests: a payload, an in-process RQ worker, counting rows."""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker
from sqlalchemy import func, select

from callcenter.context import AppContext
from callcenter.streams import Command
from callcenter.worker import queues
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


def run_worker(ctx: AppContext) -> None:
    """Run every job that is due now, in this process (RQ's own scheduler moves due jobs)."""
    qs = queues(ctx)
    worker = SimpleWorker(qs, connection=qs[0].connection)
    worker.work(burst=True, with_scheduler=True, logging_level="WARNING")


def originate_commands(ctx: AppContext) -> list[Command]:
    """The originate commands published for this node's engine."""
    entries: Any = ctx.redis.xrange(ctx.keys.originate_requests(ctx.settings.node_id))
    return [Command.from_fields(fields) for _id, fields in entries]


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
