"""The call's own decisions, free of pjsua2: what a slot does when a leg ends or a timer
fires, given only the conversation's state. Like ``ivr/menu.py``: state and a clock in,
frozen actions out; the slot (``ivr/slot.py``) carries the actions out with pjsua2.

Every function here is unit-tested without SIP (tests/engine/test_call_core.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from callcenter.streams import CommandType, EventType
from ivr.menu import Action as MenuAction
from ivr.menu import MenuRunner
from ivr.prompts import PromptFile

# Outcomes a `play` command may give a waiting caller: routing is done with them (a call-back
# confirmed, the no-agents message), so leaving is not abandoning.
LEAVING_OUTCOMES = ("callback", "closed")
# SIP answers to the customer's INVITE -> call_ended outcome (ticketing/consumers.py)
BUSY_CODES = (486, 600)
NO_ANSWER_CODES = (408, 480, 487)
DECLINE_CODES = (486, 600, 603)  # a consultation target's phone said busy / declined
# After the call ended, legs that never confirmed their end are given up on this much later.
CLOSE_GIVE_UP_SECONDS = 5.0
MEDIA_CHECK_EVERY = 1.0  # seconds between two looks at the caller's RTP counters


class CallPhase(StrEnum):
    """Where a call is. An ended call keeps its last phase; ``close_at`` marks the end."""

    menu = "menu"  # the caller walks the voice menu (or a survey asks for its key)
    originating = "originating"  # an outbound call: the agent's phone, then the customer's
    queued = "queued"  # waiting in a queue for routing to offer it
    offering = "offering"  # an agent's phone rings for it
    transferring = "transferring"  # a transfer to an outside number rings
    bridged = "bridged"  # the caller talks to an agent (or the transfer target)


@dataclass
class Consult:
    """A consultation in progress: the caller on hold, a new leg (role "consult") to a
    colleague or a configured number; complete hands the caller over, cancel comes back."""

    kind: str  # agent / number
    to: str  # what the agent asked for: the agent's URI, or the transfer target's name
    uri: str
    agent_id: int | None
    deadline: float | None  # ring timeout (monotonic); None once answered
    started: float = field(default_factory=time.time)
    answered: bool = False
    held_caller: bool = False  # the consultation put the caller on hold (undone at its end)

    def facts(self) -> dict[str, Any]:
        return {"kind": self.kind, "to": self.to, "target_uri": self.uri, "agent_id": self.agent_id}

    def handed_over(self, *, answered: bool, by: str) -> dict[str, Any]:
        """The ``transferred`` event's data when the caller is handed over to the target."""
        return {
            "kind": self.kind,
            "to": self.to if self.kind == "number" else self.uri,
            "agent_id": self.agent_id,
            "agent_uri": self.uri,
            "consult": True,
            "answered": answered,
            "by": by,
        }


@dataclass
class Conversation:
    call_id: str
    direction: str  # in / out
    caller: str
    did: str
    started: float = field(default_factory=time.time)
    state: CallPhase = CallPhase.menu
    runner: MenuRunner | None = None
    queue: str = ""
    priority: int = 0
    skills: tuple[str, ...] = ()
    queued_at: float = 0.0
    answered: bool = False
    held: bool = False
    outcome: str = ""
    end_reason: str = ""
    agent_uri: str = ""
    agent_id: int | None = None
    offer_deadline: float | None = None
    super_mode: str = ""
    super_uri: str = ""
    recording_id: str = ""
    recording_path: str = ""
    recording_paused: bool = False
    # PCI pause: when the recorder started (monotonic), the pause in progress, the seconds
    # paused so far; the file holds the call minus the paused spans (``_recording_pause``)
    recording_started_at: float = 0.0
    recording_paused_at: float = 0.0
    recording_paused_total: float = 0.0
    prompt_until: float = 0.0
    close_at: float | None = None
    ended_at: float | None = None  # wall clock when the call ended (the BYE), before clean-up
    max_until: float = 0.0
    originate: dict[str, Any] = field(default_factory=dict)
    survey: bool = False  # an automatic survey: no agent, the menu runner asks for one key
    prompts: dict[str, PromptFile] = field(default_factory=dict)  # this call's own prompts
    consult: Consult | None = None
    hangup_after_prompt: bool = False  # a closing message (play with hangup_after) is playing


# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class EmitEvent:
    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    node: str = ""


@dataclass(frozen=True)
class EndCall:
    reason: str
    outcome: str


@dataclass(frozen=True)
class AgentMissed:
    """The offered phone did not take the call: report it, the caller waits again."""

    reason: str


