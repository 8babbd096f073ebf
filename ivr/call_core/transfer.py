"""Handing a caller on: blind transfers (to a queue, an agent, an outside number) and the
consultation (attended transfer): start, complete (answered or still ringing), cancel, end."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

from callcenter.streams import CommandType, EventType
from ivr.call_core.actions import (
    Actions,
    CommandRefused,
    Dial,
    DropLeg,
    EmitEvent,
    EndCall,
    PromoteConsult,
    Rewire,
)
from ivr.call_core.offer import drop_agent, enqueue, offer
from ivr.call_core.state import (
    BUSY_WITH_CONSULT,
    CONSULT_NUMBER_RING_SECONDS,
    MAX_LEGS,
    TRANSFER_NUMBER_RING_SECONDS,
    CallPhase,
    CommandIn,
    Consult,
    Conversation,
    optional_int,
)

log = logging.getLogger("ivr.slot")


def transfer(conv: Conversation, cmd: CommandIn) -> Actions:
    """The ``transfer`` command: its ``mode`` says which."""
    mode = str(cmd.data.get("mode") or "blind")
    handler = _MODES.get(mode)
    if handler is None:
        return [CommandRefused(f"transfer mode {mode!r}: use blind, consult, complete or cancel")]
    return handler(conv, cmd)


def _blind(conv: Conversation, cmd: CommandIn) -> Actions:
    kind = str(cmd.data.get("kind", ""))
    target = str(cmd.data.get("target", ""))
    if conv.consult is not None:
        return [CommandRefused(BUSY_WITH_CONSULT)]
    if kind == "queue":
        return _to_queue(conv, cmd, target)
    if kind == "agent":
        return _to_agent(conv, cmd, target)
    if kind == "number":
        return to_number(conv, target, cmd.setup.uris.transfer_target(target), now=cmd.now)
    return [CommandRefused(f"transfer kind {kind!r}: use queue, agent or number")]


def _to_queue(conv: Conversation, cmd: CommandIn, target: str) -> Actions:
    if target not in cmd.setup.queues:
        return [CommandRefused(f"queue {target!r} is not defined")]
    ask = conv.routing
    conv.held = False
    return [
        drop_agent(conv, "transferred"),
        EmitEvent(EventType.transferred, {"kind": "queue", "to": target}),
        *enqueue(
            conv, target, ask.priority, ask.skills, requeued_from=ask.queue, wall_now=cmd.wall_now
        ),
    ]


def _to_agent(conv: Conversation, cmd: CommandIn, target: str) -> Actions:
    """The caller waits for the named agent: their phone is offered the call at once. What
    the offer refuses is reported as the offer's (routing keeps the transfer)."""
    dropped = drop_agent(conv, "transferred")
    conv.held = False
    conv.state = CallPhase.waiting
    data = {"agent_uri": target, "agent_id": cmd.data.get("agent_id")}
    offered = offer(
        conv,
        data,
        uri=cmd.setup.uris.agent(target),
        ring=cmd.setup.ring_seconds(conv.routing.queue, data),
        legs=cmd.legs,
        now=cmd.now,
    )
    as_offer: dict[str, Any] = {"agent_id": data["agent_id"]}
    return [
        dropped,
        EmitEvent(EventType.transferred, {"kind": "agent", "to": target}),
        *(
            replace(a, command=CommandType.offer, context=as_offer)
            if isinstance(a, CommandRefused)
            else a
            for a in offered
        ),
    ]


def to_number(
    conv: Conversation, target: str, uri: str | None, *, now: float, from_menu: bool = False
) -> Actions:
    """A blind transfer to a configured outside number (``uri``; None: not allowed): it
    rings as an offer would, and answering it bridges the caller."""
    if uri is None:
        if not from_menu:
            return [CommandRefused(f"{target!r} is not an allowed transfer target")]
        log.error("menu transfer target %r not allowed", target)
        return [EndCall("transfer_not_allowed", "failed")]
    dropped = drop_agent(conv, "transferred")
    conv.held = False
    conv.state = CallPhase.transferring
    conv.agent.assign(uri, None)
    conv.outcome = "transferred"
    conv.clock.ring(now + TRANSFER_NUMBER_RING_SECONDS)
    return [dropped, Rewire(), Dial("agent", uri)]


# ---------------------------------------------------------------- consultation


@dataclass(frozen=True)
class _Target:
    """Where a consultation rings, and for how long."""

    uri: str
    ring: float


def _consult_target(conv: Conversation, cmd: CommandIn) -> _Target | str:
    """Where the consultation rings, or why it cannot."""
    kind = str(cmd.data.get("kind", ""))
    target = str(cmd.data.get("target", ""))
    if kind == "agent":
        uri = cmd.setup.uris.agent(target) if target else ""
        ring = cmd.setup.ring_seconds(conv.routing.queue, cmd.data)
    elif kind == "number":
        uri = cmd.setup.uris.transfer_target(target) or ""
        ring = CONSULT_NUMBER_RING_SECONDS
    else:
        return f"consult kind {kind!r}: use agent or number"
    if not uri:
        return f"{target!r} is not an allowed consultation target"
    return _Target(uri, ring)


