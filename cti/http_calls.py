"""``GET /api/v1/calls`` and ``GET /api/v1/calls/{id}``: call records written by the consumer.

Shift leads, QA and admins read every call; an agent reads only their own: by default the
calls they answered (``view=answered``), and apart from those the calls offered to them that
they did not answer (``view=missed``: their phone rang and they did not take it, or the caller
hung up while it rang). Other roles get 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, and_, not_, or_, select

from callcenter.auth import Principal, current_user, get_ctx
from callcenter.context import AppContext
from callcenter.errors import Forbidden, NotFound
from callcenter.models import Role
from callcenter.params import MAX_OFFSET, MAX_ROW_ID, IsoDateTime
from callcenter.streams import EventType
from cti.errors import CALL_NOT_FOUND, CALL_READ_FORBIDDEN
from cti.models import Call, CallEvent
from recordings.models import Recording
from recordings.schemas import PausedSpan

router = APIRouter(tags=["calls"])

READ_ALL = (Role.lead, Role.qa, Role.admin)


class RecordingSummary(BaseModel):
    id: str
    duration_seconds: float
    bytes: int
    sha256: str | None
    status: str
    audio_url: str
    paused_spans: list[PausedSpan] = Field(default_factory=list)


class CallPublic(BaseModel):
    id: str
    direction: str
    caller_number: str
    did: str
    menu_path: list[Any]
    collected: dict[str, Any]
    queue: str | None
    priority: int
    arrived_at: datetime | None
    queued_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    end_reason: str | None
    agent_id: int | None
    slot: str | None
    recording: RecordingSummary | None


class CallEventPublic(BaseModel):
    stream_id: str
    type: str
    at: datetime
    data: dict[str, Any]


class CallDetail(CallPublic):
    events: list[CallEventPublic]


class CallList(BaseModel):
    items: list[CallPublic]
    total_returned: int


def _viewer(principal: Principal) -> int | None:
    """None: may read every call; else the agent id whose calls may be read."""
    if principal.role in READ_ALL:
        return None
    if principal.role is Role.agent and principal.agent_id is not None:
        return principal.agent_id
    raise Forbidden(
        "only shift leads, QA, admins and agents (their own calls) may read calls",
        error_id=CALL_READ_FORBIDDEN,
    )


def _offered_and_missed(agent_id: int) -> ColumnElement[bool]:
    """Calls offered to the agent that they did not answer."""
    extracted = CallEvent.data["agent_id"]
    missed_events = select(CallEvent.call_id).where(
        CallEvent.type == EventType.agent_missed,
        # engine events carry the id as a number; older producers wrote it as text
        or_(extracted.as_integer() == agent_id, extracted.as_string() == str(agent_id)),
    )
    rang_unanswered = and_(Call.agent_id == agent_id, Call.answered_at.is_(None))
    return and_(
        or_(Call.id.in_(missed_events), rang_unanswered),
        not_(_answered_by(agent_id)),
    )


def _answered_by(agent_id: int) -> ColumnElement[bool]:
    """Calls the agent answered (and still held: a call handed over belongs to its target)."""
    return and_(Call.agent_id == agent_id, Call.answered_at.is_not(None))


def _public(call: Call, recording: Recording | None) -> dict[str, Any]:
    return {
        "id": call.id,
        "direction": call.direction,
        "caller_number": call.caller_number,
        "did": call.did,
        "menu_path": call.menu_path or [],
        "collected": call.collected or {},
        "queue": call.queue_code,
        "priority": call.priority,
        "arrived_at": call.arrived_at,
        "queued_at": call.queued_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "outcome": call.outcome,
        "end_reason": call.end_reason,
        "agent_id": call.agent_id,
        "slot": call.slot,
        "recording": None
        if recording is None
        else RecordingSummary(
            id=recording.id,
            duration_seconds=recording.duration_seconds,
            bytes=recording.bytes,
            sha256=recording.sha256,
            status=recording.status,
            audio_url=f"/api/v1/recordings/{recording.id}/audio",
            paused_spans=[PausedSpan.model_validate(s) for s in recording.paused_spans or []],
        ),
    }


@router.get("/calls", response_model=CallList, summary="Calls, newest first")
def list_calls(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
    number: Annotated[str | None, Query(description="caller number (or part of it)")] = None,
    view: Annotated[
        Literal["answered", "missed"] | None,
        Query(
            description="an agent's calls: answered (the default for agents) or offered to "
            "them and missed; leads may combine it with agent_id"
        ),
    ] = None,
    agent_id: Annotated[
        int | None,
        Query(ge=1, le=MAX_ROW_ID, description="leads, QA, admins: one agent's calls (see view)"),
    ] = None,
    since: Annotated[
        IsoDateTime | None, Query(description="arrived at or after (ISO 8601)")
    ] = None,
    until: Annotated[IsoDateTime | None, Query(description="arrived before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> CallList:
    own = _viewer(principal)
    if own is not None:
        if agent_id is not None and agent_id != own:
            raise Forbidden("an agent may read only their own calls", error_id=CALL_READ_FORBIDDEN)
        agent_id, view = own, view or "answered"
    query = select(Call)
    if agent_id is not None:
        if view == "missed":
            query = query.where(_offered_and_missed(agent_id))
        elif view == "answered":
            query = query.where(_answered_by(agent_id))
        else:
            query = query.where(Call.agent_id == agent_id)
    if number:
        query = query.where(
            or_(Call.caller_number.contains(number, autoescape=True), Call.did == number)
        )
    if since is not None:
        query = query.where(Call.arrived_at >= since)
    if until is not None:
        query = query.where(Call.arrived_at < until)
    query = query.order_by(Call.arrived_at.desc().nulls_last(), Call.id).limit(limit)
    query = query.offset(offset)
    with ctx.sessions() as session:
        calls = list(session.scalars(query))
        recordings = {
            r.call_id: r
            for r in session.scalars(
                select(Recording).where(Recording.call_id.in_([c.id for c in calls]))
            )
        }
        items = [CallPublic(**_public(c, recordings.get(c.id))) for c in calls]
    return CallList(items=items, total_returned=len(items))


@router.get("/calls/{call_id}", response_model=CallDetail, summary="One call with its timeline")
def get_call(
    call_id: str,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
) -> CallDetail:
    agent_id = _viewer(principal)
    with ctx.sessions() as session:
        call = session.get(Call, call_id)
        if call is None or (
            agent_id is not None
            and call.agent_id != agent_id
            and session.scalar(
                select(Call.id).where(Call.id == call_id, _offered_and_missed(agent_id))
            )
            is None
        ):
            # an agent cannot learn whether someone else's call exists
            raise NotFound(
                f"call {call_id!r} not found", details={"call_id": call_id}, error_id=CALL_NOT_FOUND
            )
        recording = session.scalar(
            select(Recording).where(Recording.call_id == call_id).order_by(Recording.started_at)
        )
        events = [
            CallEventPublic(stream_id=e.stream_id, type=e.type, at=e.at, data=e.data)
            for e in session.scalars(
                select(CallEvent).where(CallEvent.call_id == call_id).order_by(CallEvent.at)
            )
        ]
        return CallDetail(**_public(call, recording), events=events)
