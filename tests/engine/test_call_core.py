"""The call core's decisions and the media wiring, without SIP (fast; no lock needed).

Each test names one transition of ``ivr/call_core.py`` or one wiring rule of
``ivr/wiring.py``; the SIP tests beside it check the same behaviour end to end.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from callcenter.streams import EventType
from ivr.call_core.actions import (
    AgentMissed,
    CheckMedia,
    CommandRefused,
    ConsultComplete,
    ConsultEnd,
    DialCustomer,
    DropAgent,
    DropLeg,
    EmitEvent,
    EndCall,
    Finish,
    HangupLeg,
    Rewire,
    RunMenu,
    ScheduleAnnouncements,
    StartRecording,
    StopAnnouncements,
    StopPrompt,
    WithdrawOffer,
)
from ivr.call_core.commands import on_command
from ivr.call_core.leg_facts import (
    LegGone,
    consult_failure,
    customer_unreachable_outcome,
    on_leg_answered,
    on_leg_gone,
    on_media_ready,
)
from ivr.call_core.offer import agent_missed, enqueue
from ivr.call_core.state import (
    AgentSide,
    CallPhase,
    CommandIn,
    Consult,
    Conversation,
    LegsView,
    OriginateRequest,
    Recording,
    RoutingAsk,
    forced_outcome,
)
from ivr.call_core.timers import on_tick
from ivr.call_core.transfer import consult_ended
from ivr.spec import SlotSpec
from ivr.wiring import WiringState, present_edges, wanted_edges
from tests.engine.core_setup import SETUP, clock, conv_in, conv_out, one_node_runner

SHORT = 5.0  # short_abandon_seconds


def gone(
    role: str, *, confirmed: bool = True, code: int = 200, intentional: bool = False
) -> LegGone:
    return LegGone(role=role, confirmed=confirmed, code=code, reason="r", intentional=intentional)


def ends(actions: Sequence[object]) -> list[EndCall]:
    return [a for a in actions if isinstance(a, EndCall)]


def events(actions: Sequence[object]) -> list[EventType]:
    return [a.type for a in actions if isinstance(a, EmitEvent)]


# ---------------------------------------------------------------- the caller hangs up


def test_caller_gone_in_menu_is_a_menu_hangup() -> None:
    actions = on_leg_gone(conv_in(), gone("caller"), now=10.0, short_abandon_seconds=SHORT)
    assert events(actions) == [EventType.caller_hung_up]
    assert actions[0] == EmitEvent(EventType.caller_hung_up, {"state": "menu"})
    assert ends(actions) == [EndCall("caller_hung_up", "menu_hangup")]


@pytest.mark.parametrize(("waited", "outcome"), [(2.0, "short_abandoned"), (30.0, "abandoned")])
def test_caller_gone_while_queued_abandons(waited: float, outcome: str) -> None:
    conv = conv_in(CallPhase.waiting, routing=RoutingAsk(queue="sales", queued_at=100.0))
    actions = on_leg_gone(conv, gone("caller"), now=100.0 + waited, short_abandon_seconds=SHORT)
    assert EmitEvent(EventType.abandoned, {"queue": "sales", "waited": waited}) in actions
    assert ends(actions) == [EndCall("caller_hung_up", outcome)]


def test_caller_gone_while_offered_abandons_too() -> None:
    conv = conv_in(CallPhase.reserved, routing=RoutingAsk(queue="q", queued_at=0.0))
    actions = on_leg_gone(conv, gone("caller"), now=60.0, short_abandon_seconds=SHORT)
    assert ends(actions) == [EndCall("caller_hung_up", "abandoned")]


@pytest.mark.parametrize("outcome", ["callback", "closed"])
def test_caller_leaving_after_routing_said_goodbye_is_no_abandon(outcome: str) -> None:
    conv = conv_in(CallPhase.waiting, outcome=outcome)
    actions = on_leg_gone(conv, gone("caller"), now=60.0, short_abandon_seconds=SHORT)
    assert EventType.abandoned not in events(actions)
    assert ends(actions) == [EndCall("caller_hung_up", outcome)]


def test_caller_gone_after_answer_keeps_the_outcome() -> None:
    bridged = conv_in(CallPhase.connected, answered=True)
    actions = on_leg_gone(bridged, gone("caller"), now=1.0, short_abandon_seconds=SHORT)
    assert ends(actions) == [EndCall("caller_hung_up", "answered")]
    transferred = conv_in(CallPhase.connected, answered=True, outcome="transferred")
    actions = on_leg_gone(transferred, gone("caller"), now=1.0, short_abandon_seconds=SHORT)
    assert ends(actions) == [EndCall("caller_hung_up", "transferred")]


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(486, "busy"), (600, "busy"), (480, "no_answer"), (487, "no_answer"), (503, "failed")],
)
def test_customer_not_reached(code: int, outcome: str) -> None:
    conv = conv_out()
    leg = gone("caller", confirmed=False, code=code)
    actions = on_leg_gone(conv, leg, now=1.0, short_abandon_seconds=SHORT)
    assert events(actions) == [EventType.command_failed]
    assert ends(actions) == [EndCall("customer_unreachable", outcome)]
    assert customer_unreachable_outcome(code) == outcome


def test_an_ended_call_ignores_late_legs() -> None:
    conv = conv_in(CallPhase.connected, clock=clock(close_at=5.0))
    assert on_leg_gone(conv, gone("caller"), now=1.0, short_abandon_seconds=SHORT) == []


# ---------------------------------------------------------------- the agent's leg ends


def test_agent_hangs_up_a_connected_call() -> None:
    conv = conv_in(CallPhase.connected, answered=True, agent=AgentSide(uri="sip:a@x"))
    actions = on_leg_gone(conv, gone("agent"), now=1.0, short_abandon_seconds=SHORT)
    assert actions == [
        EmitEvent(EventType.agent_hung_up, {"agent_uri": "sip:a@x"}),
        EndCall("agent_hung_up", "answered"),
    ]


def test_agent_rejects_an_offer_the_caller_waits_again() -> None:
    conv = conv_in(CallPhase.reserved)
    actions = on_leg_gone(
        conv, gone("agent", confirmed=False, code=486), now=1.0, short_abandon_seconds=SHORT
    )
    assert actions == [AgentMissed("rejected")]


def test_agent_unreachable_ends_an_outbound_call() -> None:
    conv = conv_out()
    actions = on_leg_gone(
        conv, gone("agent", confirmed=False, code=408), now=1.0, short_abandon_seconds=SHORT
    )
    assert actions == [AgentMissed("408 r"), EndCall("agent_unreachable", "failed")]


def test_an_agent_leg_we_hung_up_changes_nothing() -> None:
    conv = conv_in(CallPhase.connected)
    assert (
        on_leg_gone(conv, gone("agent", intentional=True), now=1.0, short_abandon_seconds=SHORT)
        == []
    )


def test_agent_hanging_up_while_talking_to_the_target_hands_over() -> None:
    consult = Consult(kind="agent", to="t", uri="sip:t@x", agent_id=7, deadline=None, answered=True)
    conv = conv_in(CallPhase.connected, consult=consult)
    actions = on_leg_gone(conv, gone("agent"), now=1.0, short_abandon_seconds=SHORT)
    assert actions == [ConsultComplete(by="agent_hung_up")]


def test_agent_hanging_up_while_the_target_rings_ends_both() -> None:
    consult = Consult(kind="agent", to="t", uri="sip:t@x", agent_id=7, deadline=50.0)
    conv = conv_in(CallPhase.connected, consult=consult, answered=True)
    actions = on_leg_gone(conv, gone("agent"), now=1.0, short_abandon_seconds=SHORT)
    assert actions[0] == ConsultEnd("agent_hung_up", reconnect=False)
    assert ends(actions) == [EndCall("agent_hung_up", "answered")]


# ---------------------------------------------------------------- supervisor and consultation


def test_supervisor_leaving_clears_the_mode() -> None:
    conv = conv_in(CallPhase.connected, agent=AgentSide(super_mode="barge"))
    assert on_leg_gone(conv, gone("super"), now=1.0, short_abandon_seconds=SHORT) == [Rewire()]
    assert conv.agent.super_mode == ""


@pytest.mark.parametrize(
    ("answered", "code", "why"),
    [
        (True, 200, "target_hung_up"),
        (False, 486, "declined"),
        (False, 603, "declined"),
        (False, 480, "no_answer"),
        (False, 500, "failed"),
    ],
)
def test_consult_target_leg_ends(answered: bool, code: int, why: str) -> None:
    consult = Consult(
        kind="number", to="n", uri="sip:n@x", agent_id=None, deadline=None, answered=answered
    )
    conv = conv_in(CallPhase.connected, consult=consult)
    leg = gone("consult", confirmed=answered, code=code)
    assert on_leg_gone(conv, leg, now=1.0, short_abandon_seconds=SHORT) == [
        ConsultEnd(why, code=code)
    ]
    assert consult_failure(answered, code) == why
    # a target leg we hung up ourselves was reported then
    leg = gone("consult", code=code, intentional=True)
    assert on_leg_gone(conv, leg, now=1.0, short_abandon_seconds=SHORT) == []


# ---------------------------------------------------------------- timers


def test_offer_ring_timeout_withdraws_the_offer_once() -> None:
    conv = conv_in(CallPhase.reserved, clock=clock(ring_until=10.0))
    view = LegsView(any_left=True, agent_ringing=True)
    assert on_tick(conv, 9.9, view, next_media_check=100.0) == []
    assert on_tick(conv, 10.0, view, next_media_check=100.0) == [WithdrawOffer("ring_timeout")]
    assert conv.clock.ring_until is None
    assert on_tick(conv, 11.0, view, next_media_check=100.0) == []


def test_outbound_customer_ring_timeout_cancels_the_customer_leg() -> None:
    conv = conv_out(clock=clock(ring_until=10.0))
    view = LegsView(any_left=True, customer_ringing=True)
    assert on_tick(conv, 10.0, view, next_media_check=100.0) == [HangupLeg("caller")]


def test_consult_ring_timeout() -> None:
    consult = Consult(kind="agent", to="t", uri="sip:t@x", agent_id=7, deadline=20.0)
    conv = conv_in(CallPhase.connected, consult=consult)
    assert on_tick(conv, 20.0, LegsView(any_left=True), next_media_check=100.0) == [
        ConsultEnd("no_answer")
    ]


def test_prompt_end_and_closing_message() -> None:
    conv = conv_in(CallPhase.waiting, clock=clock(prompt_until=5.0))
    view = LegsView(any_left=True, prompt_playing=True)
    assert on_tick(conv, 5.0, view, next_media_check=100.0) == [StopPrompt()]
    conv = conv_in(
        CallPhase.waiting, hangup_after_prompt=True, outcome="closed", clock=clock(prompt_until=5.0)
    )
    assert on_tick(conv, 5.0, view, next_media_check=100.0) == [
        StopPrompt(),
        EndCall("message_played", "closed"),
    ]


def test_max_duration_ends_the_call_else_media_is_checked() -> None:
    conv = conv_in(CallPhase.connected, answered=True, clock=clock(max_until=50.0))
    view = LegsView(any_left=True)
    assert on_tick(conv, 20.0, view, next_media_check=30.0) == []
    assert on_tick(conv, 30.0, view, next_media_check=30.0) == [CheckMedia(30.0)]
    assert on_tick(conv, 50.0, view, next_media_check=30.0) == [EndCall("max_duration", "answered")]
    assert forced_outcome(conv_in()) == "failed"


def test_an_ended_call_finishes_when_its_legs_are_gone_or_given_up() -> None:
    conv = conv_in(CallPhase.connected, clock=clock(close_at=10.0))
    assert on_tick(conv, 10.0, LegsView(any_left=True), next_media_check=0.0) == []
    assert on_tick(conv, 10.0, LegsView(any_left=False), next_media_check=0.0) == [Finish()]
    assert on_tick(conv, 15.0, LegsView(any_left=True), next_media_check=0.0) == [
        Finish(forced=True)
    ]


# ---------------------------------------------------------------- media wiring


def test_menu_caller_hears_the_prompt_and_is_recorded() -> None:
    state = WiringState(CallPhase.menu, recording=True, prompt_playing=True)
    assert wanted_edges(state) == {("prompt", "caller"), ("prompt", "rec"), ("caller", "rec")}


def test_waiting_caller_hears_music_not_recorded() -> None:
    for phase in (CallPhase.waiting, CallPhase.reserved, CallPhase.transferring):
        assert wanted_edges(WiringState(phase, recording=True)) == {
            ("music", "caller"),
            ("caller", "rec"),
        }


def test_bridged_talk_and_hold() -> None:
    talk = wanted_edges(WiringState(CallPhase.connected, recording=True))
    assert talk == {("caller", "agent"), ("agent", "caller"), ("caller", "rec"), ("agent", "rec")}
    held = wanted_edges(WiringState(CallPhase.connected, held=True))
    assert held == {("music", "caller")}
    paused = wanted_edges(WiringState(CallPhase.connected, recording=False))
    assert paused == {("caller", "agent"), ("agent", "caller")}


def test_consultation_wiring() -> None:
    ringing = WiringState(CallPhase.connected, held=True, recording=True, consult=True)
    assert wanted_edges(ringing) == {
        ("music", "caller"),
        ("consult", "agent"),
        ("caller", "rec"),
        ("agent", "rec"),
    }
    talking = WiringState(
        CallPhase.connected, held=True, recording=True, consult=True, consult_answered=True
    )
    edges = wanted_edges(talking)
    assert {("agent", "consult"), ("consult", "agent"), ("consult", "rec")} <= edges
    assert ("caller", "consult") not in edges and ("consult", "caller") not in edges


@pytest.mark.parametrize(
    ("mode", "speaks_to"),
    [("listen", set()), ("whisper", {"agent"}), ("barge", {"agent", "caller", "rec"})],
)
def test_supervisor_modes(mode: str, speaks_to: set[str]) -> None:
    edges = wanted_edges(WiringState(CallPhase.connected, recording=True, super_mode=mode))
    assert {("caller", "super"), ("agent", "super")} <= edges
    assert {sink for source, sink in edges if source == "super"} == speaks_to


def test_an_ended_call_wants_nothing_and_absent_ports_are_dropped() -> None:
    assert wanted_edges(WiringState(CallPhase.connected, closed=True, recording=True)) == set()
    wanted = wanted_edges(WiringState(CallPhase.connected, super_mode="listen"))
    assert present_edges(wanted, {"caller", "agent"}) == {("caller", "agent"), ("agent", "caller")}


def test_wiring_state_of_a_conversation() -> None:
    consult = Consult(kind="agent", to="t", uri="u", agent_id=1, deadline=None, answered=True)
    conv = conv_in(
        CallPhase.connected,
        consult=consult,
        recording=Recording(paused=True),
        agent=AgentSide(super_mode="listen"),
    )
    state = WiringState.of(conv, recorder=True, prompt_playing=False)
    assert state == WiringState(
        CallPhase.connected, consult=True, consult_answered=True, super_mode="listen"
    )


def test_slot_spec_allows_only_its_sources() -> None:
    spec = SlotSpec("n-s00", 0, "127.0.0.1", 21000, 30000, 16, ("127.0.0.1:5060", "10.0.0.9"))
    assert spec.source_allowed("127.0.0.1:5060")
    assert not spec.source_allowed("127.0.0.1:5070")
    assert spec.source_allowed("10.0.0.9:1234")
    assert spec.uri == "sip:127.0.0.1:21000"


# ---------------------------------------------------------------- commands decided without SIP


def command(conv: Conversation, type_: str, ringing: bool = False, now: float = 0.0,
            **data: object) -> object:  # fmt: skip
    legs = LegsView(any_left=True, agent_ringing=ringing, roles=frozenset({"caller"}), lines=1)
    return on_command(conv, CommandIn(type_, dict(data), legs, SETUP, now, 1000.0 + now))


def test_hold_and_unhold_a_connected_call() -> None:
    conv = conv_in(CallPhase.connected)
    assert command(conv, "hold") == [Rewire(), EmitEvent(EventType.held)]
    assert conv.held
    assert command(conv, "hold") == [CommandRefused("only a connected call can be held")]
    assert command(conv, "unhold") == [Rewire(), EmitEvent(EventType.unheld)]
    assert not conv.held
    assert command(conv, "unhold") == [CommandRefused("call is not on hold")]
    queued = conv_in(CallPhase.waiting)
    assert command(queued, "hold") == [CommandRefused("only a connected call can be held")]


def test_hold_is_refused_during_a_consultation() -> None:
    consult = Consult(kind="agent", to="t", uri="u", agent_id=7, deadline=9.0)
    conv = conv_in(CallPhase.connected, consult=consult, held=True)
    refused = [CommandRefused("a consultation is in progress: complete or cancel it")]
    assert command(conv, "hold") == refused
    assert command(conv, "unhold") == refused
    assert conv.held


def test_pause_and_resume_recording_rewire_and_mark_the_span() -> None:
    conv = conv_in(CallPhase.connected, recording=Recording(id="r-1", started_at=100.0))
    paused = command(conv, "pause_recording", now=112.5, agent_id=7)
    mark = {"recording_id": "r-1", "offset_s": 12.5, "by": 7}
    assert paused == [Rewire(), EmitEvent(EventType.recording_paused, mark)]
    assert conv.recording.paused
    assert not wanted_edges(WiringState.of(conv, recorder=True, prompt_playing=False)) & {
        ("caller", "rec"),
        ("agent", "rec"),
    }
    again = command(conv, "pause_recording", now=113)
    assert again == [CommandRefused("the recording is already paused")]
    resumed = command(conv, "resume_recording", now=120.5, agent_id=7)
    # the file goes on where it stopped: 8 s paused are not in it
    mark = {"recording_id": "r-1", "offset_s": 12.5, "by": 7, "paused_s": 8.0}
    assert resumed == [Rewire(), EmitEvent(EventType.recording_resumed, mark)]
    assert not conv.recording.paused
    assert conv.recording.offset(130.5) == 22.5
    assert command(conv, "resume_recording", now=121) == [
        CommandRefused("the recording is not paused")
    ]


def test_pause_is_refused_without_a_recording() -> None:
    conv = conv_in(CallPhase.connected)
    assert command(conv, "pause_recording") == [CommandRefused("this call is not being recorded")]
    assert not conv.recording.paused


def test_hangup_command_ends_the_call_or_only_the_consultation() -> None:
    consult = Consult(kind="agent", to="t", uri="u", agent_id=7, deadline=9.0)
    conv = conv_in(CallPhase.connected, consult=consult, answered=True)
    assert command(conv, "hangup", agent_id="7") == [ConsultEnd("target_hung_up")]
    assert command(conv, "hangup", agent_id=3) == [EndCall("command_hangup", "answered")]
    assert command(conv_in(), "hangup") == [EndCall("command_hangup", "failed")]


def test_cancel_offer() -> None:
    offering = conv_in(CallPhase.reserved, agent=AgentSide(id=5), routing=RoutingAsk(queue="sales"))
    missed = {"agent_uri": "", "agent_id": 5, "reason": "withdrawn", "queue": "sales"}
    assert command(offering, "cancel_offer", ringing=True, agent_id=5) == [
        DropLeg("agent", "withdrawn"),
        EmitEvent(EventType.agent_missed, missed),
        ScheduleAnnouncements(),
        Rewire(),
    ]
    assert offering.state == CallPhase.waiting
    offering = conv_in(CallPhase.reserved, agent=AgentSide(id=5))
    timed_out = command(offering, "cancel_offer", ringing=True, agent_id=5, reason="ring_timeout")
    assert isinstance(timed_out, list) and timed_out[0] == DropLeg("agent", "ring_timeout")
    offering = conv_in(CallPhase.reserved, agent=AgentSide(id=5))
    refused = [CommandRefused("no phone is ringing for agent 6 on this call")]
    assert command(offering, "cancel_offer", ringing=True, agent_id=6) == refused
    answered = [CommandRefused("no phone is ringing for agent 5 on this call")]
    assert command(offering, "cancel_offer", ringing=False, agent_id=5) == answered
    consult = Consult(kind="agent", to="t", uri="u", agent_id=7, deadline=9.0)
    consulting = conv_in(CallPhase.connected, consult=consult)
    assert command(consulting, "cancel_offer", agent_id=7) == [ConsultEnd("no_answer")]


def test_cancel_offer_of_an_outbound_call_ends_it() -> None:
    originating = conv_out(agent=AgentSide(id=5))
    actions = command(originating, "cancel_offer", ringing=True, agent_id=5)
    assert isinstance(actions, list)
    assert actions[0] == DropLeg("agent", "withdrawn")
    assert ends(actions) == [EndCall("agent_unreachable", "failed")]


def test_requeue() -> None:
    conv = conv_in(
        CallPhase.reserved,
        routing=RoutingAsk(queue="sales"),
        clock=clock(ring_until=50.0),
        agent=AgentSide(super_mode="listen"),
    )
    actions = command(conv, "requeue", queue="repair")
    assert isinstance(actions, list) and actions[0] == DropAgent("requeued")
    queued = actions[1]
    assert isinstance(queued, EmitEvent) and queued.type == EventType.call_queued
    assert queued.data["queue"] == "repair" and queued.data["previous_queue"] == "sales"
    assert conv.clock.ring_until is None and conv.agent.super_mode == ""
    assert conv.state == CallPhase.waiting and conv.routing.queue == "repair"
    assert command(conv, "requeue", queue="nope") == [CommandRefused("queue 'nope' is not defined")]
    bridged = conv_in(CallPhase.connected)
    assert command(bridged, "requeue", queue="repair") == [
        CommandRefused("call is connected, not waiting")
    ]


def test_an_unknown_command_is_refused() -> None:
    assert command(conv_in(CallPhase.waiting), "nonsense") == [
        CommandRefused("unknown command type 'nonsense'")
    ]


def test_hand_over_event_names_the_target() -> None:
    number = Consult(kind="number", to="lawyer", uri="sip:9@t", agent_id=None, deadline=None)
    assert number.handed_over(answered=True, by="command") == {
        "kind": "number",
        "to": "lawyer",
        "agent_id": None,
        "agent_uri": "sip:9@t",
        "consult": True,
        "answered": True,
        "by": "command",
    }
    agent = Consult(kind="agent", to="1002", uri="sip:1002@e", agent_id=2, deadline=1.0)
    facts = agent.handed_over(answered=False, by="agent_hung_up")
    assert facts["to"] == "sip:1002@e" and facts["answered"] is False


# ---------------------------------------------------------------- answers and media


def test_agent_answers_an_offer_the_call_is_bridged() -> None:
    conv = conv_in(
        CallPhase.reserved,
        agent=AgentSide(uri="sip:a@e", id=4),
        routing=RoutingAsk(queue="q"),
        clock=clock(ring_until=9.0),
    )
    who = {"agent_uri": "sip:a@e", "agent_id": 4, "queue": "q"}
    assert on_leg_answered(conv, "agent") == [
        EmitEvent(EventType.agent_answered, who),
        StopAnnouncements(),
        Rewire(),
        EmitEvent(EventType.bridged, who),
    ]
    assert conv.state == CallPhase.connected and conv.answered and conv.clock.ring_until is None


def test_transfer_target_answers_the_transfer_is_done() -> None:
    conv = conv_in(
        CallPhase.transferring, agent=AgentSide(uri="sip:8001@e"), clock=clock(ring_until=30.0)
    )
    actions = on_leg_answered(conv, "agent")
    assert actions[0] == EmitEvent(EventType.transferred, {"kind": "number", "to": "sip:8001@e"})
    assert conv.state == CallPhase.connected


def test_outbound_agent_answers_then_the_customer_is_dialled() -> None:
    conv = conv_out(agent=AgentSide(uri="sip:a@e", id=4), clock=clock(ring_until=30.0))
    assert on_leg_answered(conv, "agent") == [
        EmitEvent(EventType.agent_answered, {"agent_uri": "sip:a@e", "agent_id": 4}),
        DialCustomer(),
    ]
    assert conv.state == CallPhase.originating and conv.answered


def test_supervisor_and_consult_target_answer() -> None:
    conv = conv_in(CallPhase.connected, agent=AgentSide(super_mode="listen", super_uri="sip:s@e"))
    assert on_leg_answered(conv, "super") == [
        EmitEvent(EventType.supervisor_joined, {"mode": "listen", "uri": "sip:s@e"}),
        Rewire(),
    ]
    assert on_leg_answered(conv, "consult") == [DropLeg("consult", "no_consultation")]
    consult = Consult(kind="agent", to="t", uri="u", agent_id=1, deadline=9.0)
    conv.consult = consult
    assert on_leg_answered(conv, "consult") == [
        EmitEvent(EventType.consult_answered, consult.facts()),
        Rewire(),
    ]
    assert consult.answered and consult.deadline is None


def test_offer_missed_puts_an_inbound_caller_back_in_line() -> None:
    conv = conv_in(
        CallPhase.reserved,
        agent=AgentSide(uri="sip:a@e", id=4),
        routing=RoutingAsk(queue="q"),
        clock=clock(ring_until=3.0),
    )
    actions = agent_missed(conv, "ring_timeout")
    assert actions == [
        EmitEvent(
            EventType.agent_missed,
            {"agent_uri": "sip:a@e", "agent_id": 4, "reason": "ring_timeout", "queue": "q"},
        ),
        ScheduleAnnouncements(),
        Rewire(),
    ]
    assert conv.state == CallPhase.waiting and conv.clock.ring_until is None
    outbound = conv_out(clock=clock(ring_until=3.0))
    assert ScheduleAnnouncements() not in agent_missed(outbound, "x")
    assert outbound.state == CallPhase.originating


def test_caller_media_starts_recording_and_the_menu() -> None:
    conv = conv_in(runner=one_node_runner())
    actions = on_media_ready(conv, "caller", first=True, now=0.0)
    assert actions[0] == StartRecording()
    assert isinstance(actions[1], RunMenu) and actions[-1] == Rewire()
    assert on_media_ready(conv, "caller", first=False, now=1.0) == [Rewire()]


def test_outbound_customer_media_bridges_or_starts_the_survey() -> None:
    conv = conv_out(caller="13800000000", agent=AgentSide(uri="sip:a@e"))
    assert on_media_ready(conv, "caller", first=True, now=0.0) == [
        EmitEvent(EventType.bridged, {"agent_uri": "sip:a@e", "number": "13800000000"}),
        Rewire(),
    ]
    assert conv.state == CallPhase.connected and conv.answered
    survey = conv_out(originate=OriginateRequest(survey=True), runner=one_node_runner())
    actions = on_media_ready(survey, "caller", first=True, now=0.0)
    assert actions[0] == StartRecording() and isinstance(actions[1], RunMenu)
    assert survey.state == CallPhase.menu and survey.outcome == "answered"
    agent_side = conv_out()
    assert on_media_ready(agent_side, "agent", first=True, now=0.0) == [StartRecording(), Rewire()]


def test_enqueue_then_requeue_keeps_the_first_queued_time() -> None:
    conv = conv_in(runner=one_node_runner())
    actions = enqueue(conv, "sales", 2, ("zh",), wall_now=100.0)
    assert conv.state == CallPhase.waiting and conv.routing.queued_at == 100.0
    first = actions[0]
    assert isinstance(first, EmitEvent) and first.type == EventType.call_queued
    assert first.node == "main"
    assert first.data["queue"] == "sales" and first.data["skills"] == ["zh"]
    assert first.data["queued_epoch"] == 100.0 and "previous_queue" not in first.data
    assert actions[1:] == [ScheduleAnnouncements(), Rewire()]
    moved = enqueue(conv, "repair", 2, ("zh",), requeued_from="sales", wall_now=150.0)
    event = moved[0]
    assert isinstance(event, EmitEvent)
    assert event.data["previous_queue"] == "sales" and event.data["queued_epoch"] == 100.0


def test_consult_ends_and_the_caller_it_held_comes_back() -> None:
    consult = Consult(
        kind="agent", to="t", uri="u", agent_id=1, deadline=9.0, started=10.0, held_caller=True
    )
    conv = conv_in(CallPhase.connected, consult=consult, held=True)
    actions = consult_ended(conv, "cancelled", agent_present=True, wall_now=12.5)
    assert actions[:2] == [DropLeg("consult", "cancelled"), Rewire()]
    ended = actions[2]
    assert isinstance(ended, EmitEvent) and ended.type == EventType.consult_ended
    assert ended.data["reason"] == "cancelled" and ended.data["seconds"] == 2.5
    assert actions[3] == EmitEvent(EventType.unheld, {"reason": "consult_ended"})
    assert conv.consult is None and not conv.held
    assert consult_ended(conv, "again", agent_present=True, wall_now=13.0) == []


def test_consult_ending_with_the_call_or_agent_gone_leaves_the_caller_held() -> None:
    for reconnect, agent_present in ((False, True), (True, False)):
        consult = Consult(kind="number", to="n", uri="u", agent_id=None, deadline=None)
        consult.held_caller = True
        conv = conv_in(CallPhase.connected, consult=consult, held=True)
        actions = consult_ended(
            conv,
            "no_answer",
            code=480,
            reconnect=reconnect,
            agent_present=agent_present,
            wall_now=1.0,
        )
        assert EmitEvent(EventType.unheld, {"reason": "consult_ended"}) not in actions
        assert conv.held
    consult = Consult(kind="agent", to="t", uri="u", agent_id=1, deadline=9.0)  # held before
    conv = conv_in(CallPhase.connected, consult=consult, held=True)
    consult_ended(conv, "cancelled", agent_present=True, wall_now=1.0)
    assert conv.held
