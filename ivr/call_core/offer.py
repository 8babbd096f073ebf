"""A waiting caller and the agents offered the call: queueing, an offer, a missed or
withdrawn offer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callcenter.streams import EventType
from config.schemas import Queue
from ivr.call_core.actions import (
    Actions,
    CommandRefused,
    Dial,
    DropAgent,
    DropLeg,
    EmitEvent,
    EndCall,
    Rewire,
    ScheduleAnnouncements,
)
from ivr.call_core.state import CallPhase, Conversation, LegsView


def drop_agent(conv: Conversation, reason: str) -> DropAgent:
    """The agent leaves the call, and a supervisor following them with them."""
    conv.agent.left()
    return DropAgent(reason)


def agent_missed(conv: Conversation, reason: str) -> Actions:
    """The offered phone did not take the call: an inbound caller waits in the queue again
    (routing offers the call to someone else); an outbound call's caller decides itself."""
    actions: Actions = [
        EmitEvent(
            EventType.agent_missed,
            {
                "agent_uri": conv.agent.uri,
                "agent_id": conv.agent.id,
                "reason": reason,
                "queue": conv.routing.queue,
            },
        )
    ]
    conv.clock.ring_over()
    if conv.direction == "in" and conv.state in (CallPhase.reserved, CallPhase.transferring):
        conv.state = CallPhase.waiting
        actions.append(ScheduleAnnouncements())
    return [*actions, Rewire()]


def withdraw_offer(conv: Conversation, reason: str, legs: LegsView) -> Actions:
    """Stop ringing the offered agent now and report the miss at once: routing may offer
    the call to the next agent right away, and that phone must not ring while this one
    still does. (Waiting for the CANCEL's final answer could take a slow phone 32 s.)"""
    actions: Actions = [DropLeg("agent", reason)] if legs.agent_ringing else []
    actions += agent_missed(conv, reason)
    if conv.direction == "out":
        actions.append(EndCall("agent_unreachable", "failed"))
    return actions


def enqueue(
    conv: Conversation,
    queue_code: str,
    priority: int,
    skills: tuple[str, ...],
    *,
    requeued_from: str = "",
    wall_now: float,
) -> Actions:
    """The call waits in ``queue_code`` (first time, or moved from ``requeued_from``); its
    waiting time counts from the first time it was queued."""
    runner = conv.runner
    conv.routing.enqueue(queue_code, priority, skills, wall_now=wall_now)
    conv.state = CallPhase.waiting
    queued = {
        "queue": queue_code,
        "priority": priority,
        "skills": list(skills),
        "collected": dict(runner.collected) if runner else {},
        "menu_path": list(runner.menu_path) if runner else [],
        "caller": conv.caller,
        "did": conv.did,
        "queued_epoch": conv.routing.queued_at,
        **({"previous_queue": requeued_from} if requeued_from else {}),
    }
    node = runner.node if runner else ""
    return [EmitEvent(EventType.call_queued, queued, node), ScheduleAnnouncements(), Rewire()]


def offer(
    conv: Conversation,
    data: Mapping[str, Any],
    *,
    uri: str,
    ring: float,
    legs: LegsView,
    now: float,
) -> Actions:
    """Routing offers the waiting call to an agent (``uri``): their phone rings ``ring`` s.
    An offer still ringing is withdrawn first (routing's own ring timer fired before ours):
    the first phone stops ringing before the next one starts."""
    actions: Actions = []
    if conv.state == CallPhase.reserved and legs.agent_ringing:
        actions += withdraw_offer(conv, "ring_timeout", legs)
    if conv.state != CallPhase.waiting:
        return [*actions, CommandRefused(f"call is {conv.state}, not waiting in a queue")]
    if not uri:
        return [*actions, CommandRefused("agent_uri missing")]
    agent_id = data.get("agent_id")
    conv.agent.assign(uri, int(agent_id) if agent_id is not None else None)
    conv.state = CallPhase.reserved
    conv.clock.ring(now + ring)
    offered = {
        "agent_uri": uri,
        "agent_id": conv.agent.id,
        "queue": conv.routing.queue,
        "ring_timeout": ring,
    }
    return [*actions, EmitEvent(EventType.agent_offered, offered), Dial("agent", uri)]


def announcement_view(conv: Conversation, queue_cfg: Queue | None, now: float) -> dict[str, Any]:
    """The waiting caller's position-announcement schedule for the command reader (empty:
    none): every ``announce_every_seconds`` of the queue (30 by default), the first one
    soon after the prompt playing now."""
    every = queue_cfg.announce_every_seconds if queue_cfg else 30
    if every <= 0:
        return {}
    first = max(conv.clock.prompt_until - now, 0) + min(every, 5)
    queue = conv.routing.queue
    return {"call_id": conv.call_id, "queue": queue, "every": every, "next_at": now + first}
