"""What the call does when one of its legs rings, answers, gets its audio, sends a digit,
ends, or cannot be placed at all."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.streams import EventType
from ivr.call_core.actions import (
    Actions,
    AgentMissed,
    CommandRefused,
    ConsultComplete,
    ConsultEnd,
    DialCustomer,
    DropLeg,
    EmitEvent,
    EndCall,
    Rewire,
    RunMenu,
    StartRecording,
    StopAnnouncements,
)
from ivr.call_core.offer import agent_missed
from ivr.call_core.state import (
    BUSY_CODES,
    DECLINE_CODES,
    LEAVING_OUTCOMES,
    NO_ANSWER_CODES,
    CallPhase,
    Conversation,
    LegsView,
)
from ivr.call_core.transfer import consult_ended
from ivr.menu import Emit


@dataclass(frozen=True)
class LegGone:
    """A leg in its role ended (pjsua said DISCONNECTED), as the core needs to know it."""

    role: str
    confirmed: bool  # it had answered
    code: int
    reason: str
    intentional: bool  # we hung it up ourselves (and reported it then)


def customer_unreachable_outcome(code: int) -> str:
    """An outbound call's customer never answered: the SIP answer says why."""
    return "busy" if code in BUSY_CODES else _no_answer_or_failed(code)


def consult_failure(answered: bool, code: int) -> str:
    """Why a consultation target's leg ended on its own."""
    if answered:
        return "target_hung_up"
    return "declined" if code in DECLINE_CODES else _no_answer_or_failed(code)


def _no_answer_or_failed(code: int) -> str:
    return "no_answer" if code in NO_ANSWER_CODES else "failed"


def on_leg_ringing(conv: Conversation, role: str) -> Actions:
    """A current leg rings (first provisional answer with a To tag)."""
    if role == "agent":
        return [EmitEvent(EventType.agent_ringing, {"agent_uri": conv.agent.uri})]
    return []


def on_leg_answered(conv: Conversation, role: str) -> Actions:
    """A current leg answered (200 OK confirmed)."""
    if role == "agent":
        return _agent_answered(conv)
    if role == "super":
        joined = {"mode": conv.agent.super_mode, "uri": conv.agent.super_uri}
        return [EmitEvent(EventType.supervisor_joined, joined), Rewire()]
    if role == "consult":
        consult = conv.consult
        if consult is None:
            return [DropLeg("consult", "no_consultation")]
        consult.answered = True
        consult.deadline = None
        return [EmitEvent(EventType.consult_answered, consult.facts()), Rewire()]
    return []


def _agent_answered(conv: Conversation) -> Actions:
    conv.clock.ring_over()
    conv.answered = True
    agent = conv.agent
    if conv.direction == "out":
        answered = {"agent_uri": agent.uri, "agent_id": agent.id}
        return [EmitEvent(EventType.agent_answered, answered), DialCustomer()]
    who = {"agent_uri": agent.uri, "agent_id": agent.id, "queue": conv.routing.queue}
    first: EmitEvent
    if conv.state == CallPhase.transferring:
        first = EmitEvent(EventType.transferred, {"kind": "number", "to": agent.uri})
    else:
        first = EmitEvent(EventType.agent_answered, who)
    conv.state = CallPhase.connected
    return [first, StopAnnouncements(), Rewire(), EmitEvent(EventType.bridged, dict(who))]


def on_media_ready(conv: Conversation, role: str, *, first: bool, now: float) -> Actions:
    """A current leg's audio is active (``first``: not a re-negotiation); ``now`` monotonic."""
    actions: Actions = []
    caller = role == "caller" and first
    if caller and conv.direction == "in":
        actions += [StartRecording(), *_menu_start(conv, now)]
    elif caller and conv.direction == "out" and conv.survey:
        conv.answered = True
        conv.outcome = "answered"  # whatever the customer keys, they were reached
        conv.state = CallPhase.menu
        actions += [StartRecording(), *_menu_start(conv, now)]
    elif caller and conv.direction == "out":
        conv.answered = True
        bridged = {"agent_uri": conv.agent.uri, "number": conv.caller}
        actions.append(EmitEvent(EventType.bridged, bridged))
        conv.state = CallPhase.connected
    elif role == "agent" and first and conv.direction == "out":
        actions.append(StartRecording())
    return [*actions, Rewire()]


def _menu_start(conv: Conversation, now: float) -> Actions:
    assert conv.runner is not None, "a call in the menu has a menu runner"
    return [RunMenu(tuple(conv.runner.start(now)))]


