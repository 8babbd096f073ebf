"""Tickets, their timeline, work orders, satisfaction callbacks and webhook deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.db import Base, utcnow


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_due", "status", "due_at"),
        Index("ix_tickets_department_status", "department_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # e.g. GD20261129-0001
    category: Mapped[str] = mapped_column(String(40))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    track: Mapped[str] = mapped_column(String(16), default="general")  # general, urgent, emergency
    status: Mapped[str] = mapped_column(String(24), default="registered")
    complaint_kind: Mapped[str | None] = mapped_column(String(24))
    # The "5 clarities" (5清楚): who, where, what, when, how to reach them.
    reporter: Mapped[str] = mapped_column(String(128))
    unit: Mapped[str] = mapped_column(String(64))
    what: Mapped[str] = mapped_column(Text)
    when_text: Mapped[str] = mapped_column(String(128))
    contact: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    # The call of a screen pop. No foreign key: the ticket is registered while the call is
    # live, and the call's row is written later by the ``calls`` consumer of the event stream.
    call_id: Mapped[str | None] = mapped_column(String(64), index=True)
    channel: Mapped[str] = mapped_column(String(16), default="phone")  # phone, walk_in, api
    sla_class: Mapped[str] = mapped_column(String(16), default="30m")
    due_at: Mapped[datetime | None]
    assignee: Mapped[str | None] = mapped_column(String(128))
    escalation_level: Mapped[int] = mapped_column(default=0)
    overdue: Mapped[bool] = mapped_column(default=False)
    overdue_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id"
    )


class TicketEvent(Base):
    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))  # transition, warned, escalated, overdue, note
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class WorkOrder(Base):
    """派工单: what was done on site."""

    __tablename__ = "work_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    done: Mapped[str] = mapped_column(Text)
    materials: Mapped[str] = mapped_column(Text, default="")
    minutes_spent: Mapped[int] = mapped_column(default=0)
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    filled_by: Mapped[str] = mapped_column(String(128))
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)


class SatisfactionCallback(Base):
    """回访: one per ticket, with its attempts."""

    __tablename__ = "callbacks"
    __table_args__ = (
        Index("ix_callbacks_status_scheduled", "status", "scheduled_for"),
        Index("ix_callbacks_assigned_status", "assigned_agent_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    number: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16), default="agent")  # agent, survey
    scheduled_for: Mapped[datetime]
    deadline: Mapped[datetime]
    # scheduled, in_progress, done, unreachable, skipped
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    attempts: Mapped[int] = mapped_column(default=0)
    result: Mapped[str | None] = mapped_column(String(16))  # satisfied, unsatisfied, unreachable
    score: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(Text)
    completed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The agent a lead gave this callback to (None: the callback queue's agents place it).
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))


class CallbackAttempt(Base):
    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    callback_id: Mapped[int] = mapped_column(ForeignKey("callbacks.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16))  # answered, no_answer, busy, failed
    call_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(512))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class TicketNumberCounter(Base):
    """The last ticket number given out per local day (``GD<day>-NNNN``): one upsert allocates
    the next one, in the creating transaction, so numbers stay dense (a rolled-back creation
    gives its number back) and concurrent creations of a day queue on this one row."""

    __tablename__ = "ticket_number_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)  # YYYYMMDD, local time
    last: Mapped[int]


class TicketIdempotencyKey(Base):
    """An ``Idempotency-Key`` a user sent with ``POST /api/v1/tickets`` and the ticket it
    registered (``ticketing.idempotency``): written in the ticket's transaction, so a retry
    after a cut finds either both or neither. Scoped to the user: two users' keys never meet.
    ``fingerprint`` is the request's SHA-256, to tell a retry from a reused key."""

    __tablename__ = "ticket_idempotency_keys"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
