"""The call's state (``Conversation``, ``Consult``, ``CallPhase``) and what the core reads
besides it: the slot's configuration (``CallSetup``), its legs (``LegsView``) and a command
(``CommandIn``). No pjsua2, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter.call_phases import CallPhase
from config.schemas import MenuFile, Queue
from ivr.leg_uris import LegUris
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
CLOSE_PUMP_SECONDS = 0.3  # pjmedia writes the WAV header shortly after the recorder is freed
MEDIA_CHECK_EVERY = 1.0  # seconds between two looks at the caller's RTP counters
# The wheel's PJSUA_MAX_CALLS: a 5th makeCall raises PJ_ETOOMANY. Legs still hanging up
# (CANCEL sent, no final answer yet) count until pjsua reports them DISCONNECTED.
MAX_LEGS = 4
DEFAULT_RING_SECONDS = 15  # an agent's phone rings this long when the queue says nothing
TRANSFER_NUMBER_RING_SECONDS = 30  # a blind transfer to an outside number rings this long
CONSULT_NUMBER_RING_SECONDS = 30  # a configured number rings this long for a consultation
CUSTOMER_RING_SECONDS = 45  # an outbound call rings the customer this long
ORIGINATE_AGENT_RING_SECONDS = 30  # an originate without ring_timeout rings the agent this long
BUSY_WITH_CONSULT = "a consultation is in progress: complete or cancel it"


@dataclass
class Consult:
    """A consultation in progress: the caller on hold, a new leg (role "consult") to a
    colleague or a configured number; complete hands the caller over, cancel comes back."""

    kind: str  # agent / number
    to: str  # what the agent asked for: the agent's URI, or the transfer target's name
    uri: str
    agent_id: int | None
    deadline: float | None  # ring timeout (monotonic); None once answered
    started: float = 0.0  # wall clock
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
class RoutingAsk:
    """What the call asks of routing: the queue it waits in, its priority and skills, and
    when it first started waiting (a requeue keeps that moment)."""

    queue: str = ""
    priority: int = 0
    skills: tuple[str, ...] = ()
    queued_at: float = 0.0  # wall clock; 0: never queued

    def enqueue(
        self, queue: str, priority: int, skills: tuple[str, ...], *, wall_now: float
    ) -> None:
        """Wait in ``queue`` (first time, or moved): waiting counts from the first time."""
        self.queue, self.priority, self.skills = queue, priority, skills
        if not self.queued_at:
            self.queued_at = wall_now

    def call_back_from(self, queue: str) -> None:
        """The caller asked to be called back by ``queue`` instead of waiting in it."""
        self.queue = queue

    def waited(self, wall_now: float) -> float:
        return round(wall_now - self.queued_at, 3)


@dataclass
class AgentSide:
    """Whose phone the call is offered to or bridged with, and a supervisor following that
    agent (``super_mode``: "", listen, whisper or barge)."""

    uri: str = ""
    id: int | None = None
    super_mode: str = ""
    super_uri: str = ""

    def assign(self, uri: str, agent_id: int | None) -> None:
        """The call is offered (or handed over) to ``uri``."""
        self.uri, self.id = uri, agent_id

    def left(self) -> None:
        """The agent leaves the call, and a supervisor following them with them. The URI
        and id stay: the events that follow (a miss, a hang-up) still name the agent."""
        self.supervisor_left()

    def supervise(self, mode: str, uri: str) -> None:
        """A supervisor's phone is dialled to join in ``mode``."""
        self.super_mode, self.super_uri = mode, uri

    def switch_mode(self, mode: str) -> None:
        """The supervisor on the line switches between listen, whisper and barge."""
        self.super_mode = mode

    def supervisor_left(self) -> None:
        """The supervisor's leg ended (or never got through); ``super_uri`` is kept."""
        self.super_mode = ""

    @property
    def supervised(self) -> bool:
        return bool(self.super_mode)


@dataclass
class Recording:
    """The call's recording and its PCI pauses. The recorder only writes while something is
    connected to it, so the file holds the call minus the paused spans; ``offset`` is where
    in the file a moment falls. Times are monotonic."""

    id: str = ""  # "": the call is not being recorded
    path: str = ""
    paused: bool = False
    started_at: float = 0.0
    paused_at: float = 0.0  # when the pause in progress began
    paused_total: float = 0.0  # seconds paused before the pause in progress

    @property
    def active(self) -> bool:
        return bool(self.id)

    def start(self, recording_id: str, path: str, *, now: float) -> None:
        self.id, self.path, self.started_at = recording_id, path, now

    def pause(self, now: float) -> None:
        self.paused, self.paused_at = True, now

    def resume(self, now: float) -> float:
        """End the pause in progress; its length in seconds."""
        span = round(now - self.paused_at, 3)
        self.paused, self.paused_total = False, self.paused_total + span
        return span

    def offset(self, now: float) -> float:
        """Seconds of audio in the recording at ``now``."""
        paused = self.paused_total
        if self.paused:
            paused += now - self.paused_at
        return round(max(0.0, now - self.started_at - paused), 3)


