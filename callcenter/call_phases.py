"""A call's phases: one table of where a call can be, what moves it, and which event says so.

Routing keeps a call's phase in the ``state`` field of ``{prefix}:routing:call:{id}`` and
changes it only inside ``cti/lua/routing.lua``. The script carries no copy of the rules:
:func:`lua_rules` renders :data:`MOVES` into it when it is loaded (like the agent table of
``cti/state.py``), and every write of the field goes through the script's ``move_call``,
which takes the target from the table and counts a move from a phase the table does not
allow in ``routing:stats`` ``illegal_call_moves`` (tests/cti/test_routing_properties.py keeps
that at zero under random operations).

Readers of the event stream (``ivr/records.py``, ``metrics/call_tracker.py``) learn where a
call went from :data:`EVENT_PHASE`: the phase an event moves the call into.

    (no record) --enqueue--> waiting --reserve--> reserved --answer--> connected
    waiting --overflow--> waiting (another queue);  reserved/transferring --put_back--> waiting
    connected --transfer_out--> transferring --take_over/hand_off--> connected/transferred
    connected --requeue--> transferred --enqueue--> waiting (a transfer to a queue)
    reserved --called_back--> called_back (the call-back leg was answered)
    waiting/reserved/connected/transferring --end--> ended

``menu`` and ``originating`` are the slot's own phases, before routing knows the call (an
inbound caller in the voice menu; an outbound call ringing the agent's phone first): routing
has no record for them (:data:`ABSENT`).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from callcenter.streams import EventType


class CallPhase(enum.StrEnum):
    menu = "menu"  # slot only: the caller walks the voice menu (no routing record yet)
    originating = "originating"  # slot only: an outbound call rings the agent, then the number
    waiting = "waiting"  # in a queue's line (the slot says "queued")
    reserved = "reserved"  # routing picked an agent whose phone rings (the slot: "offering")
    connected = "connected"  # an agent talks with the caller (the slot: "bridged")
    transferring = "transferring"  # handed on; the target (agent or number) rings
    transferred = "transferred"  # left for an outside number, or for another queue
    called_back = "called_back"  # a kept call-back whose new leg an agent answered
    ended = "ended"


# Routing has no record of the call yet (the hash has no ``state``): the script reads "".
ABSENT = ""

# What routing's ``call:{id}`` hash can hold (the slot-only phases never reach it).
ROUTING_PHASES = frozenset(CallPhase) - {CallPhase.menu, CallPhase.originating}
# The call still waits for an agent: in a line, or an agent's phone rings for it.
PENDING = frozenset({CallPhase.waiting, CallPhase.reserved})
# Nothing more happens to the call in routing.
FINAL = frozenset({CallPhase.ended, CallPhase.called_back, CallPhase.transferred})

# The slot's names for the same phases (ivr/call_core.py ``CallPhase``), for the engine's
# events that carry them (``caller_hung_up`` data ``state``).
SLOT_NAMES: dict[str, CallPhase] = {
    "menu": CallPhase.menu,
    "originating": CallPhase.originating,
    "queued": CallPhase.waiting,
    "offering": CallPhase.reserved,
    "transferring": CallPhase.transferring,
    "bridged": CallPhase.connected,
}


def from_slot(name: str) -> CallPhase | None:
    """The phase a slot names (its own word, ``queued``, or the phase's, ``waiting``: both
    read the same while the slot moves to this table); None for a name that is no phase
    (a menu node's name in ``digit_received``)."""
    if name in SLOT_NAMES:
        return SLOT_NAMES[name]
    return CallPhase(name) if name in CallPhase.__members__ else None


@dataclass(frozen=True)
class Move:
    name: str
    sources: frozenset[str]  # CallPhase values, or ABSENT
    target: CallPhase


P = CallPhase
MOVES: dict[str, Move] = {}


def _m(name: str, sources: set[str], target: CallPhase) -> None:
    MOVES[name] = Move(name, frozenset(str(s) for s in sources), target)


# A call enters a queue: a new call, or one handed to a queue; never one already waiting for
# an agent (the script answers "duplicate" there, reading this very rule).
_m("enqueue", {ABSENT, *(ROUTING_PHASES - PENDING)}, P.waiting)
_m("overflow", {P.waiting}, P.waiting)  # moved on to another queue's line
_m("reserve", {P.waiting}, P.reserved)
# The engine's answer came after routing's ring timer had given up on the agent.
_m("reserve_late", {P.waiting, P.reserved}, P.reserved)
_m("originate", {ABSENT}, P.reserved)  # click-to-call: the agent's leg rings first
_m("callback_leg", {ABSENT}, P.reserved)  # a kept call-back's new leg, agent first
_m("answer", {P.reserved}, P.connected)
_m("take_over", {P.connected, P.transferring}, P.connected)  # a transfer target answered
_m("put_back", {P.reserved, P.transferring}, P.waiting)  # a missed or failed offer
_m("transfer_out", {P.connected}, P.transferring)
_m("requeue", {P.connected}, P.transferred)  # transferred to a queue (then enqueue)
_m("hand_off", {P.connected, P.transferring}, P.transferred)  # gone to another party
_m("called_back", {P.reserved}, P.called_back)
_m("end", {P.waiting, P.reserved, P.connected, P.transferring}, P.ended)
del _m


# The phase each event moves the call into (events absent here leave the phase as it was).
EVENT_PHASE: dict[str, CallPhase] = {
    EventType.call_arrived: P.menu,
    EventType.originated: P.originating,
    EventType.call_queued: P.waiting,
    EventType.call_overflowed: P.waiting,
    EventType.callback_scheduled: P.waiting,  # kept in line while the caller hangs up
    EventType.call_reserved: P.reserved,
    EventType.agent_offered: P.reserved,
    EventType.agent_answered: P.connected,
    EventType.bridged: P.connected,
    EventType.transferred: P.transferred,
    EventType.abandoned: P.ended,
    EventType.call_ended: P.ended,
    EventType.slot_failed: P.ended,
    EventType.call_refused: P.ended,
}
# Events after which nothing more comes for the call.
ENDING_EVENTS = frozenset(e for e, p in EVENT_PHASE.items() if p == P.ended) - {
    EventType.abandoned  # the caller left the line; call_ended follows
}


def allows(name: str, current: str | None) -> bool:
    """Whether move ``name`` may start from ``current`` (None or "": no routing record)."""
    return (current or ABSENT) in MOVES[name].sources


def after(name: str, current: str | None) -> CallPhase | None:
    """The phase after move ``name`` from ``current``; None where the table refuses it."""
    return MOVES[name].target if allows(name, current) else None


def reachable(start: str) -> frozenset[str]:
    """Every phase some chain of moves reaches from ``start`` (itself included)."""
    seen = {start}
    frontier = [start]
    while frontier:
        here = frontier.pop()
        for move in MOVES.values():
            if here in move.sources and str(move.target) not in seen:
                seen.add(str(move.target))
                frontier.append(str(move.target))
    return frozenset(seen)


def lua_rules() -> str:
    """The table as one Lua string literal: ``;<move>:<from>><to>`` for every allowed pair
    (``<from>`` empty for :data:`ABSENT`), ending with ``;``; read by routing.lua's
    ``call_rule`` exactly as the agent rules are."""
    pairs = sorted(f"{name}:{s}>{m.target}" for name, m in MOVES.items() for s in m.sources)
    return json.dumps(";" + ";".join(pairs) + ";")