def consult_start(conv: Conversation, cmd: CommandIn) -> Actions:
    """The caller goes on hold (music; still recorded), a new leg rings the target."""
    if conv.state != CallPhase.connected or "agent" not in cmd.legs.roles:
        return [CommandRefused("only a call connected to an agent can be consulted on")]
    if conv.consult is not None:
        return [CommandRefused("a consultation is already in progress")]
    target = _consult_target(conv, cmd)
    if isinstance(target, str):
        return [CommandRefused(target)]
    if cmd.legs.lines >= MAX_LEGS:
        return [CommandRefused(f"no line left for a consultation ({MAX_LEGS} per slot)")]
    uri, ring = target.uri, target.ring
    kind = str(cmd.data["kind"])
    consult = Consult(
        kind=kind,
        to=str(cmd.data.get("target", "")),
        uri=uri,
        agent_id=optional_int(cmd.data.get("agent_id")) if kind == "agent" else None,
        deadline=cmd.now + ring,
        started=cmd.wall_now,
    )
    conv.consult = consult
    actions: Actions = []
    if not conv.held:
        conv.held = consult.held_caller = True
        actions.append(EmitEvent(EventType.held, {"reason": "consult"}))
    started = {**consult.facts(), "ring_timeout": ring}
    return [*actions, Rewire(), EmitEvent(EventType.consult_started, started), Dial("consult", uri)]


def _complete(conv: Conversation, cmd: CommandIn) -> Actions:
    consult = conv.consult
    if consult is None:
        return [CommandRefused("no consultation in progress")]
    if consult.answered:
        return consult_complete(conv, by="command", consult_leg="consult" in cmd.legs.roles)
    if consult.kind == "agent":
        return _hand_over_ringing(conv, consult_leg="consult" in cmd.legs.roles)
    return [CommandRefused("an outside number must answer before the hand-over: wait, or cancel")]


def _cancel(conv: Conversation, cmd: CommandIn) -> Actions:
    if conv.consult is None:
        return [CommandRefused("no consultation in progress")]
    return consult_ended(
        conv, "cancelled", agent_present="agent" in cmd.legs.roles, wall_now=cmd.wall_now
    )


def consult_complete(conv: Conversation, *, by: str, consult_leg: bool) -> Actions:
    """Hand the caller over: the agent (and a supervisor following them) leave, the
    target's leg becomes the call's agent leg, the caller is bridged to it."""
    handed = _hand_over(conv, consult_leg)
    if handed is None:
        return []
    consult, actions = handed
    if consult.kind == "number":
        conv.outcome = "transferred"
    bridged = {"agent_uri": conv.agent.uri, "agent_id": conv.agent.id, "queue": conv.routing.queue}
    return [
        *actions,
        Rewire(),
        EmitEvent(EventType.transferred, consult.handed_over(answered=True, by=by)),
        EmitEvent(EventType.bridged, bridged),
    ]


def _hand_over_ringing(conv: Conversation, consult_leg: bool) -> Actions:
    """Complete before the target answered (semi-attended transfer): the agent leaves at
    once, and the target's ringing leg becomes the call's offer, as a blind transfer's
    would be. The caller hears the queue's waiting sound until the target answers; a
    target who does not answer (ring timeout, decline) is a missed offer, and routing
    puts the caller back in line."""
    handed = _hand_over(conv, consult_leg)
    if handed is None:
        return []
    consult, actions = handed
    conv.state = CallPhase.reserved
    conv.clock.ring(consult.deadline)
    handed_over = consult.handed_over(answered=False, by="command")
    return [*actions, Rewire(), EmitEvent(EventType.transferred, handed_over)]


def _hand_over(conv: Conversation, consult_leg: bool) -> tuple[Consult, Actions] | None:
    """The agent (and a supervisor following them) leave; the consultation's leg, with
    its media if any, becomes the call's agent leg. None when there is no such leg."""
    consult = conv.consult
    if consult is None or not consult_leg:
        return None
    actions: Actions = [drop_agent(conv, "transferred"), PromoteConsult()]
    conv.consult = None
    conv.held = False
    conv.agent.assign(consult.uri, consult.agent_id)
    return consult, actions


def consult_ended(
    conv: Conversation,
    reason: str,
    *,
    code: int = 0,
    detail: str = "",
    reconnect: bool = True,
    agent_present: bool,
    wall_now: float,
) -> Actions:
    """The consultation ends without a transfer: the target's leg goes; unless the call
    is ending, a caller the consultation put on hold is reconnected to the agent at once
    (the agent is on the line and expects the caller back; a caller the agent had put on
    hold before consulting stays on hold until the agent takes them off)."""
    consult = conv.consult
    if consult is None:
        return []
    conv.consult = None
    resume = reconnect and consult.held_caller and conv.held and agent_present
    if resume:
        conv.held = False
    ended = {
        **consult.facts(),
        "reason": reason,
        "answered": consult.answered,
        "code": code,
        "seconds": round(wall_now - consult.started, 3),
        **({"detail": detail} if detail else {}),
    }
    actions: Actions = [
        DropLeg("consult", reason),
        Rewire(),
        EmitEvent(EventType.consult_ended, ended),
    ]
    if resume:
        actions.append(EmitEvent(EventType.unheld, {"reason": "consult_ended"}))
    return actions


_MODES = {"blind": _blind, "consult": consult_start, "complete": _complete, "cancel": _cancel}
