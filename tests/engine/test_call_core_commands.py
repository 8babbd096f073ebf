"""The call core's decisions that used to live in the slot: offers, transfers, the
consultation, supervision, ``play``/``announce``, originate and surveys, a dial that fails,
an arrival and its menu's outcomes, the end of a call. Without SIP (fast; no lock needed);
each test names one transition. The SIP tests beside them check the same end to end."""

from __future__ import annotations

from typing import Any

import pytest

from callcenter.streams import CommandType, EventType
from ivr.call_core import ending, inbound
from ivr.call_core.actions import (
    Actions,
    CommandRefused,
    DeferAnnouncement,
    Dial,
    DropAgent,
    DropLeg,
    EmitEvent,
    EndCall,
    Play,
    PromoteConsult,
    ReportStatus,
    Rewire,
    RunMenu,
    StopAnnouncements,
    TearDown,
)
from ivr.call_core.commands import on_command
from ivr.call_core.leg_facts import on_dial_failed, on_digit, on_leg_ringing
from ivr.call_core.offer import announcement_view
from ivr.call_core.originate import dial_customer, originate
from ivr.call_core.state import (
    MAX_LEGS,
    AgentSide,
    CallPhase,
    CommandIn,
    Consult,
    Conversation,
    LegsView,
    OriginateRequest,
    Recording,
    RoutingAsk,
)
from ivr.call_core.transfer import consult_complete
from ivr.menu import Emit, Enqueue, Hangup, PlayPrompts, RequestCallback, TransferTo
from tests.engine.core_setup import PROMPTS, SETUP, clock, conv_in, conv_out, one_node_runner

AGENT = "sip:1001@127.0.0.9:5070"
BRIDGED_LEGS = LegsView(any_left=True, roles=frozenset({"caller", "agent"}), lines=2)
RINGING_LEGS = LegsView(
    any_left=True, agent_ringing=True, roles=frozenset({"caller", "agent"}), lines=2
)
CALLER_ONLY = LegsView(any_left=True, roles=frozenset({"caller"}), lines=1)


def run(
    conv: Conversation, type_: str, legs: LegsView = CALLER_ONLY, now: float = 100.0, **data: Any
) -> Actions:
    return on_command(conv, CommandIn(type_, data, legs, SETUP, now, 5000.0 + now))


def events(actions: Actions) -> list[EventType]:
    return [a.type for a in actions if isinstance(a, EmitEvent)]


def event(actions: Actions, type_: EventType) -> dict[str, Any]:
    found = [a.data for a in actions if isinstance(a, EmitEvent) and a.type == type_]
    assert len(found) == 1, f"one {type_} in {actions}"
    return found[0]


def refused(actions: Actions) -> list[str]:
    return [a.reason for a in actions if isinstance(a, CommandRefused)]


def consulting(answered: bool = False, kind: str = "agent", super_mode: str = "") -> Conversation:
    consult = Consult(
        kind=kind,
        to="1002",
        uri="sip:1002@e",
        agent_id=2,
        deadline=130.0,
        started=5050.0,
        answered=answered,
        held_caller=True,
    )
    return conv_in(
        CallPhase.connected,
        consult=consult,
        held=True,
        answered=True,
        agent=AgentSide(uri=AGENT, id=1, super_mode=super_mode),
        routing=RoutingAsk(queue="sales"),
    )


# ---------------------------------------------------------------- offer


def test_offer_rings_the_agent_for_the_queue_ring_time() -> None:
    conv = conv_in(CallPhase.waiting, routing=RoutingAsk(queue="sales"))
    actions = run(conv, CommandType.offer, agent_uri="1001", agent_id="7")
    assert actions == [
        EmitEvent(
            EventType.agent_offered,
            {"agent_uri": AGENT, "agent_id": 7, "queue": "sales", "ring_timeout": 20.0},
        ),
        Dial("agent", AGENT),
    ]
    assert conv.state == CallPhase.reserved and conv.clock.ring_until == 120.0
    assert conv.agent.uri == AGENT and conv.agent.id == 7