@dataclass(frozen=True)
class WithdrawOffer:
    """Stop the offered agent's ringing phone now (and report the miss)."""

    reason: str


@dataclass(frozen=True)
class HangupLeg:
    role: str


@dataclass(frozen=True)
class ConsultEnd:
    reason: str
    code: int = 0
    reconnect: bool = True


@dataclass(frozen=True)
class ConsultComplete:
    by: str


@dataclass(frozen=True)
class StopPrompt:
    pass


@dataclass(frozen=True)
class RunMenu:
    """Menu actions to carry out (the runner's own, see ``ivr/menu.py``)."""

    actions: tuple[MenuAction, ...]


@dataclass(frozen=True)
class Rewire:
    """Connect the conference ports anew from ``wanted_edges``."""


@dataclass(frozen=True)
class CheckMedia:
    """Look at the caller's RTP counters (a caller gone without BYE sends nothing)."""

    at: float  # the tick's clock (monotonic)


@dataclass(frozen=True)
class Finish:
    """The call's legs are gone (or given up on): report the recording and call_ended."""

    forced: bool = False


@dataclass(frozen=True)
class DropLeg:
    """Hang up the leg in ``role`` on purpose (it leaves its role at once)."""

    role: str
    reason: str


@dataclass(frozen=True)
class StartRecording:
    pass


@dataclass(frozen=True)
class DialCustomer:
    """An outbound call's agent answered (or a survey starts): ring the customer."""


@dataclass(frozen=True)
class ScheduleAnnouncements:
    """The caller waits (again): position announcements per the queue's schedule."""


@dataclass(frozen=True)
class StopAnnouncements:
    pass


@dataclass(frozen=True)
class CommandRefused:
    """The command cannot be carried out: routing gets ``command_failed`` with the reason."""

    reason: str


@dataclass(frozen=True)
class DropAgent:
    """The agent's leg (and a supervisor following it) leave the call."""

    reason: str


@dataclass(frozen=True)
class Requeue:
    queue: str
    requeued_from: str


CallAction = (
    EmitEvent
    | DropLeg
    | StartRecording
    | DialCustomer
    | ScheduleAnnouncements
    | StopAnnouncements
    | CommandRefused
    | DropAgent
    | Requeue
    | EndCall
    | AgentMissed
    | WithdrawOffer
    | HangupLeg
    | ConsultEnd
    | ConsultComplete
    | StopPrompt
    | RunMenu
    | Rewire
    | CheckMedia
    | Finish
)
Actions = list[CallAction]


# ---------------------------------------------------------------- decisions


def optional_int(value: object) -> int | None:
    """An id from a command's data: None when absent, empty or not a number."""
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def forced_outcome(conv: Conversation) -> str:
    """The outcome of a call we end ourselves (timeout, command, dead media)."""
    return conv.outcome or ("answered" if conv.answered else "failed")


def customer_unreachable_outcome(code: int) -> str:
    """An outbound call's customer never answered: the SIP answer says why."""
    if code in BUSY_CODES:
        return "busy"
    if code in NO_ANSWER_CODES:
        return "no_answer"
    return "failed"


def consult_failure(answered: bool, code: int) -> str:
    """Why a consultation target's leg ended on its own."""
    if answered:
        return "target_hung_up"
    if code in DECLINE_CODES:
        return "declined"
    if code in NO_ANSWER_CODES:
        return "no_answer"
    return "failed"


def agent_missed(conv: Conversation, reason: str) -> list[CallAction]:
    """The offered phone did not take the call: an inbound caller waits in the queue again
    (routing offers the call to someone else); an outbound call's caller decides itself."""
    actions: list[CallAction] = [
        EmitEvent(
            EventType.agent_missed,
            {
                "agent_uri": conv.agent_uri,
                "agent_id": conv.agent_id,
                "reason": reason,
                "queue": conv.queue,
            },
        )
    ]
    conv.offer_deadline = None
    if conv.direction == "in" and conv.state in (CallPhase.offering, CallPhase.transferring):
        conv.state = CallPhase.queued
        actions.append(ScheduleAnnouncements())
    return [*actions, Rewire()]


