"""Customers and their units, departments, agents, teams, queues, shifts, and call records."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from callcenter.db import Base, utcnow

# ---------------------------------------------------------------- customers and property units


class FeeStatus(enum.StrEnum):
    paid = "paid"
    arrears = "arrears"  # 欠费
    unknown = "unknown"


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16), default="owner")  # owner, tenant, shop
    member: Mapped[bool] = mapped_column(default=False)
    fee_status: Mapped[FeeStatus] = mapped_column(
        Enum(FeeStatus, native_enum=False, length=16), default=FeeStatus.unknown
    )
    arrears_amount: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0"))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    phones: Mapped[list[CustomerPhone]] = relationship(back_populates="customer")
    units: Mapped[list[CustomerUnit]] = relationship(back_populates="customer")


class CustomerPhone(Base):
    __tablename__ = "customer_phones"
    __table_args__ = (UniqueConstraint("customer_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    # Normalised: mobile "13800138000", landline "02161234567" (area code with leading 0).
    number: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="mobile")

    customer: Mapped[Customer] = relationship(back_populates="phones")


class Unit(Base):
    """A property unit: building-unit-room (楼号-单元-房间), or a shop / garage."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)  # e.g. "3-2-1201"
    building: Mapped[str] = mapped_column(String(16))
    entrance: Mapped[str] = mapped_column(String(16))
    room: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), default="residence")


class CustomerUnit(Base):
    __tablename__ = "customer_units"

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    relation: Mapped[str] = mapped_column(String(16), default="owner")

    customer: Mapped[Customer] = relationship(back_populates="units")
    unit: Mapped[Unit] = relationship()


# ---------------------------------------------------------------- departments


class Department(Base):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name_zh: Mapped[str] = mapped_column(String(128))
    name_en: Mapped[str] = mapped_column(String(128))
    external: Mapped[bool] = mapped_column(default=False)

    contacts: Mapped[list[DepartmentContact]] = relationship(back_populates="department")


class DepartmentContact(Base):
    """Who receives a department's tickets and escalations, in order of rank."""

    __tablename__ = "department_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"))
    # supervisor (主管), manager (经理), escalation (上级主管领导), leadership
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rank: Mapped[int] = mapped_column(default=0)

    department: Mapped[Department] = relationship(back_populates="contacts")


# ---------------------------------------------------------------- agents, teams, queues, shifts


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    lead_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class Shift(Base):
    """Mirror of shifts.toml so SQL reports can join on it; the file stays the source."""

    __tablename__ = "shifts"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))
    start: Mapped[str] = mapped_column(String(5))
    end: Mapped[str] = mapped_column(String(5))
    overnight: Mapped[bool] = mapped_column(default=False)


class Queue(Base):
    """Mirror of queues.toml so SQL reports can join on it; the file stays the source."""

    __tablename__ = "queues"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name_zh: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(64))


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    extension: Mapped[str] = mapped_column(String(16), unique=True)
    # Digest HA1 = md5(extension:realm:password); the edge's registrar reads it, never the password.
    sip_ha1: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    shift_code: Mapped[str | None] = mapped_column(ForeignKey("shifts.code"))
    active: Mapped[bool] = mapped_column(default=True)

    memberships: Mapped[list[AgentQueue]] = relationship(back_populates="agent")


class AgentQueue(Base):
    """An agent serves a queue at a skill level (1 = basic … 10 = expert)."""

    __tablename__ = "agent_queues"

    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    queue_code: Mapped[str] = mapped_column(ForeignKey("queues.code"), primary_key=True)
    skill_level: Mapped[int] = mapped_column(default=5)

    agent: Mapped[Agent] = relationship(back_populates="memberships")


class AgentStateChange(Base):
    """Every agent state transition with its reason: the source for not-ready reports."""

    __tablename__ = "agent_state_changes"
    __table_args__ = (Index("ix_agent_state_changes_agent_at", "agent_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    call_id: Mapped[str | None] = mapped_column(String(64))
    # Added by 0002_cti: the agent_events stream entry (replays are idempotent), who asked
    # (the agent's user name, a lead's, "routing" or "engine") and the named transition.
    stream_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    actor: Mapped[str | None] = mapped_column(String(64))
    transition: Mapped[str | None] = mapped_column(String(24))


# ---------------------------------------------------------------- calls


class Call(Base):
    """One record per call, written from the engine's event stream."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_arrived_at", "arrived_at"),
        Index("ix_calls_caller_number", "caller_number"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), default="in")  # in, out
    caller_number: Mapped[str] = mapped_column(String(64), default="")
    did: Mapped[str] = mapped_column(String(32), default="")
    node_id: Mapped[str | None] = mapped_column(String(32))
    slot: Mapped[str | None] = mapped_column(String(32))
    menu_path: Mapped[list[Any]] = mapped_column(default=list)
    collected: Mapped[dict[str, Any]] = mapped_column(default=dict)
    queue_code: Mapped[str | None] = mapped_column(String(40))
    priority: Mapped[int] = mapped_column(default=0)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    shift_code: Mapped[str | None] = mapped_column(String(40))
    arrived_at: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # answered, abandoned, short_abandoned, overflowed, callback, menu_hangup, failed, slot_failed
    outcome: Mapped[str | None] = mapped_column(String(24))
    end_reason: Mapped[str | None] = mapped_column(String(64))
    disposition: Mapped[str | None] = mapped_column(String(64))
    last_event_id: Mapped[str | None] = mapped_column(String(32))


class CallEvent(Base):
    """The call's timeline. ``stream_id`` (the Redis stream entry id) makes replays idempotent."""

    __tablename__ = "call_events"
    __table_args__ = (Index("ix_call_events_call_id_at", "call_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    stream_id: Mapped[str] = mapped_column(String(32), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