def test_offer_ring_timeout_from_routing_wins() -> None:
    conv = conv_in(CallPhase.waiting, routing=RoutingAsk(queue="sales"))
    actions = run(conv, CommandType.offer, agent_uri="1001", ring_timeout=8)
    assert event(actions, EventType.agent_offered)["ring_timeout"] == 8.0
    assert conv.clock.ring_until == 108.0 and conv.agent.id is None


def test_offer_while_another_phone_rings_withdraws_that_offer_first() -> None:
    conv = conv_in(
        CallPhase.reserved,
        routing=RoutingAsk(queue="sales"),
        agent=AgentSide(uri="sip:old@e", id=3),
    )
    actions = run(conv, CommandType.offer, RINGING_LEGS, agent_uri="1001", agent_id=7)
    assert actions[0] == DropLeg("agent", "ring_timeout")
    assert event(actions, EventType.agent_missed)["agent_id"] == 3
    assert events(actions)[-1] == EventType.agent_offered and actions[-1] == Dial("agent", AGENT)


def test_offer_is_refused_unless_the_call_waits() -> None:
    conv = conv_in(CallPhase.connected)
    assert refused(run(conv, CommandType.offer, agent_uri="1001")) == [
        "call is connected, not waiting in a queue"
    ]


def test_a_dial_that_fails_is_a_missed_offer() -> None:
    conv = conv_in(
        CallPhase.reserved, routing=RoutingAsk(queue="sales"), clock=clock(ring_until=120.0)
    )
    actions = on_dial_failed(conv, "agent", "too many calls", legs=CALLER_ONLY, wall_now=1.0)
    assert event(actions, EventType.agent_missed)["reason"] == "dial failed: too many calls"
    assert conv.state == CallPhase.waiting and conv.clock.ring_until is None


# ---------------------------------------------------------------- blind transfers


def test_blind_transfer_to_a_queue_requeues_without_the_agent() -> None:
    conv = conv_in(
        CallPhase.connected,
        held=True,
        routing=RoutingAsk(queue="sales"),
        agent=AgentSide(super_mode="listen"),
    )
    actions = run(conv, CommandType.transfer, BRIDGED_LEGS, kind="queue", target="repair")
    assert actions[:2] == [
        DropAgent("transferred"),
        EmitEvent(EventType.transferred, {"kind": "queue", "to": "repair"}),
    ]
    assert event(actions, EventType.call_queued)["previous_queue"] == "sales"
    assert conv.state == CallPhase.waiting and not conv.held and conv.agent.super_mode == ""
    assert refused(run(conv, CommandType.transfer, kind="queue", target="nope")) == [
        "queue 'nope' is not defined"
    ]


def test_blind_transfer_to_an_agent_offers_the_call_to_them() -> None:
    conv = conv_in(
        CallPhase.connected,
        routing=RoutingAsk(queue="sales"),
        agent=AgentSide(uri="sip:1000@e", id=1),
    )
    actions = run(conv, CommandType.transfer, BRIDGED_LEGS, kind="agent", target="1001", agent_id=7)
    assert actions[:2] == [
        DropAgent("transferred"),
        EmitEvent(EventType.transferred, {"kind": "agent", "to": "1001"}),
    ]
    assert event(actions, EventType.agent_offered)["agent_id"] == 7
    assert actions[-1] == Dial("agent", AGENT)
    assert conv.state == CallPhase.reserved and conv.clock.ring_until == 120.0