def on_digit(conv: Conversation, digit: str, method: int, *, now: float, at: float) -> Actions:
    """The caller keyed ``digit`` (``at``: wall clock it arrived; ``now`` monotonic). In the
    menu the runner takes it; elsewhere it is only reported. The digit's own event carries
    the moment it arrived (latency figures)."""
    if conv.clock.closed:
        return []
    if conv.state != CallPhase.menu or conv.runner is None:
        keyed = {"digit": digit, "method": method}
        return [EmitEvent(EventType.digit_received, keyed, conv.state.value, at=at)]
    menu_actions = conv.runner.digit(digit, now)
    actions: Actions = []
    first = menu_actions[0] if menu_actions else None
    if isinstance(first, Emit) and first.type == EventType.digit_received:
        keyed = {**first.data, "method": method}
        actions.append(EmitEvent(EventType.digit_received, keyed, first.node, at=at))
        menu_actions = menu_actions[1:]
    return [*actions, RunMenu(tuple(menu_actions))]


def on_leg_gone(
    conv: Conversation, gone: LegGone, *, now: float, short_abandon_seconds: float
) -> Actions:
    """What the call does when one of its current legs ended."""
    if conv.clock.closed:
        return []
    if gone.role == "caller":
        return _caller_gone(conv, gone, now, short_abandon_seconds)
    if gone.role == "agent":
        return _agent_gone(conv, gone)
    if gone.role == "super":
        conv.agent.supervisor_left()
        return [Rewire()]
    if gone.role == "consult" and conv.consult is not None and not gone.intentional:
        why = consult_failure(conv.consult.answered, gone.code)
        return [ConsultEnd(why, code=gone.code)]
    return []


def _caller_gone(
    conv: Conversation, gone: LegGone, now: float, short_abandon_seconds: float
) -> Actions:
    if conv.direction == "out" and not gone.confirmed:
        reason = f"customer not reached: {gone.code} {gone.reason}"
        return [
            EmitEvent(EventType.command_failed, {"command": "originate", "reason": reason}),
            EndCall("customer_unreachable", customer_unreachable_outcome(gone.code)),
        ]
    actions: Actions = [EmitEvent(EventType.caller_hung_up, {"state": conv.state.value})]
    # (a consultation in progress ends with the call: ending the call reports it)
    if conv.state == CallPhase.waiting and conv.outcome in LEAVING_OUTCOMES:
        actions.append(EndCall("caller_hung_up", conv.outcome))
    elif conv.state in (CallPhase.waiting, CallPhase.reserved):
        waited = conv.routing.waited(now)
        abandoned = {"queue": conv.routing.queue, "waited": waited}
        actions.append(EmitEvent(EventType.abandoned, abandoned))
        short = waited < short_abandon_seconds
        actions.append(EndCall("caller_hung_up", "short_abandoned" if short else "abandoned"))
    elif conv.answered:
        actions.append(EndCall("caller_hung_up", conv.outcome or "answered"))
    else:
        actions.append(EndCall("caller_hung_up", conv.outcome or "menu_hangup"))
    return actions


def _agent_gone(conv: Conversation, gone: LegGone) -> Actions:
    if gone.intentional:
        return []  # whoever hung it up reported it
    actions: Actions = []
    if conv.consult is not None:
        if conv.consult.answered:
            # The agent put the phone down while talking to the target: as on any PBX,
            # that hands the caller over (an attended transfer by hang-up).
            return [ConsultComplete(by="agent_hung_up")]
        actions.append(ConsultEnd("agent_hung_up", reconnect=False))
    if not gone.confirmed:
        if conv.direction == "out":
            detail = f"{gone.code} {gone.reason}".strip()
            return [*actions, AgentMissed(detail), EndCall("agent_unreachable", "failed")]
        reason = "rejected" if gone.code >= 400 else f"{gone.code} {gone.reason}"
        return [*actions, AgentMissed(reason)]
    return [
        *actions,
        EmitEvent(EventType.agent_hung_up, {"agent_uri": conv.agent.uri}),
        EndCall("agent_hung_up", conv.outcome or "answered"),
    ]


def on_dial_failed(
    conv: Conversation, role: str, detail: str, *, legs: LegsView, wall_now: float
) -> Actions:
    """A ``Dial`` could not even be placed (pjsua2 refused the INVITE)."""
    failure = f"dial failed: {detail}"
    if role == "agent" and conv.direction == "out" and conv.state == CallPhase.originating:
        return [
            CommandRefused(failure),
            *agent_missed(conv, failure),
            EndCall("agent_unreachable", "failed"),
        ]
    if role == "agent":
        return agent_missed(conv, failure)
    if role == "consult":
        agent_present = "agent" in legs.roles
        return consult_ended(
            conv, "dial_failed", detail=detail, agent_present=agent_present, wall_now=wall_now
        )
    if role == "super":
        conv.agent.supervisor_left()  # their phone could not even be dialled
        return [CommandRefused(failure)]
    reason = f"customer not reached: {failure}"  # the customer's leg of an outbound call
    return [
        EmitEvent(EventType.command_failed, {"command": "originate", "reason": reason}),
        EndCall("customer_unreachable", "failed"),
    ]