def enqueue(
    conv: Conversation,
    queue_code: str,
    priority: int,
    skills: tuple[str, ...],
    *,
    requeued_from: str = "",
    wall_now: float,
) -> list[CallAction]:
    """The call waits in ``queue_code`` (first time, or moved from ``requeued_from``); its
    waiting time counts from the first time it was queued."""
    runner = conv.runner
    conv.queue, conv.priority, conv.skills = queue_code, priority, skills
    if not conv.queued_at:
        conv.queued_at = wall_now
    conv.state = CallPhase.queued
    queued = {
        "queue": queue_code,
        "priority": priority,
        "skills": list(skills),
        "collected": dict(runner.collected) if runner else {},
        "menu_path": list(runner.menu_path) if runner else [],
        "caller": conv.caller,
        "did": conv.did,
        "queued_epoch": conv.queued_at,
        **({"previous_queue": requeued_from} if requeued_from else {}),
    }
    node = runner.node if runner else ""
    return [EmitEvent(EventType.call_queued, queued, node), ScheduleAnnouncements(), Rewire()]


def consult_ended(
    conv: Conversation,
    reason: str,
    *,
    code: int = 0,
    detail: str = "",
    reconnect: bool = True,
    agent_present: bool,
    wall_now: float,
) -> list[CallAction]:
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
    actions: list[CallAction] = [
        DropLeg("consult", reason),
        Rewire(),
        EmitEvent(EventType.consult_ended, ended),
    ]
    if resume:
        actions.append(EmitEvent(EventType.unheld, {"reason": "consult_ended"}))
    return actions


def on_leg_answered(conv: Conversation, role: str) -> list[CallAction]:
    """A current leg answered (200 OK confirmed)."""
    if role == "agent":
        return _agent_answered(conv)
    if role == "super":
        joined = {"mode": conv.super_mode, "uri": conv.super_uri}
        return [EmitEvent(EventType.supervisor_joined, joined), Rewire()]
    if role == "consult":
        consult = conv.consult
        if consult is None:
            return [DropLeg("consult", "no_consultation")]
        consult.answered = True
        consult.deadline = None
        return [EmitEvent(EventType.consult_answered, consult.facts()), Rewire()]
    return []


def _agent_answered(conv: Conversation) -> list[CallAction]:
    conv.offer_deadline = None
    conv.answered = True
    if conv.direction == "out":
        answered = {"agent_uri": conv.agent_uri, "agent_id": conv.agent_id}
        return [EmitEvent(EventType.agent_answered, answered), DialCustomer()]
    who = {"agent_uri": conv.agent_uri, "agent_id": conv.agent_id, "queue": conv.queue}
    first: EmitEvent
    if conv.state == CallPhase.transferring:
        first = EmitEvent(EventType.transferred, {"kind": "number", "to": conv.agent_uri})
    else:
        first = EmitEvent(EventType.agent_answered, who)
    conv.state = CallPhase.bridged
    return [first, StopAnnouncements(), Rewire(), EmitEvent(EventType.bridged, dict(who))]


def on_media_ready(conv: Conversation, role: str, *, first: bool, now: float) -> list[CallAction]:
    """A current leg's audio is active (``first``: not a re-negotiation); ``now`` monotonic."""
    actions: list[CallAction] = []
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
        bridged = {"agent_uri": conv.agent_uri, "number": conv.caller}
        actions.append(EmitEvent(EventType.bridged, bridged))
        conv.state = CallPhase.bridged
    elif role == "agent" and first and conv.direction == "out":
        actions.append(StartRecording())
    return [*actions, Rewire()]


def _menu_start(conv: Conversation, now: float) -> list[CallAction]:
    assert conv.runner is not None, "a call in the menu has a menu runner"
    return [RunMenu(tuple(conv.runner.start(now)))]


@dataclass(frozen=True)
class LegGone:
    """A leg in its role ended (pjsua said DISCONNECTED), as the core needs to know it."""

    role: str
    confirmed: bool  # it had answered
    code: int
    reason: str
    intentional: bool  # we hung it up ourselves (and reported it then)


def on_leg_gone(
    conv: Conversation, gone: LegGone, *, now: float, short_abandon_seconds: float
) -> list[CallAction]:
    """What the call does when one of its current legs ended. May clear ``super_mode``."""
    if conv.close_at is not None:
        return []
    if gone.role == "caller":
        return _caller_gone(conv, gone, now, short_abandon_seconds)
    if gone.role == "agent":
        return _agent_gone(conv, gone)
    if gone.role == "super":
        conv.super_mode = ""
        return [Rewire()]
    if gone.role == "consult" and conv.consult is not None and not gone.intentional:
        why = consult_failure(conv.consult.answered, gone.code)
        return [ConsultEnd(why, code=gone.code)]
    return []