def test_blind_transfer_to_a_number_rings_it_as_a_transfer() -> None:
    conv = conv_in(CallPhase.connected, held=True, agent=AgentSide(id=1))
    actions = run(conv, CommandType.transfer, BRIDGED_LEGS, kind="number", target="billing")
    target = "sip:8001@127.0.0.9:5070"
    assert actions == [DropAgent("transferred"), Rewire(), Dial("agent", target)]
    assert conv.state == CallPhase.transferring and conv.outcome == "transferred"
    assert conv.agent.uri == target and conv.agent.id is None and not conv.held
    assert conv.clock.ring_until == 130.0
    assert refused(
        run(conv_in(CallPhase.connected), CommandType.transfer, kind="number", target="9999")
    ) == ["'9999' is not an allowed transfer target"]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"mode": "sideways"}, "transfer mode 'sideways': use blind, consult, complete or cancel"),
        ({"kind": "moon"}, "transfer kind 'moon': use queue, agent or number"),
    ],
)
def test_transfer_refusals(data: dict[str, Any], why: str) -> None:
    assert refused(run(conv_in(CallPhase.connected), CommandType.transfer, **data)) == [why]


def test_blind_transfer_is_refused_during_a_consultation() -> None:
    conv = consulting()
    assert refused(run(conv, CommandType.transfer, kind="queue", target="repair")) == [
        "a consultation is in progress: complete or cancel it"
    ]


# ---------------------------------------------------------------- consultation


def test_consult_holds_the_caller_and_rings_the_colleague() -> None:
    conv = conv_in(CallPhase.connected, routing=RoutingAsk(queue="sales"))
    actions = run(
        conv,
        CommandType.transfer,
        BRIDGED_LEGS,
        mode="consult",
        kind="agent",
        target="1001",
        agent_id="7",
    )
    assert actions[:2] == [EmitEvent(EventType.held, {"reason": "consult"}), Rewire()]
    started = event(actions, EventType.consult_started)
    assert started == {
        "kind": "agent",
        "to": "1001",
        "target_uri": AGENT,
        "agent_id": 7,
        "ring_timeout": 20.0,
    }
    assert actions[-1] == Dial("consult", AGENT)
    assert conv.held and conv.consult is not None and conv.consult.held_caller
    assert conv.consult.deadline == 120.0 and conv.consult.started == 5100.0


def test_consult_a_number_keeps_a_caller_already_held() -> None:
    conv = conv_in(CallPhase.connected, held=True)
    actions = run(
        conv, CommandType.transfer, BRIDGED_LEGS, mode="consult", kind="number", target="billing"
    )
    assert EventType.held not in events(actions)
    assert conv.consult is not None and not conv.consult.held_caller
    assert conv.consult.agent_id is None and conv.consult.deadline == 130.0


TO_1 = {"kind": "agent", "target": "1"}
NOT_CONNECTED = "only a call connected to an agent can be consulted on"
FULL = LegsView(roles=frozenset({"agent"}), lines=MAX_LEGS)


@pytest.mark.parametrize(
    ("conv", "legs", "data", "why"),
    [
        (conv_in(CallPhase.waiting), BRIDGED_LEGS, TO_1, NOT_CONNECTED),
        (conv_in(CallPhase.connected), CALLER_ONLY, TO_1, NOT_CONNECTED),
        (consulting(), BRIDGED_LEGS, TO_1, "a consultation is already in progress"),
        (conv_in(CallPhase.connected), BRIDGED_LEGS, {"kind": "fax", "target": "1"},
         "consult kind 'fax': use agent or number"),
        (conv_in(CallPhase.connected), BRIDGED_LEGS, {"kind": "number", "target": "9"},
         "'9' is not an allowed consultation target"),
        (conv_in(CallPhase.connected), BRIDGED_LEGS, {"kind": "agent", "target": ""},
         "'' is not an allowed consultation target"),
        (conv_in(CallPhase.connected), FULL, TO_1, "no line left for a consultation (4 per slot)"),
    ],
)  # fmt: skip
def test_consult_refusals(
    conv: Conversation, legs: LegsView, data: dict[str, Any], why: str
) -> None:
    assert refused(run(conv, CommandType.transfer, legs, mode="consult", **data)) == [why]


