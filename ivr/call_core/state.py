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
class Conversation:
    call_id: str
    direction: str  # in / out
    caller: str
    did: str
    started: float = 0.0  # wall clock
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
    # paused so far; the file holds the call minus the paused spans (``commands.py``)
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


def recording_offset(conv: Conversation, now: float) -> float:
    """Seconds of audio in the recording at ``now``: the recorder only writes while something
    is connected to it, so a paused span adds nothing to the file."""
    paused = conv.recording_paused_total
    if conv.recording_paused:
        paused += now - conv.recording_paused_at
    return round(max(0.0, now - conv.recording_started_at - paused), 3)