def _caller_gone(
    conv: Conversation, gone: LegGone, now: float, short_abandon_seconds: float
) -> list[CallAction]:
    if conv.direction == "out" and not gone.confirmed:
        reason = f"customer not reached: {gone.code} {gone.reason}"
        return [
            EmitEvent(EventType.command_failed, {"command": "originate", "reason": reason}),
            EndCall("customer_unreachable", customer_unreachable_outcome(gone.code)),
        ]
    actions: list[CallAction] = [EmitEvent(EventType.caller_hung_up, {"state": conv.state.value})]
    # (a consultation in progress ends with the call: ending the call reports it)
    if conv.state == CallPhase.queued and conv.outcome in LEAVING_OUTCOMES:
        actions.append(EndCall("caller_hung_up", conv.outcome))
    elif conv.state in (CallPhase.queued, CallPhase.offering):
        waited = round(now - conv.queued_at, 3)
        actions.append(EmitEvent(EventType.abandoned, {"queue": conv.queue, "waited": waited}))
        short = waited < short_abandon_seconds
        actions.append(EndCall("caller_hung_up", "short_abandoned" if short else "abandoned"))
    elif conv.answered:
        actions.append(EndCall("caller_hung_up", conv.outcome or "answered"))
    else:
        actions.append(EndCall("caller_hung_up", conv.outcome or "menu_hangup"))
    return actions


def _agent_gone(conv: Conversation, gone: LegGone) -> list[CallAction]:
    if gone.intentional:
        return []  # whoever hung it up reported it
    actions: list[CallAction] = []
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
        EmitEvent(EventType.agent_hung_up, {"agent_uri": conv.agent_uri}),
        EndCall("agent_hung_up", conv.outcome or "answered"),
    ]


@dataclass(frozen=True)
class LegsView:
    """What the timers need to know of the legs (the slot owns them)."""

    any_left: bool = False  # legs in a role, or hung up and not yet DISCONNECTED
    agent_ringing: bool = False  # an agent leg exists and has not answered
    customer_ringing: bool = False  # a caller leg exists and has not answered
    prompt_playing: bool = False


def on_tick(
    conv: Conversation, now: float, legs: LegsView, *, next_media_check: float
) -> list[CallAction]:
    """The call's timers at ``now`` (monotonic). Clears the deadlines it acts on."""
    if conv.close_at is not None:
        return _closing(conv, now, legs)
    actions = _prompt_end(conv, now, legs)
    if actions and isinstance(actions[-1], EndCall):
        return actions
    if conv.state == CallPhase.menu and conv.runner is not None:
        menu_actions = conv.runner.tick(now)
        if menu_actions:
            actions.append(RunMenu(tuple(menu_actions)))
    actions += _ring_timeouts(conv, now, legs)
    if now >= conv.max_until:
        actions.append(EndCall("max_duration", forced_outcome(conv)))
    elif now >= next_media_check:
        actions.append(CheckMedia(now))
    return actions


def _closing(conv: Conversation, now: float, legs: LegsView) -> list[CallAction]:
    assert conv.close_at is not None
    if now >= conv.close_at and not legs.any_left:
        return [Finish()]
    if now >= conv.close_at + CLOSE_GIVE_UP_SECONDS:
        return [Finish(forced=True)]  # a leg never confirmed its end: give up on it
    return []


def _prompt_end(conv: Conversation, now: float, legs: LegsView) -> list[CallAction]:
    if not (conv.prompt_until and now >= conv.prompt_until and legs.prompt_playing):
        return []
    if conv.hangup_after_prompt:  # a closing message: the caller has heard it
        return [StopPrompt(), EndCall("message_played", conv.outcome or "failed")]
    return [StopPrompt()]


def _ring_timeouts(conv: Conversation, now: float, legs: LegsView) -> list[CallAction]:
    actions: list[CallAction] = []
    if conv.offer_deadline is not None and now >= conv.offer_deadline:
        conv.offer_deadline = None
        if legs.agent_ringing:
            actions.append(WithdrawOffer("ring_timeout"))
        elif conv.direction == "out" and legs.customer_ringing:
            actions.append(HangupLeg("caller"))  # the customer did not answer
    consult = conv.consult
    if consult is not None and consult.deadline is not None and now >= consult.deadline:
        actions.append(ConsultEnd("no_answer"))
    return actions


# ---------------------------------------------------------------- commands

BUSY_WITH_CONSULT = "a consultation is in progress: complete or cancel it"


def on_command(
    conv: Conversation,
    type_: str,
    data: dict[str, Any],
    *,
    agent_ringing: bool,
    queues: Container[str],
    now: float | None = None,
) -> list[CallAction] | None:
    """The commands decided without SIP (None: not one of them, the slot handles it);
    ``now`` monotonic (the recording pause's offsets)."""
    if type_ in (CommandType.pause_recording, CommandType.resume_recording):
        moment = time.monotonic() if now is None else now
        return _recording_pause(
            conv, type_ == CommandType.pause_recording, moment, optional_int(data.get("agent_id"))
        )
    handler = _COMMANDS.get(type_)
    if handler is None:
        return None
    return handler(conv, data, agent_ringing, queues)