def test_complete_an_answered_consultation_hands_the_caller_over() -> None:
    conv = consulting(answered=True, super_mode="listen")
    legs = LegsView(roles=frozenset({"caller", "agent", "consult"}), lines=3)
    actions = run(conv, CommandType.transfer, legs, mode="complete")
    assert actions[:3] == [DropAgent("transferred"), PromoteConsult(), Rewire()]
    handed = event(actions, EventType.transferred)
    assert handed["answered"] is True and handed["by"] == "command" and handed["consult"]
    assert event(actions, EventType.bridged) == {
        "agent_uri": "sip:1002@e",
        "agent_id": 2,
        "queue": "sales",
    }
    assert conv.consult is None and not conv.held and conv.agent.super_mode == ""
    assert conv.agent.uri == "sip:1002@e" and conv.agent.id == 2
    assert conv.outcome == ""  # a colleague took the caller: still the center's call


def test_completing_a_number_consultation_makes_the_call_transferred() -> None:
    conv = consulting(answered=True, kind="number")
    assert consult_complete(conv, by="agent_hung_up", consult_leg=True)
    assert conv.outcome == "transferred"
    assert consult_complete(consulting(answered=True), by="x", consult_leg=False) == []


def test_complete_while_a_colleague_rings_hands_over_the_ringing_offer() -> None:
    conv = consulting()
    legs = LegsView(roles=frozenset({"caller", "agent", "consult"}), lines=3)
    actions = run(conv, CommandType.transfer, legs, mode="complete")
    assert actions[:3] == [DropAgent("transferred"), PromoteConsult(), Rewire()]
    assert event(actions, EventType.transferred)["answered"] is False
    assert conv.state == CallPhase.reserved and conv.clock.ring_until == 130.0


def test_complete_refusals() -> None:
    assert refused(run(conv_in(CallPhase.connected), CommandType.transfer, mode="complete")) == [
        "no consultation in progress"
    ]
    ringing_number = consulting(kind="number")
    assert refused(run(ringing_number, CommandType.transfer, mode="complete")) == [
        "an outside number must answer before the hand-over: wait, or cancel"
    ]


def test_cancel_ends_the_consultation_and_takes_the_caller_off_hold() -> None:
    conv = consulting()
    actions = run(conv, CommandType.transfer, BRIDGED_LEGS, mode="cancel")
    assert actions[:2] == [DropLeg("consult", "cancelled"), Rewire()]
    assert event(actions, EventType.consult_ended)["seconds"] == 50.0
    assert event(actions, EventType.unheld) == {"reason": "consult_ended"}
    assert refused(run(conv, CommandType.transfer, mode="cancel")) == [
        "no consultation in progress"
    ]


def test_a_consultation_that_cannot_be_dialled_ends_at_once() -> None:
    conv = consulting()
    actions = on_dial_failed(conv, "consult", "bad uri", legs=BRIDGED_LEGS, wall_now=5060.0)
    ended = event(actions, EventType.consult_ended)
    assert ended["reason"] == "dial_failed" and ended["detail"] == "bad uri"
    assert conv.consult is None and not conv.held


# ---------------------------------------------------------------- supervision


def test_supervisor_joins_a_connected_call() -> None:
    conv = conv_in(CallPhase.connected)
    actions = run(conv, CommandType.listen, BRIDGED_LEGS, supervisor_uri="1009")
    assert actions == [Dial("super", "sip:1009@127.0.0.9:5070")]
    assert conv.agent.super_mode == "listen" and conv.agent.super_uri == "sip:1009@127.0.0.9:5070"


