"""One transaction of ticket changes: its timeline events, webhook deliveries and timed work.

Everything that must not be lost is written to SQL in the same transaction as the change
(events, webhook deliveries, callback rows). Timed work (SLA timers, callbacks, webhook
retries) is handed to RQ *after* the commit (:class:`ticketing.scheduling.Effects`); if that
hand-off is lost (Redis down, process killed), the periodic scan in ``ticketing.jobs`` finds
the work in SQL.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from callcenter.auth import Principal
from callcenter.context import AppContext
from callcenter.db import write_gate
from ticketing.models import SatisfactionCallback, Ticket, TicketEvent, WebhookDelivery
from ticketing.scheduling import Effects, schedule_effects

log = logging.getLogger(__name__)

# Who acts when no person does (timers, the scan, the callback reader).
SYSTEM = "system"


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
    try:
        schedule_effects(ctx, effects)
    except Exception:  # Redis down: SQL has everything, the scan will find it
        log.exception("could not enqueue ticket jobs; the periodic scan will pick them up")


def local_tz(ctx: AppContext) -> ZoneInfo:
    return ZoneInfo(ctx.settings.timezone)


def actor_name(actor: Principal | str) -> str:
    return actor if isinstance(actor, str) else actor.username
