"""Outbound calls (call-back, click-to-call): the agent's phone first, then the customer's;
an automatic survey rings only the customer, who hears the question and keys a digit."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from callcenter.streams import EventType
from ivr import survey
from ivr.call_core.actions import Actions, CommandRefused, Dial, EmitEvent
from ivr.call_core.inbound import busy_status
from ivr.call_core.state import (
    CUSTOMER_RING_SECONDS,
    ORIGINATE_AGENT_RING_SECONDS,
    CallPhase,
    CallSetup,
    Clock,
    Conversation,
    OriginateRequest,
)
from ivr.menu import MenuRunner
from ivr.prompts import PromptFile

Started = tuple[Conversation | None, Actions]  # the new call (None: refused) and its actions


def originate(
    call_id: str,
    data: Mapping[str, Any],
    setup: CallSetup,
    *,
    busy: bool,
    now: float,
    wall_now: float,
) -> Started:
    """The ``originate`` command on a slot (``busy``: a call or a leg is still there)."""
    if busy:
        return None, [CommandRefused("slot busy")]
    telephony = setup.uris.telephony
    number = str(data.get("number", ""))
    if not re.fullmatch(r"\+?\d{3,20}", number):
        return None, [CommandRefused(f"number {number!r} is not a phone number")]
    refusal = telephony.dial_plan.plan().refusal(number)
    if refusal:  # the last check before the trunk (the edge checks again)
        return None, [CommandRefused(refusal)]
    if telephony.outbound_trunk is None:
        return None, [CommandRefused("no outbound_trunk configured in telephony.toml")]
    if data.get("mode") == "survey" or data.get("survey"):
        return _survey(call_id, data, number, setup, now=now, wall_now=wall_now)
    agent_uri = setup.uris.agent(str(data.get("agent_uri", "")))
    conv = _outbound(call_id, number, data, setup, now=now, wall_now=wall_now)
    agent_id = data.get("agent_id")
    conv.agent.assign(agent_uri, int(agent_id) if agent_id is not None else None)
    # Ring the agent as long as routing allows (the offer's ring_timeout): its own timer
    # gives up 3 s later and may offer the call-back to someone else, so ringing on
    # beyond it could put the customer through twice.
    ring = float(data.get("ring_timeout") or ORIGINATE_AGENT_RING_SECONDS)
    conv.clock.ring(now + ring)
    arrival = {"caller": number, "did": "", "direction": "out"}
    offered = {"agent_uri": agent_uri, "agent_id": conv.agent.id, "ring_timeout": ring}
    return conv, [
        busy_status(conv),
        EmitEvent(EventType.call_arrived, arrival),
        EmitEvent(EventType.agent_offered, offered),
        Dial("agent", agent_uri),
    ]


def _outbound(
    call_id: str,
    number: str,
    data: Mapping[str, Any],
    setup: CallSetup,
    *,
    now: float,
    wall_now: float,
    survey: bool = False,
    runner: MenuRunner | None = None,
    prompts: dict[str, PromptFile] | None = None,
) -> Conversation:
    return Conversation(
        call_id=call_id,
        direction="out",
        caller=number,
        did="",
        started=wall_now,
        state=CallPhase.originating,
        runner=runner,
        prompts=prompts or {},
        originate=OriginateRequest.of(data, survey=survey),
        clock=Clock(max_until=now + setup.max_call_seconds),
    )


def _survey(
    call_id: str,
    data: Mapping[str, Any],
    number: str,
    setup: CallSetup,
    *,
    now: float,
    wall_now: float,
) -> Started:
    """Automatic satisfaction survey: the customer only, through the outbound trunk."""
    if "error" in data:
        return None, [CommandRefused(str(data["error"]))]
    survey_spec = data.get("survey")
    if not isinstance(survey_spec, dict) or "survey_file" not in data:
        return None, [CommandRefused("survey mode needs a survey object with prompt_zh")]
    question = PromptFile(str(data["survey_file"]), float(data.get("survey_duration", 0)))
    thanks = setup.prompts["survey.thanks"]
    try:
        runner = survey.survey_runner(survey_spec, question, thanks, setup.durations)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        return None, [CommandRefused(f"survey: {exc}")]
    conv = _outbound(
        call_id,
        number,
        data,
        setup,
        now=now,
        wall_now=wall_now,
        survey=True,
        runner=runner,
        prompts={"survey.prompt": question, "survey_thanks.prompt": thanks},
    )
    arrival = {"caller": number, "did": "", "direction": "out", "mode": "survey"}
    return conv, [
        busy_status(conv),
        EmitEvent(EventType.call_arrived, arrival),
        *dial_customer(conv, setup, now=now),
    ]


def dial_customer(conv: Conversation, setup: CallSetup, *, now: float) -> Actions:
    """Ring the outbound call's customer through the outbound trunk."""
    trunk = setup.uris.telephony.outbound_trunk
    assert trunk is not None, "originate checked the outbound trunk"
    request = conv.originate
    assert request is not None, "an outbound call has its request"
    conv.clock.ring(now + CUSTOMER_RING_SECONDS)
    originated = {
        "number": conv.caller,
        "purpose": request.purpose,
        "mode": "survey" if request.survey else "agent",
        "ticket_id": request.ticket_id,
        "callback_id": request.callback_id,
    }
    return [
        EmitEvent(EventType.originated, originated),
        Dial("caller", setup.uris.trunk(conv.caller, trunk)),
    ]