def test_supervisor_switches_mode_on_the_same_leg() -> None:
    conv = conv_in(CallPhase.connected, agent=AgentSide(super_mode="listen", super_uri="sip:s@e"))
    legs = LegsView(roles=frozenset({"caller", "agent", "super"}), lines=3)
    assert run(conv, CommandType.barge, legs) == [
        Rewire(),
        EmitEvent(EventType.supervisor_joined, {"mode": "barge", "uri": "sip:s@e"}),
    ]
    assert conv.agent.super_mode == "barge"


def test_supervise_refusals_and_a_failed_dial() -> None:
    assert refused(run(conv_in(CallPhase.waiting), CommandType.listen, supervisor_uri="1")) == [
        "supervisors join connected calls only"
    ]
    assert refused(run(conv_in(CallPhase.connected), CommandType.whisper)) == [
        "supervisor_uri missing"
    ]
    full = LegsView(roles=frozenset({"caller", "agent"}), lines=MAX_LEGS)
    assert refused(
        run(conv_in(CallPhase.connected), CommandType.listen, full, supervisor_uri="1")
    ) == ["no line left for a supervisor (4 per slot)"]
    conv = conv_in(CallPhase.connected, agent=AgentSide(super_mode="listen"))
    assert on_dial_failed(conv, "super", "x", legs=BRIDGED_LEGS, wall_now=0.0) == [
        CommandRefused("dial failed: x")
    ]
    assert conv.agent.super_mode == ""


# ---------------------------------------------------------------- play and announce


def test_play_a_prompt_or_a_rendered_file() -> None:
    conv = conv_in(CallPhase.waiting)
    assert run(conv, CommandType.play, prompt="queue.wait") == [Play(("/p/wait.wav",), 2.5)]
    assert run(conv, CommandType.play, file="/tmp/a.wav", duration=3) == [
        Play(("/tmp/a.wav",), 3.0)
    ]
    assert not conv.hangup_after_prompt and conv.outcome == ""


def test_routings_last_word_ends_the_wait_and_hangs_up_after() -> None:
    conv = conv_in(CallPhase.waiting)
    actions = run(
        conv, CommandType.play, prompt="queue.wait", outcome="callback", hangup_after=True
    )
    assert actions == [StopAnnouncements(), Play(("/p/wait.wav",), 2.5)]
    assert conv.outcome == "callback" and conv.hangup_after_prompt


def test_play_refusals_end_a_closing_message_at_once() -> None:
    conv = conv_in(CallPhase.waiting)
    assert run(conv, CommandType.play, prompt="nope") == [CommandRefused("unknown prompt 'nope'")]
    actions = run(conv, CommandType.play, error="espeak", hangup_after=True, outcome="closed")
    assert actions == [
        StopAnnouncements(),
        CommandRefused("announcement not rendered: espeak"),
        EndCall("message_failed", "closed"),
    ]


def test_announce_plays_the_position_or_waits_for_the_prompt() -> None:
    data: dict[str, Any] = {
        "keys": ["queue.position", "missing", "queue.wait"],
        "position": 2,
        "expected_wait": 60,
        "source": "engine",
    }
    conv = conv_in(CallPhase.waiting, routing=RoutingAsk(queue="sales"))
    assert run(conv, "announce", **data) == [
        Play(("/p/position.wav", "/p/wait.wav"), 4.0),
        EmitEvent(
            EventType.announced,
            {"queue": "sales", "position": 2, "expected_wait": 60, "source": "engine"},
        ),
    ]
    playing = LegsView(prompt_playing=True, roles=frozenset({"caller"}), lines=1)
    assert run(conv, "announce", playing, **data) == [DeferAnnouncement()]
    assert run(conv_in(CallPhase.connected), "announce", **data) == []


def test_announcement_schedule() -> None:
    conv = conv_in(
        CallPhase.waiting, routing=RoutingAsk(queue="sales"), clock=clock(prompt_until=103.0)
    )
    view = announcement_view(conv, SETUP.queues["sales"], 100.0)
    assert view == {"call_id": "c1", "queue": "sales", "every": 30, "next_at": 108.0}
    assert announcement_view(conv, SETUP.queues["repair"], 100.0) == {}
    assert announcement_view(conv, None, 100.0)["every"] == 30


