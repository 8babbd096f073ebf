"""Finding recordings: filters over one table, newest first, one page at a time.

The call's agent, caller and queue are copied onto the recording row, and each filter that
can lead has an index ending in ``started_at`` (0006_recordings), so the first page comes
from one index range without a sort even over millions of rows. Offset paging; ``has_more``
from fetching one row beyond the page (no count over the whole match).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from cti.models import Agent
from recordings.models import Recording
from recordings.schemas import RecordingItem
from ticketing.models import Ticket


@dataclass(frozen=True)
class RecordingFilter:
    agent_extension: str | None = None
    only_agent_id: int | None = None  # the viewer's own (agents); None: everyone's
    caller: str | None = None
    queue: str | None = None
    ticket: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    min_duration: float | None = None
    qa_status: str | None = None


# Filters comparing one column with the value asked for: (field, column, comparison). A field
# counts when given (a text field: when not empty).
_COLUMN_FILTERS: tuple[tuple[str, Any, Callable[[Any, Any], Any]], ...] = (
    ("caller", Recording.caller_number, operator.eq),
    ("queue", Recording.queue_code, operator.eq),
    ("since", Recording.started_at, operator.ge),
    ("until", Recording.started_at, operator.lt),
    ("min_duration", Recording.duration_seconds, operator.ge),
    ("qa_status", Recording.qa_status, operator.eq),
)


def _query(session: Session, wanted: RecordingFilter) -> Select[Any] | None:
    """The statement, or None when a filter names nothing that exists (no rows can match)."""
    query = select(Recording).where(Recording.deleted_at.is_(None))
    if wanted.only_agent_id is not None:
        query = query.where(Recording.agent_id == wanted.only_agent_id)
    if wanted.agent_extension:
        agent_id = session.scalar(select(Agent.id).where(Agent.extension == wanted.agent_extension))
        if agent_id is None:
            return None
        query = query.where(Recording.agent_id == agent_id)
    if wanted.ticket:
        call_id = session.scalar(select(Ticket.call_id).where(Ticket.number == wanted.ticket))
        if call_id is None:
            return None
        query = query.where(Recording.call_id == call_id)
    for name, column, compare in _COLUMN_FILTERS:
        value = getattr(wanted, name)
        if value is not None and value != "":
            query = query.where(compare(column, value))
    return query


def search(
    session: Session, wanted: RecordingFilter, *, limit: int, offset: int
) -> tuple[list[RecordingItem], bool]:
    """One page of matches (newest first) and whether more follow."""
    query = _query(session, wanted)
    if query is None:
        return [], False
    rows: list[Recording] = list(
        session.scalars(
            query.order_by(Recording.started_at.desc(), Recording.id.desc())
            .limit(limit + 1)
            .offset(offset)
        )
    )
    has_more = len(rows) > limit
    return _items(session, rows[:limit]), has_more


def items_for(session: Session, recording_ids: list[str]) -> list[RecordingItem]:
    """The search items of these recordings, oldest first."""
    rows = list(
        session.scalars(
            select(Recording)
            .where(Recording.id.in_(recording_ids))
            .order_by(Recording.started_at, Recording.id)
        )
    )
    return _items(session, rows)


def _items(session: Session, rows: list[Recording]) -> list[RecordingItem]:
    agent_ids = {r.agent_id for r in rows if r.agent_id is not None}
    extensions: dict[int, str] = {}
    if agent_ids:
        rows_ = session.execute(select(Agent.id, Agent.extension).where(Agent.id.in_(agent_ids)))
        extensions = {agent_id: extension for agent_id, extension in rows_}
    call_ids = [r.call_id for r in rows]
    tickets: dict[str, str] = {}
    if call_ids:
        for call_id, number in session.execute(
            select(Ticket.call_id, Ticket.number)
            .where(Ticket.call_id.in_(call_ids))
            .order_by(Ticket.id)
        ):
            tickets.setdefault(str(call_id), number)
    items = [
        RecordingItem(
            id=r.id,
            call_id=r.call_id,
            agent=extensions.get(r.agent_id) if r.agent_id is not None else None,
            caller=r.caller_number,
            queue=r.queue_code,
            started_at=r.started_at,
            duration_s=r.duration_seconds,
            ticket=tickets.get(r.call_id),
            qa_status=r.qa_status,
            status=r.status,
            legal_hold=r.legal_hold,
        )
        for r in rows
    ]
    return items
