"""An inbound call: whether the slot takes it, the call it starts, and what its voice menu's
outcomes (queue, call-back, transfer, hang-up) do to it."""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.streams import EventType
from ivr.call_core.actions import Actions, EmitEvent, EndCall, ReportStatus
from ivr.call_core.offer import enqueue
from ivr.call_core.state import CallSetup, Clock, Conversation
from ivr.call_core.transfer import to_number
from ivr.menu import Action, Enqueue, Hangup, MenuRunner, RequestCallback, TransferTo

SLOT_BUSY = 486


@dataclass(frozen=True)
class Refusal:
    """The SIP answer refusing an INVITE, and why (for the log)."""

    code: int
    why: str


def refusal(did: str, setup: CallSetup, *, source_allowed: bool, busy: bool) -> Refusal | None:
    """Why the slot refuses an INVITE to ``did``; None to take it."""
    if not source_allowed:
        return Refusal(403, "source is not the edge")
    if busy:
        return Refusal(SLOT_BUSY, "slot busy")
    if did not in setup.dids:
        return Refusal(404, f"DID {did!r} not configured")
    return None


def arrived(
    call_id: str,
    caller: str,
    did: str,
    setup: CallSetup,
    *,
    sip_call_id: str,
    source: str,
    now: float,
    wall_now: float,
) -> tuple[Conversation, Actions]:
    """A caller reached ``did``: the call starts in the voice menu at the DID's entry."""
    conv = Conversation(
        call_id=call_id,
        direction="in",
        caller=caller,
        did=did,
        started=wall_now,
        runner=MenuRunner(setup.menu, setup.durations, setup.dids[did]),
        clock=Clock(max_until=now + setup.max_call_seconds),
    )
    arrival = {
        "caller": caller,
        "did": did,
        "direction": "in",
        "sip_call_id": sip_call_id,
        "source": source,
    }
    return conv, [busy_status(conv), EmitEvent(EventType.call_arrived, arrival)]


def busy_status(conv: Conversation) -> ReportStatus:
    return ReportStatus({"status": "busy", "call_id": conv.call_id, "started": conv.started})


def menu_outcome(
    conv: Conversation, action: Action, setup: CallSetup, *, now: float, wall_now: float
) -> Actions:
    """What a menu action other than media and events does to the call."""
    if isinstance(action, Enqueue):
        return enqueue(conv, action.queue, action.priority, action.skills, wall_now=wall_now)
    if isinstance(action, RequestCallback):
        conv.outcome = "callback"
        conv.routing.call_back_from(action.queue)
    elif isinstance(action, TransferTo):
        uri = setup.uris.transfer_target(action.target)
        return to_number(conv, action.target, uri, now=now, from_menu=True)
    elif isinstance(action, Hangup):
        return [EndCall(action.reason, conv.outcome or action.reason)]
    return []