# ---------------------------------------------------------------- originate


def originate_call(data: dict[str, Any], busy: bool = False) -> tuple[Conversation | None, Actions]:
    return originate("o1", data, SETUP, busy=busy, now=10.0, wall_now=500.0)


def test_originate_rings_the_agent_first() -> None:
    conv, actions = originate_call(
        {"number": "13800000000", "agent_uri": "1001", "agent_id": 7, "ticket_id": 3}
    )
    assert conv is not None and conv.state == CallPhase.originating
    assert conv.direction == "out" and conv.caller == "13800000000" and conv.started == 500.0
    assert conv.clock.max_until == 3610.0 and conv.clock.ring_until == 40.0
    assert actions == [
        ReportStatus({"status": "busy", "call_id": "o1", "started": 500.0}),
        EmitEvent(EventType.call_arrived, {"caller": "13800000000", "did": "", "direction": "out"}),
        EmitEvent(
            EventType.agent_offered, {"agent_uri": AGENT, "agent_id": 7, "ring_timeout": 30.0}
        ),
        Dial("agent", AGENT),
    ]


def test_the_originate_request_is_what_the_originated_event_reports() -> None:
    data = {"number": "13800000000", "agent_uri": "1001", "purpose": "callback"}
    conv, _ = originate_call({**data, "ticket_id": 3, "callback_id": 4, "queue": "q"})
    assert conv is not None
    assert conv.originate == OriginateRequest(purpose="callback", ticket_id=3, callback_id=4)
    originated = event(dial_customer(conv, SETUP, now=50.0), EventType.originated)
    assert originated == {
        "number": "13800000000",
        "purpose": "callback",
        "mode": "agent",
        "ticket_id": 3,
        "callback_id": 4,
    }
    plain, _ = originate_call({"number": "13800000000", "agent_uri": "1001"})
    assert plain is not None and plain.originate == OriginateRequest()


def test_then_the_customer_through_the_outbound_trunk() -> None:
    request = OriginateRequest(purpose="callback", callback_id=4)
    conv = conv_out(caller="13800000000", originate=request)
    actions = dial_customer(conv, SETUP, now=50.0)
    assert actions == [
        EmitEvent(
            EventType.originated,
            {
                "number": "13800000000",
                "purpose": "callback",
                "mode": "agent",
                "ticket_id": None,
                "callback_id": 4,
            },
        ),
        Dial("caller", "sip:13800000000@127.0.0.9:5070;trunk=carrier"),
    ]
    assert conv.clock.ring_until == 95.0


@pytest.mark.parametrize(
    ("data", "busy", "why"),
    [
        ({"number": "13800000000"}, True, "slot busy"),
        ({"number": "12ab"}, False, "number '12ab' is not a phone number"),
        ({"number": "13800000000", "mode": "survey", "error": "no text"}, False, "no text"),
        (
            {"number": "13800000000", "mode": "survey"},
            False,
            "survey mode needs a survey object with prompt_zh",
        ),
        (
            {"number": "13800000000", "survey": {"digits": "x"}, "survey_file": "/q.wav"},
            False,
            "survey: survey.digits 'x' must be 1-12 keys among 0-9 * #",
        ),
    ],
)
def test_originate_refusals(data: dict[str, Any], busy: bool, why: str) -> None:
    conv, actions = originate_call(data, busy)
    assert conv is None and refused(actions) == [why]


def test_originate_refuses_what_the_dial_plan_forbids() -> None:
    conv, actions = originate_call({"number": "+4412345678"})
    assert conv is None and len(refused(actions)) == 1