@dataclass
class Clock:
    """The call's deadlines (monotonic) and its end. ``ring_until``: the phone being rung
    for the call (an offered agent, a transfer's number, an outbound call's customer) gives
    up then; ``close_at``: the call ended and its legs are expected gone by then."""

    max_until: float = 0.0
    prompt_until: float = 0.0  # 0: no prompt playing
    ring_until: float | None = None
    close_at: float | None = None
    ended_at: float | None = None  # wall clock when the call ended (the BYE), before clean-up

    @property
    def closed(self) -> bool:
        return self.close_at is not None

    def ring(self, until: float | None) -> None:
        self.ring_until = until

    def ring_over(self) -> None:
        """The phone answered, gave up or was withdrawn: no ring timeout any more."""
        self.ring_until = None

    def prompt(self, until: float) -> None:
        self.prompt_until = until

    def prompt_over(self) -> None:
        self.prompt_until = 0.0

    def close(self, *, close_at: float, wall_now: float) -> None:
        """The call ends at ``wall_now``; its legs have until ``close_at`` to go."""
        self.close_at, self.ended_at = close_at, wall_now


@dataclass(frozen=True)
class OriginateRequest:
    """What an outbound call was asked for, as its ``originated`` event reports it."""

    purpose: str = ""  # callback / click_to_call
    ticket_id: int | None = None
    callback_id: int | None = None
    survey: bool = False  # an automatic survey: no agent, the menu runner asks for one key

    @classmethod
    def of(cls, data: Mapping[str, Any], *, survey: bool) -> OriginateRequest:
        return cls(
            purpose=str(data.get("purpose") or ""),
            ticket_id=optional_int(data.get("ticket_id")),
            callback_id=optional_int(data.get("callback_id")),
            survey=survey,
        )


@dataclass
class Conversation:
    """One call on a slot: who and what it is, its phase, and one record per concern
    (routing's ask, the agent side, the recording, the clock), each changed through its
    own methods."""

    call_id: str
    direction: str  # in / out
    caller: str
    did: str
    started: float = 0.0  # wall clock
    state: CallPhase = CallPhase.menu
    answered: bool = False
    held: bool = False
    outcome: str = ""
    end_reason: str = ""
    hangup_after_prompt: bool = False  # a closing message (play with hangup_after) is playing
    consult: Consult | None = None
    runner: MenuRunner | None = None
    prompts: dict[str, PromptFile] = field(default_factory=dict)  # this call's own prompts
    originate: OriginateRequest | None = None  # an outbound call's request
    routing: RoutingAsk = field(default_factory=RoutingAsk)
    agent: AgentSide = field(default_factory=AgentSide)
    recording: Recording = field(default_factory=Recording)
    clock: Clock = field(default_factory=Clock)

    @property
    def survey(self) -> bool:
        """An automatic survey: no agent, the menu runner asks for one key."""
        return self.originate is not None and self.originate.survey


@dataclass(frozen=True)
class CallSetup:
    """What the core reads of the slot's configuration (one generation of it)."""

    uris: LegUris  # where legs are dialled; its telephony has the dial plan and the trunk
    queues: Mapping[str, Queue]
    prompts: Mapping[str, PromptFile]
    menu: MenuFile
    dids: Mapping[str, str]  # DID number -> the menu node its callers start at
    max_call_seconds: float
    short_abandon_seconds: float

    @property
    def durations(self) -> dict[str, float]:
        return {key: prompt.duration for key, prompt in self.prompts.items()}

    def ring_seconds(self, queue_code: str, data: Mapping[str, Any]) -> float:
        """An agent's ring time: the command's ``ring_timeout``, else the queue's."""
        queue_cfg = self.queues.get(queue_code)
        default = queue_cfg.ring_timeout_seconds if queue_cfg else DEFAULT_RING_SECONDS
        return float(data.get("ring_timeout") or default)


@dataclass(frozen=True)
class LegsView:
    """What the core needs to know of the legs (the slot owns them)."""

    any_left: bool = False  # legs in a role, or hung up and not yet DISCONNECTED
    agent_ringing: bool = False  # an agent leg exists and has not answered
    customer_ringing: bool = False  # a caller leg exists and has not answered
    prompt_playing: bool = False
    roles: frozenset[str] = frozenset()  # the roles that have a leg now
    lines: int = 0  # legs in a role plus legs still hanging up (at most MAX_LEGS)


@dataclass(frozen=True)
class CommandIn:
    """A command for the call, with what the core reads to decide on it."""

    type: str
    data: Mapping[str, Any]
    legs: LegsView
    setup: CallSetup
    now: float  # monotonic
    wall_now: float


def optional_int(value: object) -> int | None:
    """An id from a command's data: None when absent, empty or not a number."""
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def forced_outcome(conv: Conversation) -> str:
    """The outcome of a call we end ourselves (timeout, command, dead media)."""
    return conv.outcome or ("answered" if conv.answered else "failed")