def _hangup(conv: Conversation, data: dict[str, Any], _r: bool, _q: Container[str]) -> Actions:
    by_agent = optional_int(data.get("agent_id"))
    if conv.consult is not None and by_agent is not None and by_agent == conv.consult.agent_id:
        # the consultation target's desktop hangs up: their part ends, not the call
        return [ConsultEnd("target_hung_up")]
    return [EndCall("command_hangup", forced_outcome(conv))]


def _hold(conv: Conversation, _d: dict[str, Any], _r: bool, _q: Container[str]) -> Actions:
    if conv.consult is not None:
        return [CommandRefused(BUSY_WITH_CONSULT)]
    if conv.state != CallPhase.bridged or conv.held:
        return [CommandRefused("only a connected call can be held")]
    conv.held = True
    return [Rewire(), EmitEvent(EventType.held)]


def _unhold(conv: Conversation, _d: dict[str, Any], _r: bool, _q: Container[str]) -> Actions:
    if conv.consult is not None:
        return [CommandRefused(BUSY_WITH_CONSULT)]
    if not conv.held:
        return [CommandRefused("call is not on hold")]
    conv.held = False
    return [Rewire(), EmitEvent(EventType.unheld)]


def recording_offset(conv: Conversation, now: float) -> float:
    """Seconds of audio in the recording at ``now``: the recorder only writes while something
    is connected to it, so a paused span adds nothing to the file."""
    paused = conv.recording_paused_total
    if conv.recording_paused:
        paused += now - conv.recording_paused_at
    return round(max(0.0, now - conv.recording_started_at - paused), 3)


def _recording_pause(conv: Conversation, pause: bool, now: float, by: int | None) -> Actions:
    """PCI pause/resume: the recorder is disconnected (``ivr/wiring.py``), so the span is
    absent from the file; the events mark where, for the recording's metadata."""
    if not conv.recording_id:
        return [CommandRefused("this call is not being recorded")]
    if conv.close_at is not None:
        return [CommandRefused("the call has ended")]
    if pause == conv.recording_paused:
        return [
            CommandRefused(
                "the recording is already paused" if pause else "the recording is not paused"
            )
        ]
    offset = recording_offset(conv, now)
    data: dict[str, Any] = {"recording_id": conv.recording_id, "offset_s": offset, "by": by}
    if pause:
        conv.recording_paused, conv.recording_paused_at = True, now
        return [Rewire(), EmitEvent(EventType.recording_paused, data)]
    span = round(now - conv.recording_paused_at, 3)
    conv.recording_paused, conv.recording_paused_total = False, conv.recording_paused_total + span
    return [Rewire(), EmitEvent(EventType.recording_resumed, {**data, "paused_s": span})]


def _cancel_offer(
    conv: Conversation, data: dict[str, Any], agent_ringing: bool, _q: Container[str]
) -> Actions:
    """Routing withdrew an offer (its ring timer fired before ours): stop that phone."""
    agent_id = optional_int(data.get("agent_id"))
    reason = str(data.get("reason") or "withdrawn")
    consult = conv.consult
    if consult is not None and not consult.answered and consult.agent_id == agent_id:
        return [ConsultEnd("no_answer")]
    offered = conv.state in (CallPhase.offering, CallPhase.originating)
    if agent_ringing and offered and conv.agent_id == agent_id:
        return [WithdrawOffer(reason)]
    return [CommandRefused(f"no phone is ringing for agent {agent_id} on this call")]


def _requeue(conv: Conversation, data: dict[str, Any], _r: bool, queues: Container[str]) -> Actions:
    target = str(data.get("queue", ""))
    if target not in queues:
        return [CommandRefused(f"queue {target!r} is not defined")]
    if conv.state not in (CallPhase.queued, CallPhase.offering):
        return [CommandRefused(f"call is {conv.state.value}, not waiting")]
    conv.offer_deadline = None
    return [DropAgent("requeued"), Requeue(target, requeued_from=conv.queue)]


_COMMANDS: dict[str, Callable[[Conversation, dict[str, Any], bool, Container[str]], Actions]] = {
    CommandType.hangup: _hangup,
    CommandType.hold: _hold,
    CommandType.unhold: _unhold,
    CommandType.cancel_offer: _cancel_offer,
    CommandType.requeue: _requeue,
}