def test_a_survey_rings_only_the_customer() -> None:
    data = {
        "number": "13800000000",
        "mode": "survey",
        "survey": {"digits": "123"},
        "survey_file": "/q.wav",
        "survey_duration": 4,
    }
    conv, actions = originate_call(data)
    assert conv is not None and conv.survey and conv.runner is not None
    assert conv.prompts["survey.prompt"].path == "/q.wav"
    assert event(actions, EventType.call_arrived)["mode"] == "survey"
    assert event(actions, EventType.originated)["mode"] == "survey"
    assert actions[-1] == Dial("caller", "sip:13800000000@127.0.0.9:5070;trunk=carrier")


def test_dial_failures_of_an_outbound_call_end_it() -> None:
    conv = conv_out(clock=clock(ring_until=40.0))
    actions = on_dial_failed(conv, "agent", "x", legs=CALLER_ONLY, wall_now=0.0)
    assert refused(actions) == ["dial failed: x"]
    assert actions[-1] == EndCall("agent_unreachable", "failed")
    customer = on_dial_failed(conv_out(), "caller", "y", legs=CALLER_ONLY, wall_now=0.0)
    assert event(customer, EventType.command_failed)["command"] == "originate"
    assert customer[-1] == EndCall("customer_unreachable", "failed")


# ---------------------------------------------------------------- an inbound call


def test_an_invite_is_refused_by_source_then_busy_then_did() -> None:
    foreign = inbound.refusal("4000", SETUP, source_allowed=False, busy=True)
    assert foreign is not None and foreign.code == 403
    busy = inbound.refusal("4000", SETUP, source_allowed=True, busy=True)
    assert busy == inbound.Refusal(486, "slot busy")
    unknown = inbound.refusal("5000", SETUP, source_allowed=True, busy=False)
    assert unknown is not None and unknown.code == 404
    assert inbound.refusal("4000", SETUP, source_allowed=True, busy=False) is None


def test_an_arrival_starts_in_the_menu() -> None:
    conv, actions = inbound.arrived(
        "c9",
        "1001",
        "4000",
        SETUP,
        sip_call_id="x@y",
        source="127.0.0.1:5060",
        now=1.0,
        wall_now=700.0,
    )
    assert conv.state == CallPhase.menu and conv.runner is not None
    assert conv.started == 700.0 and conv.clock.max_until == 3601.0
    assert actions[0] == ReportStatus({"status": "busy", "call_id": "c9", "started": 700.0})
    assert event(actions, EventType.call_arrived)["sip_call_id"] == "x@y"


def test_menu_outcomes() -> None:
    conv = conv_in(runner=one_node_runner())
    queued = inbound.menu_outcome(conv, Enqueue("sales", 1, ()), SETUP, now=1.0, wall_now=9.0)
    assert events(queued) == [EventType.call_queued] and conv.state == CallPhase.waiting
    conv = conv_in()
    assert inbound.menu_outcome(conv, RequestCallback("sales"), SETUP, now=1, wall_now=1) == []
    assert conv.outcome == "callback" and conv.routing.queue == "sales"
    assert inbound.menu_outcome(conv, Hangup("menu_done"), SETUP, now=1, wall_now=1) == [
        EndCall("menu_done", "callback")
    ]
    transfer = inbound.menu_outcome(conv_in(), TransferTo("billing"), SETUP, now=1, wall_now=1)
    assert transfer[-1] == Dial("agent", "sip:8001@127.0.0.9:5070")
    assert inbound.menu_outcome(conv_in(), TransferTo("nope"), SETUP, now=1, wall_now=1) == [
        EndCall("transfer_not_allowed", "failed")
    ]
    media = (PlayPrompts(("main.prompt",)), Emit("menu_entered", "main"))
    assert all(inbound.menu_outcome(conv, a, SETUP, now=1, wall_now=1) == [] for a in media)


