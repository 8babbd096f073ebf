"""API shapes for tickets, transitions, callbacks and reports."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Track = Literal["general", "urgent", "emergency"]
ComplaintKind = Literal["effective", "help_seeking", "inquiry", "venting"]
Channel = Literal["phone", "walk_in", "api"]


class TicketCreate(BaseModel):
    """A report as the front desk registers it, with the seed's "5 clarities" (5清楚)."""

    model_config = ConfigDict(extra="forbid")

    category: str = Field(min_length=1, max_length=40, description="a code from ticket-categories")
    description: str = Field(max_length=4000)
    track: Track
    reporter: str = Field(min_length=1, max_length=128, description="who reports (谁)")
    unit: str = Field(min_length=1, max_length=64, description="where: the unit (哪里)")
    what: str = Field(min_length=1, max_length=4000, description="what happened (什么事)")
    when: str = Field(min_length=1, max_length=128, description="when it happened (何时)")
    contact: str = Field(min_length=1, max_length=64, description="how to reach them (联系方式)")
    complaint_kind: ComplaintKind | None = Field(
        default=None,
        description="effective (有效投诉) or communicative: help_seeking (求助型), "
        "inquiry (咨询型), venting (发泄型)",
    )
    call_id: str | None = Field(
        default=None, max_length=64, description="the call of the screen pop"
    )
    channel: Channel | None = Field(
        default=None, description="default: phone with a call_id, else api; walk_in at the desk"
    )
    sla: str | None = Field(
        default=None, description="30m, 3h, 3d or agreed; default: the category's class"
    )
    due_at: datetime | None = Field(default=None, description="the deadline agreed (sla=agreed)")
    auto_dispatch: bool = Field(default=True, description="dispatch to the department at once")


class TransitionRequest(BaseModel):
    """One lifecycle step; which fields are required depends on ``to``."""

    model_config = ConfigDict(extra="forbid")

    to: str
    note: str | None = Field(default=None, max_length=4000)
    department: str | None = Field(default=None, description="dispatched: another department")
    assignee: str | None = Field(
        default=None, max_length=128, description="assigned: who is responsible"
    )
    done: str | None = Field(default=None, max_length=4000, description="resolved: what was done")
    materials: str | None = Field(default=None, max_length=4000, description="resolved: materials")
    minutes_spent: int | None = Field(default=None, description="resolved: time spent in minutes")
    attachments: list[str] | None = Field(default=None, description="resolved: photo/file URLs")
    result: str | None = Field(
        default=None, description="callback: satisfied/unsatisfied/unreachable"
    )
    reason: str | None = Field(
        default=None, max_length=4000, description="callback: why unsatisfied"
    )
    score: int | None = Field(default=None, ge=1, le=5, description="callback: 1-5")


class TicketEventPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    type: str
    from_status: str | None
    to_status: str | None
    data: dict[str, Any]


class WorkOrderPublic(BaseModel):
    id: int
    done: str
    materials: str
    minutes_spent: int
    attachments: list[Any]
    filled_by: str
    completed_at: datetime


class CallbackAttemptPublic(BaseModel):
    id: int
    at: datetime
    outcome: str
    call_id: str | None
    note: str | None


class CallbackPublic(BaseModel):
    id: int
    ticket_id: int
    customer_id: int | None
    number: str
    mode: str
    scheduled_for: datetime
    deadline: datetime
    status: str
    attempts: int
    result: str | None
    score: int | None
    reason: str | None
    completed_at: datetime | None
    assigned_agent_id: int | None = Field(
        None, description="the agent this callback is assigned to (None: the callback queue)"
    )
    history: list[CallbackAttemptPublic] = Field(default_factory=list)


class CallbackAssign(BaseModel):
    """Give a callback to one agent, or back to the callback queue with ``null``."""

    model_config = ConfigDict(extra="forbid")

    agent_id: int | None = Field(..., ge=1, le=2**31 - 1)


class TicketPublic(BaseModel):
    id: int
    number: str
    status: str
    category: str
    department: str | None
    department_id: int | None
    track: str
    complaint_kind: str | None
    reporter: str
    unit: str
    what: str
    when: str
    contact: str
    description: str
    customer_id: int | None
    call_id: str | None
    channel: str
    sla: str
    written_notice: bool
    due_at: datetime | None
    assignee: str | None
    escalation_level: int
    overdue: bool
    overdue_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    closed_at: datetime | None
    allowed_next: list[str]


class TicketDetail(TicketPublic):
    timeline: list[TicketEventPublic]
    work_orders: list[WorkOrderPublic]
    callbacks: list[CallbackPublic]


class TicketPage(BaseModel):
    items: list[TicketPublic]
    total: int
    limit: int
    offset: int


class CategoryPublic(BaseModel):
    code: str
    name_zh: str
    name_en: str
    area: str
    department: str
    department_name_zh: str
    department_name_en: str
    external: bool
    sla: str
    sla_minutes: int | None
    written_notice: bool


class CallbackAttemptCreate(BaseModel):
    """What happened on one callback attempt (posted by the agent, or the survey's result)."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["answered", "no_answer", "busy", "failed"]
    result: Literal["satisfied", "unsatisfied"] | None = Field(
        default=None, description="required when answered (or give a survey score)"
    )
    score: int | None = Field(default=None, ge=1, le=5, description="survey: 4-5 satisfied")
    reason: str | None = Field(default=None, max_length=4000)
    call_id: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=4000)
