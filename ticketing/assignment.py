"""Giving a satisfaction callback (回访) to one agent.

A lead assigns an open callback to an active agent (or takes it back: ``None``). An assigned
callback shows on that agent's desktop, only that agent (or a lead) records its attempts, and
the worker no longer places it through the callback queue while its window is open; once the
deadline passes the worker closes it like any other (retried or unreachable).
"""

from __future__ import annotations

from datetime import datetime

from callcenter.audit import record as record_audit
from callcenter.auth import Principal
from callcenter.context import AppContext
from callcenter.db import utcnow
from callcenter.errors import Conflict, Forbidden, InvalidInput, NotFound
from callcenter.models import Role
from cti.models import Agent
from ticketing.change import changing
from ticketing.errors import (
    CALLBACK_ASSIGNED_ELSEWHERE,
    CALLBACK_BAD_AGENT,
    CALLBACK_CLOSED,
    CALLBACK_LEAD_ONLY,
    CALLBACK_NOT_FOUND,
)
from ticketing.models import SatisfactionCallback

OPEN = frozenset({"scheduled", "in_progress"})
ASSIGNERS = frozenset({Role.lead, Role.admin})


def assign_callback(
    ctx: AppContext,
    callback_id: int,
    agent_id: int | None,
    *,
    actor: Principal,
    ticket_id: int | None = None,
    now: datetime | None = None,
) -> SatisfactionCallback:
    """Give callback ``callback_id`` to ``agent_id`` (``None``: back to the callback queue);
    with ``ticket_id``, the callback must be that ticket's."""
    if actor.role not in ASSIGNERS:
        raise Forbidden(
            "only a shift lead assigns callbacks / 只有班长可以分配回访",
            error_id=CALLBACK_LEAD_ONLY,
        )
    with changing(ctx, actor=actor.username, now=now or utcnow()) as change:
        session = change.session
        cb = session.get(SatisfactionCallback, callback_id)
        if cb is None or (ticket_id is not None and cb.ticket_id != ticket_id):
            raise NotFound(
                f"callback {callback_id} does not exist / 回访不存在", error_id=CALLBACK_NOT_FOUND
            )
        if cb.status not in OPEN:
            raise Conflict(
                f"callback {callback_id} is {cb.status}; only open callbacks are assigned"
                " / 该回访已结束，不能分配",
                details={"status": cb.status},
                error_id=CALLBACK_CLOSED,
            )
        if agent_id is not None:
            agent = session.get(Agent, agent_id)
            if agent is None or not agent.active:
                raise InvalidInput(
                    f"agent_id: no active agent {agent_id} / 坐席不存在或已停用",
                    details={"agent_id": agent_id},
                    error_id=CALLBACK_BAD_AGENT,
                )
        before = cb.assigned_agent_id
        cb.assigned_agent_id = agent_id
        record_audit(
            session,
            actor=actor.username,
            action="callback.assign",
            object_type="callback",
            object_id=cb.id,
            details={"from_agent_id": before, "to_agent_id": agent_id},
        )
        session.flush()
        session.refresh(cb)
        session.expunge(cb)
    return cb


def check_may_record(actor: Principal | str, cb: SatisfactionCallback) -> None:
    """An assigned callback's attempts are recorded by its agent or by a lead."""
    if isinstance(actor, str) or cb.assigned_agent_id is None:
        return
    if actor.role in ASSIGNERS:
        return
    if actor.agent_id != cb.assigned_agent_id:
        raise Forbidden(
            "this callback is assigned to another agent / 该回访已分配给其他坐席",
            details={"assigned_agent_id": cb.assigned_agent_id},
            error_id=CALLBACK_ASSIGNED_ELSEWHERE,
        )