def test_digits_go_to_the_menu_or_are_only_reported() -> None:
    conv = conv_in(runner=one_node_runner())
    conv.runner.start(0.0)  # type: ignore[union-attr]
    actions = on_digit(conv, "1", 0, now=0.5, at=77.0)
    first = actions[0]
    assert isinstance(first, EmitEvent) and first.type == EventType.digit_received
    assert first.at == 77.0 and first.data["method"] == 0 and first.data["digit"] == "1"
    assert isinstance(actions[-1], RunMenu)
    bridged = conv_in(CallPhase.connected)
    assert on_digit(bridged, "5", 1, now=0.0, at=3.0) == [
        EmitEvent(EventType.digit_received, {"digit": "5", "method": 1}, "connected", at=3.0)
    ]
    assert on_digit(conv_in(clock=clock(close_at=1.0)), "5", 1, now=0.0, at=3.0) == []


def test_only_the_agents_phone_ringing_is_reported() -> None:
    conv = conv_in(CallPhase.reserved, agent=AgentSide(uri=AGENT))
    assert on_leg_ringing(conv, "agent") == [
        EmitEvent(EventType.agent_ringing, {"agent_uri": AGENT})
    ]
    assert on_leg_ringing(conv, "consult") == []


# ---------------------------------------------------------------- recording and the end


def test_recording_started_reports_status_and_event() -> None:
    conv = conv_in()
    actions = ending.recording_started(conv, "/r/c1.wav", now=3.0, wall_now=900.0)
    assert actions == [
        ReportStatus(
            {
                "status": "recording",
                "call_id": "c1",
                "recording_id": "c1",
                "path": "/r/c1.wav",
                "started": 900.0,
            }
        ),
        EmitEvent(EventType.recording_started, {"recording_id": "c1", "path": "/r/c1.wav"}),
    ]
    assert conv.recording.started_at == 3.0 and conv.recording.path == "/r/c1.wav"


def test_end_call_once_with_the_consultation_ending_first() -> None:
    conv = consulting()
    actions = ending.end_call(
        conv, "caller_hung_up", "answered", BRIDGED_LEGS, now=10.0, wall_now=5060.0
    )
    assert actions[0] == StopAnnouncements() and actions[1] == DropLeg("consult", "caller_hung_up")
    assert EventType.unheld not in events(actions)  # the caller is leaving
    assert actions[-1] == TearDown()
    assert conv.clock.close_at == pytest.approx(10.3) and conv.clock.ended_at == 5060.0
    assert conv.end_reason == "caller_hung_up" and conv.outcome == "answered"
    assert ending.end_call(conv, "again", "x", BRIDGED_LEGS, now=11.0, wall_now=1.0) == []


def test_finished_reports_the_recording_then_call_ended_at_the_bye() -> None:
    conv = conv_in(
        CallPhase.connected,
        started=100.0,
        end_reason="caller_hung_up",
        outcome="answered",
        clock=clock(ended_at=160.5),
        recording=Recording(id="c1", path="/r/c1.wav"),
        routing=RoutingAsk(queue="sales"),
    )
    facts = {"duration": 60.0, "bytes": 960044, "sha256": "ab", "status": "complete"}
    actions = ending.finished(conv, facts, wall_now=170.0)
    stopped, ended = actions
    assert isinstance(stopped, EmitEvent) and stopped.data["paused"] is False
    assert stopped.data["path"] == "/r/c1.wav" and stopped.data["status"] == "complete"
    assert ended == EmitEvent(
        EventType.call_ended,
        {"reason": "caller_hung_up", "outcome": "answered", "queue": "sales", "duration": 60.5},
        at=160.5,
    )
    failed = ending.finished(conv, {"status": "failed", "error": "gone"}, wall_now=170.0)[0]
    assert isinstance(failed, EmitEvent) and "paused" not in failed.data
    assert events(ending.finished(conv_in(), None, wall_now=1.0)) == [EventType.call_ended]


def test_play_needs_known_prompts_only() -> None:
    assert set(PROMPTS) >= {"queue.wait", "survey.thanks"}
