"""What the call core asks the slot to do: frozen actions, carried out in order by the slot
(``ivr/slot.py``) against pjsua2, the media and the streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callcenter.streams import EventType
from ivr.menu import Action as MenuAction


@dataclass(frozen=True)
class EmitEvent:
    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    node: str = ""
    at: float | None = None  # wall clock the event happened at (default: when published)


@dataclass(frozen=True)
class ReportStatus:
    """A status line to the supervisor (busy, recording)."""

    status: dict[str, Any]


@dataclass(frozen=True)
class EndCall:
    """End the call (the core's ``end_call`` decides how)."""

    reason: str
    outcome: str


@dataclass(frozen=True)
class TearDown:
    """The call ended: disconnect every port, hang up every leg, free the players."""


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
    """Hang up the leg in ``role`` but leave it in its role (its end ends the call)."""

    role: str


@dataclass(frozen=True)
class DropLeg:
    """Hang up the leg in ``role`` on purpose (it leaves its role at once)."""

    role: str
    reason: str


@dataclass(frozen=True)
class DropAgent:
    """The agent's leg (and a supervisor following it) leave the call."""

    reason: str


@dataclass(frozen=True)
class Dial:
    """A new leg in ``role`` rings ``uri``; if it cannot be placed the slot tells the core
    (``on_dial_failed``)."""

    role: str
    uri: str


@dataclass(frozen=True)
class PromoteConsult:
    """The consultation's leg (and its media) becomes the call's agent leg."""


@dataclass(frozen=True)
class ConsultEnd:
    reason: str
    code: int = 0
    reconnect: bool = True


@dataclass(frozen=True)
class ConsultComplete:
    by: str


@dataclass(frozen=True)
class Play:
    """Replace what the caller hears with these files (``duration`` seconds in all)."""

    paths: tuple[str, ...]
    duration: float


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
class DeferAnnouncement:
    """Another prompt is playing: try the position announcement again shortly."""

    seconds: float = 1.0


@dataclass(frozen=True)
class CommandRefused:
    """The command cannot be carried out: routing gets ``command_failed`` with the reason.
    ``command``/``context``, when set, are what the event names instead of the command's
    own type and data (a blind transfer to an agent reports its offer's refusal as an offer's)."""

    reason: str
    command: str = ""
    context: dict[str, Any] | None = None


CallAction = (
    EmitEvent
    | ReportStatus
    | EndCall
    | TearDown
    | AgentMissed
    | WithdrawOffer
    | HangupLeg
    | DropLeg
    | DropAgent
    | Dial
    | PromoteConsult
    | ConsultEnd
    | ConsultComplete
    | Play
    | StopPrompt
    | RunMenu
    | Rewire
    | CheckMedia
    | Finish
    | StartRecording
    | DialCustomer
    | ScheduleAnnouncements
    | StopAnnouncements
    | DeferAnnouncement
    | CommandRefused
)
Actions = list[CallAction]
