"""The events on the ``{prefix}:events`` stream as typed values: one frozen dataclass per
:class:`~callcenter.streams.EventType`, with the fields its ``data`` carries.

The wire format is :class:`~callcenter.streams.CallEvent`'s and does not change: the
envelope (``type``, ``call_id``, ``slot``, ``node``, ``at``) plus ``data`` as JSON. A class
names the keys of ``data``; :func:`from_wire` reads an entry once into its class, and
:meth:`Event.to_wire` writes exactly the entry it was read from:

- a *required* key (no default: its producers always set it) is always written, ``null``
  included; an entry that lacks one reads it as ``None`` (as ``data.get`` always did) and is
  written back without it;
- an *optional* key (default ``None``) is written only when set: producers leave it out;
- keys a class does not name (a newer producer's) ride along in ``extra``, untouched.

Readers in other languages (``cti/lua/routing.lua`` publishes the routing facts) spell the
names; the enum and these classes are the list they follow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from callcenter.streams import CallEvent, EventType, now_iso

ENVELOPE = ("call_id", "slot", "node", "at")


class InvalidEvent(ValueError):
    """An entry that is not an event of a known type, or whose data is not an object."""


@dataclass(frozen=True, kw_only=True)
class Event:
    """What every event has: the call, the slot and node it came from, and when."""

    TYPE: ClassVar[EventType]
    call_id: str
    slot: str = ""
    node: str = ""
    at: str = field(default_factory=now_iso)
    extra: Mapping[str, Any] = field(default_factory=dict)  # data keys not named here
    # required keys the entry it was read from lacked (read as None, not written back)
    absent: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def type(self) -> EventType:
        return self.TYPE

    def data(self) -> dict[str, Any]:
        """The ``data`` object as it goes on the wire."""
        out: dict[str, Any] = {}
        for f in _data_fields(type(self)):
            value = getattr(self, f.name)
            if value is None and (_optional(f) or f.name in self.absent):
                continue
            out[_wire_name(f)] = value
        out.update(self.extra)
        return out

    def to_call_event(self) -> CallEvent:
        return CallEvent(
            type=self.TYPE.value,
            call_id=self.call_id,
            slot=self.slot,
            node=self.node,
            at=self.at,
            data=self.data(),
        )

    def to_wire(self) -> dict[str, str]:
        return self.to_call_event().to_fields()


def _data_fields(cls: type[Event]) -> tuple[dataclasses.Field[Any], ...]:
    """The fields that are keys of ``data`` (the envelope's are not), in declaration order."""
    found = _FIELDS.get(cls)
    if found is None:
        skip = (*ENVELOPE, "extra", "absent")
        found = _FIELDS[cls] = tuple(f for f in dataclasses.fields(cls) if f.name not in skip)
    return found


_FIELDS: dict[type[Event], tuple[dataclasses.Field[Any], ...]] = {}


def _optional(f: dataclasses.Field[Any]) -> bool:
    return f.default is None


def _wire_name(f: dataclasses.Field[Any]) -> str:
    name: str = f.metadata.get("wire", f.name)
    return name


def _as(wire: str, *, required: bool = False) -> Any:
    """A field whose key on the wire is not the attribute's name (a builtin's, or the
    envelope's ``node``)."""
    if required:
        return field(metadata={"wire": wire})
    return field(default=None, metadata={"wire": wire})


# ---------------------------------------------------------------- the caller's path (engine)


@dataclass(frozen=True, kw_only=True)
class CallArrived(Event):
    TYPE = EventType.call_arrived
    caller: str | None
    did: str | None
    direction: str | None  # in / out
    sip_call_id: str | None = None  # inbound
    source: str | None = None  # inbound: the address the INVITE came from
    mode: str | None = None  # outbound survey calls: "survey"


@dataclass(frozen=True, kw_only=True)
class MenuEntered(Event):
    TYPE = EventType.menu_entered
    kind: str | None
    prompt_started_at: str | None = None
    prompt_files: list[str] | None = None  # the files played (named by a hash of the text)
    menu_node: str | None = _as("node")  # the menu node (the envelope's node is the same)


@dataclass(frozen=True, kw_only=True)
class DigitReceived(Event):
    TYPE = EventType.digit_received
    digit: str | None
    method: str | None = None  # rfc2833 / info / inband


@dataclass(frozen=True, kw_only=True)
class MenuChosen(Event):
    TYPE = EventType.menu_chosen
    digit: str | None
    target: str | None


@dataclass(frozen=True, kw_only=True)
class MenuInvalid(Event):
    TYPE = EventType.menu_invalid
    digits: str | None
    then_playing: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class MenuTimeout(Event):
    TYPE = EventType.menu_timeout
    then_playing: list[str] | None = None


@dataclass(frozen=True, kw_only=True)
class DigitsCollected(Event):
    TYPE = EventType.digits_collected
    variable: str | None
    value: str | None
    menu_node: str | None = _as("node")  # survey calls name the node in data too


@dataclass(frozen=True, kw_only=True)
class CallQueued(Event):
    TYPE = EventType.call_queued
    queue: str | None
    priority: int | None = None
    skills: list[str] | None = None
    collected: dict[str, Any] | None = None
    menu_path: list[dict[str, Any]] | None = None
    caller: str | None = None
    did: str | None = None
    queued_epoch: float | None = None
    previous_queue: str | None = None  # requeued by an overflow


@dataclass(frozen=True, kw_only=True)
class CallbackRequested(Event):
    """From a menu node (data: queue) or from ticketing (node "ticketing": the callback's
    number, ticket and attempt, see ``ticketing.jobs.place_callback``)."""

    TYPE = EventType.callback_requested
    queue: str | None = None
    number: str | None = None


@dataclass(frozen=True, kw_only=True)
class AgentOffered(Event):
    TYPE = EventType.agent_offered
    agent_uri: str | None
    agent_id: int | None
    ring_timeout: float | None = None
    queue: str | None = None


@dataclass(frozen=True, kw_only=True)
class AgentRinging(Event):
    TYPE = EventType.agent_ringing
    agent_uri: str | None


@dataclass(frozen=True, kw_only=True)
class AgentAnswered(Event):
    TYPE = EventType.agent_answered
    agent_uri: str | None
    agent_id: int | None
    queue: str | None = None


@dataclass(frozen=True, kw_only=True)
class AgentMissed(Event):
    TYPE = EventType.agent_missed
    agent_uri: str | None
    agent_id: int | None
    reason: str | None = None
    queue: str | None = None


@dataclass(frozen=True, kw_only=True)
class Bridged(Event):
    TYPE = EventType.bridged
    agent_uri: str | None
    agent_id: int | None = None
    queue: str | None = None
    number: str | None = None  # outbound: the customer reached


@dataclass(frozen=True, kw_only=True)
class Held(Event):
    TYPE = EventType.held
    reason: str | None = None  # "consult": the caller waits during a consultation


@dataclass(frozen=True, kw_only=True)
class Unheld(Event):
    TYPE = EventType.unheld
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class Transferred(Event):
    TYPE = EventType.transferred
    kind: str | None  # queue / agent / number
    to: str | None
    agent_id: int | None = None
    agent_uri: str | None = None
    consult: bool | None = None  # completed from a consultation
    answered: bool | None = None  # ... and whether the target had answered by then
    by: str | None = None


@dataclass(frozen=True, kw_only=True)
class ConsultStarted(Event):
    TYPE = EventType.consult_started
    kind: str | None  # agent / number
    to: str | None
    target_uri: str | None
    agent_id: int | None
    ring_timeout: float | None = None


@dataclass(frozen=True, kw_only=True)
class ConsultAnswered(Event):
    TYPE = EventType.consult_answered
    kind: str | None
    to: str | None
    target_uri: str | None
    agent_id: int | None


@dataclass(frozen=True, kw_only=True)
class ConsultEnded(Event):
    TYPE = EventType.consult_ended
    kind: str | None
    to: str | None
    target_uri: str | None
    agent_id: int | None
    reason: str | None
    answered: bool | None
    code: int | None
    seconds: float | None = None
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class SupervisorJoined(Event):
    TYPE = EventType.supervisor_joined
    mode: str | None  # listen / whisper / barge
    uri: str | None


@dataclass(frozen=True, kw_only=True)
class RecordingStarted(Event):
    TYPE = EventType.recording_started
    recording_id: str | None
    path: str | None


@dataclass(frozen=True, kw_only=True)
class RecordingStopped(Event):
    TYPE = EventType.recording_stopped
    recording_id: str | None
    path: str | None
    duration: float | None
    size: int | None = _as("bytes", required=True)
    sha256: str | None
    status: str | None  # ok / failed / repaired
    paused: bool | None = None
    error: str | None = None
    incomplete: bool | None = None


@dataclass(frozen=True, kw_only=True)
class RecordingPaused(Event):
    """PCI pause: nothing is recorded from ``offset_s`` seconds into the file."""

    TYPE = EventType.recording_paused
    recording_id: str | None
    offset_s: float | None
    by: int | None  # the agent who paused


@dataclass(frozen=True, kw_only=True)
class RecordingResumed(Event):
    """Recording goes on at ``offset_s`` after ``paused_s`` seconds left out."""

    TYPE = EventType.recording_resumed
    recording_id: str | None
    offset_s: float | None
    paused_s: float | None
    by: int | None


@dataclass(frozen=True, kw_only=True)
class CallerHungUp(Event):
    TYPE = EventType.caller_hung_up
    state: str | None = None  # the conversation's state when the caller left


@dataclass(frozen=True, kw_only=True)
class AgentHungUp(Event):
    TYPE = EventType.agent_hung_up
    agent_uri: str | None = None


@dataclass(frozen=True, kw_only=True)
class Abandoned(Event):
    TYPE = EventType.abandoned
    queue: str | None
    waited: float | None


@dataclass(frozen=True, kw_only=True)
class CallEnded(Event):
    TYPE = EventType.call_ended
    reason: str | None
    outcome: str | None
    queue: str | None = None
    duration: float | None = None


@dataclass(frozen=True, kw_only=True)
class SlotFailed(Event):
    TYPE = EventType.slot_failed
    reason: str | None


@dataclass(frozen=True, kw_only=True)
class Originated(Event):
    TYPE = EventType.originated
    number: str | None
    purpose: str | None
    mode: str | None  # survey / agent
    ticket_id: int | None
    callback_id: int | None


@dataclass(frozen=True, kw_only=True)
class Announced(Event):
    TYPE = EventType.announced
    queue: str | None
    position: int | None
    expected_wait: float | None
    source: str | None  # engine / routing


@dataclass(frozen=True, kw_only=True)
class CommandFailed(Event):
    TYPE = EventType.command_failed
    command: str | None
    reason: str | None
    command_id: str | None = None
    kind: str | None = None
    mode: str | None = None
    agent_id: int | None = None


# ---------------------------------------------------------------- routing's facts (cti/lua)


@dataclass(frozen=True, kw_only=True)
class CallReserved(Event):
    TYPE = EventType.call_reserved
    queue: str | None
    agent_id: int | None
    agent_uri: str | None
    callback: bool | None = None
    offer: Any = None


@dataclass(frozen=True, kw_only=True)
class CallOverflowed(Event):
    TYPE = EventType.call_overflowed
    from_queue: str | None
    to_queue: str | None
    reason: str | None = None
    waited: float | None = None


@dataclass(frozen=True, kw_only=True)
class CallbackScheduled(Event):
    TYPE = EventType.callback_scheduled
    queue: str | None
    number: str | None = None
    position: int | None = None


@dataclass(frozen=True, kw_only=True)
class WrapUpEnded(Event):
    TYPE = EventType.wrap_up_ended
    agent_id: int | None
    disposition: str | None = None
    by: str | None = None


@dataclass(frozen=True, kw_only=True)
class CallRefused(Event):
    """The SIP edge turned a call away before any slot (docs/metrics.md, "refused")."""

    TYPE = EventType.call_refused
    reason: str | None
    caller: str | None = None
    did: str | None = None
    source: str | None = None


EVENT_CLASSES: dict[EventType, type[Event]] = {
    cls.TYPE: cls
    for cls in (
        CallArrived,
        MenuEntered,
        DigitReceived,
        MenuChosen,
        MenuInvalid,
        MenuTimeout,
        DigitsCollected,
        CallQueued,
        CallbackRequested,
        AgentOffered,
        AgentRinging,
        AgentAnswered,
        AgentMissed,
        Bridged,
        Held,
        Unheld,
        Transferred,
        ConsultStarted,
        ConsultAnswered,
        ConsultEnded,
        SupervisorJoined,
        RecordingStarted,
        RecordingStopped,
        RecordingPaused,
        RecordingResumed,
        CallerHungUp,
        AgentHungUp,
        Abandoned,
        CallEnded,
        SlotFailed,
        Originated,
        Announced,
        CommandFailed,
        CallReserved,
        CallOverflowed,
        CallbackScheduled,
        WrapUpEnded,
        CallRefused,
    )
}

E = TypeVar("E", bound=Event)


def from_call_event(event: CallEvent) -> Event:
    """The typed event of a :class:`CallEvent` (the one place ``data`` is taken apart)."""
    try:
        cls = EVENT_CLASSES[EventType(event.type)]
    except ValueError:
        raise InvalidEvent(f"event type {event.type!r} is not an EventType") from None
    if not isinstance(event.data, dict):
        raise InvalidEvent(f"{event.type}: data is {type(event.data).__name__}, not an object")
    data = dict(event.data)
    values: dict[str, Any] = {}
    absent: set[str] = set()
    for f in _data_fields(cls):
        key = _wire_name(f)
        if key in data:
            values[f.name] = data.pop(key)
        elif not _optional(f):
            # Readers have always taken a missing key as null (``data.get``); so does this.
            values[f.name] = None
            absent.add(f.name)
    return cls(
        call_id=event.call_id,
        slot=event.slot,
        node=event.node,
        at=event.at,
        extra=data,
        absent=frozenset(absent),
        **values,
    )


def from_wire(fields: dict[str, str] | dict[bytes, bytes]) -> Event:
    """One stream entry's fields as its typed event."""
    try:
        envelope = CallEvent.from_fields(fields)
    except (KeyError, ValueError) as exc:
        raise InvalidEvent(f"not an event entry: {exc!r}") from None
    return from_call_event(envelope)
