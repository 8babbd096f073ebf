"""Routing through the real Redis contract: the test publishes engine events as the engine
would, runs the router, and reads the commands routing sends to the slots."""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime

import pytest

from callcenter.context import AppContext
from callcenter.errors import Conflict
from callcenter.streams import CallEvent
from callcenter.testkit.config import queues_toml
from cti import services, shifts
from cti.router import Router
from cti.routing import Routing
from tests.cti.conftest import ZONE, EngineSide, TestClock, agent_ids


def ready(ctx: AppContext, clock: TestClock, *extensions: str, gap: float = 1.0) -> list[int]:
    """Log in and make ready, one after the other ``gap`` seconds apart (idle order)."""
    ids = agent_ids(ctx)
    chosen = [ids[e] for e in extensions]
    for agent in chosen:
        services.login(ctx, agent_id=agent, actor="test")
        services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="test")
        clock.advance(gap)
    return chosen


def test_longest_idle_agent_gets_the_call(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    a1002, a1001, a1006 = ready(ctx, clock, "1002", "1001", "1006")
    engine.queue("c1", "repair")
    router.drain()
    assert engine.offers("c1") == [a1002]
    offer = engine.commands("c1", "offer")[0]
    assert offer.data["agent_uri"] == "sip:1002@127.0.0.1:5060"
    assert offer.data["ring_timeout"] == 15
    assert routing.agent(a1002)["state"] == "reserved"
    reserved = engine.routing_events("call_reserved")
    assert [(e.call_id, e.data["agent_id"], e.data["queue"]) for e in reserved] == [
        ("c1", a1002, "repair")
    ]
    engine.queue("c2", "repair")
    router.drain()
    assert engine.offers("c2") == [a1001]
    assert routing.agent(a1006)["state"] == "ready"


@pytest.mark.queues_toml(queues_toml(general={"strategy": "round_robin"}))
def test_round_robin_takes_agents_in_turn(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide
) -> None:
    agents = sorted(ready(ctx, clock, "1003", "1001", "1002"))
    picked = []
    for n in range(5):
        engine.queue(f"rr{n}", "general")
        router.drain()
        (agent,) = engine.offers(f"rr{n}")
        picked.append(agent)
        engine.publish("agent_answered", f"rr{n}", agent_id=agent)
        engine.publish("call_ended", f"rr{n}")
        router.drain()
        services.wrap_up(
            ctx,
            agent_id=agent,
            action="end",
            disposition=None,
            seconds=None,
            then_state="ready",
            reason=None,
            actor="t",
        )
    assert picked == [agents[0], agents[1], agents[2], agents[0], agents[1]]


def test_fewest_calls_today_beats_idle_time(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    a1004, a1008 = ready(ctx, clock, "1004", "1008")
    engine.queue("f1", "fees")
    router.drain()
    assert engine.offers("f1") == [a1004]  # tie on calls: longest idle
    engine.publish("agent_answered", "f1", agent_id=a1004)
    engine.publish("call_ended", "f1")
    router.drain()
    clock.advance(5)
    services.wrap_up(
        ctx,
        agent_id=a1004,
        action="end",
        disposition=None,
        seconds=None,
        then_state="ready",
        reason=None,
        actor="t",
    )
    engine.queue("f2", "fees")
    router.drain()
    assert routing.agent(a1004)["calls_today"] == 1
    assert engine.offers("f2") == [a1008]


def test_skill_level_first_then_longest_idle(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide
) -> None:
    # complaint skill: 1003 = 9, 1007 = 8, 1005 = 6; 1005 has been idle longest.
    a1005, a1007, a1003 = ready(ctx, clock, "1005", "1007", "1003")
    engine.queue("k1", "complaint")
    engine.queue("k2", "complaint")
    engine.queue("k3", "complaint")
    router.drain()
    assert [engine.offers(c) for c in ("k1", "k2", "k3")] == [[a1003], [a1007], [a1005]]


def test_priority_beats_waiting_time_then_fifo_across_queues(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide
) -> None:
    engine.queue("old-general", "general")
    clock.advance(1)
    engine.queue("repair-1", "repair")
    clock.advance(1)
    engine.queue("general-2", "general")
    clock.advance(1)
    engine.queue("urgent", "general", priority=5)
    services.login(ctx, agent_id=agent_ids(ctx)["1001"], actor="t")  # general + repair
    router.drain()
    assert engine.commands("urgent", "offer") == []
    order = []
    agent = agent_ids(ctx)["1001"]
    for _ in range(4):
        services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="t")
        router.drain()
        call = services.routing_for(ctx).agent(agent)["call_id"]
        order.append(call)
        engine.publish("agent_answered", call, agent_id=agent)
        engine.publish("call_ended", call)
        router.drain()
    assert order == ["urgent", "old-general", "repair-1", "general-2"]


def test_member_caller_gets_the_queue_member_priority(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide
) -> None:
    engine.queue("plain", "general", caller="13911110000")
    clock.advance(1)
    engine.queue("member", "general", caller="+86 138 0013 8000")
    router.drain()
    (agent,) = ready(ctx, clock, "1001")
    router.drain()
    assert engine.offers("member") == [agent] and engine.offers("plain") == []


def test_missed_offer_goes_to_the_next_agent_at_once(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    first, second = ready(ctx, clock, "1001", "1002")
    engine.queue("m1", "repair")
    router.drain()
    engine.publish("agent_missed", "m1", agent_id=first, reason="no_answer")
    router.drain()
    assert engine.offers("m1") == [first, second]
    snapshot = routing.agent(first)
    assert (snapshot["state"], snapshot["reason"]) == ("not_ready", "missed")
    assert snapshot["misses_in_a_row"] == 1


def test_ring_timeout_timer_marks_missed_and_reoffers(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    first, second = ready(ctx, clock, "1001", "1002")
    engine.queue("t1", "repair")
    router.drain()
    clock.advance(10)
    router.drain()
    assert engine.offers("t1") == [first]  # not yet
    clock.advance(8.5)  # past the 15 s ring timeout and the 3 s grace
    router.drain()
    assert engine.offers("t1") == [first, second]
    assert routing.agent(first)["reason"] == "missed"
    # The engine's answer by the first agent arrives late: it still counts, once.
    engine.publish("agent_answered", "t1", agent_id=first)
    router.drain()
    assert routing.agent(first)["state"] == "on_call"
    assert routing.agent(second)["state"] == "ready"
    assert routing.call("t1")["outcome:1"] == "answered"
    assert routing.call("t1")["agent"] == str(first)


@pytest.mark.queues_toml(queues_toml(repair={"missed_offers_to_logout": 2}))
def test_n_misses_in_a_row_log_the_agent_out(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    (agent,) = ready(ctx, clock, "1001")
    engine.queue("n1", "repair")
    router.drain()
    engine.publish("agent_missed", "n1", agent_id=agent)
    router.drain()
    assert routing.agent(agent)["state"] == "not_ready"
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="t")
    router.drain()
    assert engine.offers("n1") == [agent, agent]
    engine.publish("agent_missed", "n1", agent_id=agent)
    router.drain()
    assert routing.agent(agent)["state"] == "logged_out"
    assert agent not in routing.logged_in_agents()
    assert routing.call("n1")["state"] == "waiting"  # the caller keeps waiting


def test_answer_resets_the_miss_count(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    (agent,) = ready(ctx, clock, "1001")
    engine.queue("r1", "repair")
    router.drain()
    engine.publish("agent_missed", "r1", agent_id=agent)
    router.drain()
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="t")
    router.drain()
    engine.publish("agent_answered", "r1", agent_id=agent)
    router.drain()
    assert routing.agent(agent)["misses_in_a_row"] == 0


def test_overflow_after_the_wait_keeps_the_callers_place(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    # 1003 serves general (and complaint), not repair.
    services.login(ctx, agent_id=agent_ids(ctx)["1003"], actor="t")
    engine.queue("o1", "repair")
    router.drain()
    clock.advance(5)
    engine.queue("g1", "general")
    router.drain()
    clock.advance(84)  # repair overflows to general after 90 s
    router.drain()
    assert routing.call("o1")["queue"] == "repair"
    clock.advance(2)
    router.drain()
    assert routing.call("o1")["queue"] == "general"
    assert [c.data for c in engine.commands("o1", "requeue")] == [{"queue": "general"}]
    (event,) = engine.routing_events("call_overflowed")
    assert (event.data["from_queue"], event.data["to_queue"]) == ("repair", "general")
    assert event.data["waited"] == pytest.approx(91)
    agent = agent_ids(ctx)["1003"]
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="t")
    router.drain()
    assert engine.offers("o1") == [agent]  # it arrived before g1: still first
    stats = {q["queue"]: q["stats"] for q in routing.queue_status()}
    assert stats["repair"] == {"entered": 1, "overflowed": 1}
    assert stats["general"]["entered"] == 2


def test_callback_keeps_the_place_and_calls_back_agent_first(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    services.login(ctx, agent_id=agent_ids(ctx)["1001"], actor="t")  # staffed, not ready
    engine.queue("cb1", "general", caller="13800138000")
    clock.advance(1)
    engine.queue("cb2", "general")
    router.drain()
    clock.advance(121)  # general offers a call-back after 120 s
    router.drain()
    (play,) = engine.commands("cb1", "play")
    assert play.data["prompt"] == "callback_offer" and "请按1" in play.data["text"]
    engine.publish("callback_requested", "cb1", queue="general", number="13800138000")
    engine.publish("caller_hung_up", "cb1")
    engine.publish("call_ended", "cb1", reason="callback_requested")
    router.drain()
    assert routing.call("cb1")["state"] == "waiting"
    (scheduled,) = engine.routing_events("callback_scheduled")
    assert scheduled.data["position"] == 1
    agent = agent_ids(ctx)["1001"]
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="t")
    router.drain()
    (originate,) = engine.engine_commands("originate")
    assert originate.data["purpose"] == "callback"
    assert originate.data["number"] == "13800138000"
    assert originate.data["agent_uri"] == "sip:1001@127.0.0.1:5060"  # the agent leg first
    assert originate.data["parent_call_id"] == "cb1"
    assert engine.offers("cb2") == []
    leg = originate.call_id
    engine.publish("agent_answered", leg, agent_id=agent)
    router.drain()
    assert routing.agent(agent)["state"] == "on_call"
    assert routing.call("cb1")["outcome:1"] == "called_back"
    engine.publish("call_ended", leg)
    router.drain()
    services.wrap_up(
        ctx,
        agent_id=agent,
        action="end",
        disposition=None,
        seconds=None,
        then_state="ready",
        reason=None,
        actor="t",
    )
    router.drain()
    assert engine.offers("cb2") == [agent]


def test_key_press_after_the_offer_takes_the_callback(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    """The engine reports keys pressed while queued (node "queued"): "1" after the offer."""
    services.login(ctx, agent_id=agent_ids(ctx)["1001"], actor="t")
    engine.queue("kp", "general", caller="13911112222")
    router.drain()
    engine.publish("digit_received", "kp", digit="1")  # not offered yet: ignored
    router.drain()
    assert routing.call("kp")["callback"] == "0"
    clock.advance(121)
    router.drain()
    event = CallEvent(type="digit_received", call_id="kp", node="queued", data={"digit": "1"})
    ctx.redis.xadd(ctx.keys.events, event.to_fields())  # type: ignore[arg-type]
    router.drain()
    call = routing.call("kp")
    assert (call["callback"], call["number"], call["state"]) == ("1", "13911112222", "waiting")
    assert [c.data["prompt"] for c in engine.commands("kp", "play")] == [
        "callback_offer",
        "system.callback",
    ]
    # The engine hangs up once the confirmation has played; routing's hangup is a backstop.
    assert engine.commands("kp", "play")[1].data["hangup_after"] is True
    clock.advance(29)
    router.drain()
    assert engine.commands("kp", "hangup") == []
    clock.advance(1)
    router.drain()
    assert len(engine.commands("kp", "hangup")) == 1
    engine.publish("call_ended", "kp")
    router.drain()
    assert routing.call("kp")["state"] == "waiting"  # keeps the place
    # The confirmation tells the engine the caller no longer waits (leaving is no abandon).
    assert engine.commands("kp", "play")[1].data["outcome"] == "callback"


def test_caller_who_hangs_up_after_the_message_gets_no_late_hangup(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    services.login(ctx, agent_id=agent_ids(ctx)["1001"], actor="t")
    engine.queue("kh", "general", caller="13911112222")
    router.drain()
    clock.advance(121)  # the call-back offer
    router.drain()
    event = CallEvent(type="digit_received", call_id="kh", node="queued", data={"digit": "1"})
    ctx.redis.xadd(ctx.keys.events, event.to_fields())  # type: ignore[arg-type]
    router.drain()
    assert routing.call("kh")["callback"] == "1"
    engine.publish("caller_hung_up", "kh")  # before routing's hang-up after the confirmation
    engine.publish("call_ended", "kh")
    router.drain()
    clock.advance(30)
    router.drain()
    assert engine.commands("kh", "hangup") == []  # it would only come back as command_failed
    assert routing.call("kh")["state"] == "waiting"


def test_expected_wait_over_the_threshold_offers_a_callback_at_once(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    services.login(ctx, agent_id=agent_ids(ctx)["1001"], actor="t")
    for n in range(3):  # 1 agent x 180 s each: the 2nd caller expects 360 s > 300 s
        engine.queue(f"w{n}", "general")
    router.drain()
    assert engine.commands("w0", "play") == []
    assert [c.data["reason"] for c in engine.commands("w1", "play")] == ["expected_wait"]
    assert routing.call("w2")["position"] == "3"
    assert routing.call("w2")["expected_wait"] == "540"


def test_position_and_expected_wait_for_the_engines_announcements(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    services.login(ctx, agent_id=agent_ids(ctx)["1001"], actor="t")
    engine.queue("a0", "general")
    engine.queue("a1", "general")
    router.drain()
    stats = ctx.keys.routing("queue:general:stats")
    waiting = ctx.keys.routing("queue:general:waiting")
    # What the engine reads: the caller's rank and the seconds per place in line.
    assert ctx.redis.zrank(waiting, "a1") == 1
    assert ctx.redis.hget(stats, "seconds_each") == "180.0"
    services.login(ctx, agent_id=agent_ids(ctx)["1002"], actor="t")  # two agents now
    clock.advance(30)
    router.drain()
    assert ctx.redis.hget(stats, "seconds_each") == "90.0"
    call = routing.call("a1")
    assert (call["position"], call["expected_wait"]) == ("2", "180")
    assert float(call["position_at"]) == clock.now
    # The engine announces; routing's only play here is the call-back offer (2 x 180 s > 300 s).
    assert [c.data["prompt"] for c in engine.commands("a1", "play")] == ["callback_offer"]


@pytest.mark.queues_toml(queues_toml(callback={"no_agents": "message"}))
def test_no_agents_message_closes_the_call(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    engine.queue("nm", "callback")
    router.drain()
    (play,) = engine.commands("nm", "play")
    assert play.data["prompt"] == "no_agents" and "没有客服人员值班" in play.data["text"]
    assert play.data["outcome"] == "closed"  # the engine ends the call as closed, not failed
    assert play.data["hangup_after"] is True  # ... once the message has played
    assert routing.call("nm")["outcome:1"] == "closed"
    clock.advance(30)  # the engine did not hang up: routing's backstop does
    router.drain()
    assert [c.data["reason"] for c in engine.commands("nm", "hangup")] == ["message_played"]


def test_no_agents_callback_offer_and_wait(
    ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    engine.queue("nc", "general")  # general: no_agents = callback
    engine.queue("nw", "callback")  # callback: no_agents = wait
    router.drain()
    assert [c.data["prompt"] for c in engine.commands("nc", "play")] == ["callback_offer"]
    # The offer says why: nobody is on duty (not "many callers are waiting").
    text = engine.commands("nc", "play")[0].data["text"]
    assert "没有客服人员值班" in text and "请按1" in text and "排队人数较多" not in text
    assert engine.commands("nw") == []
    assert routing.call("nw")["state"] == "waiting"


@pytest.mark.queues_toml(queues_toml(fees={"no_agents": "overflow"}))
def test_no_agents_overflow_moves_the_call_at_once(
    ctx: AppContext, router: Router, engine: EngineSide, routing: Routing
) -> None:
    services.login(ctx, agent_id=agent_ids(ctx)["1001"], actor="t")  # general only, not fees
    engine.queue("no", "fees")
    router.drain()
    assert routing.call("no")["queue"] == "general"
    assert [c.data for c in engine.commands("no", "requeue")] == [{"queue": "general"}]


def test_off_shift_agents_only_where_the_queue_allows(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    (night,) = ready(ctx, clock, "1012")  # night shift, 10:00: off shift
    engine.queue("s1", "general")
    router.drain()
    assert engine.offers("s1") == []
    engine.queue("s2", "callback")  # off_shift_agents_may_answer = true
    router.drain()
    assert engine.offers("s2") == [night]
    assert engine.offers("s1") == []


def test_the_first_eligible_agent_is_found_past_many_ineligible_ones(
    clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    """The ready set is read a chunk at a time: 40 ready agents, the 37 longest idle off shift
    (night shift at 10:00), and the call goes to the longest-idle agent on shift."""
    for n in range(1, 41):
        night = n <= 37
        routing.login(
            9000 + n,
            extension=str(9000 + n),
            uri=f"sip:{9000 + n}@127.0.0.1",
            queues={"general": 5},
            shift="night" if night else "day",
            shift_window=(20 * 60, 8 * 60) if night else (8 * 60, 20 * 60),
            actor="test",
        )
        routing.transition(9000 + n, "ready", actor="test", dispatch=False)
        clock.advance(1)
    engine.queue("deep", "general")
    router.drain()
    assert engine.offers("deep") == [9038]


def test_night_agent_on_shift_at_night(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide
) -> None:
    clock.now = datetime(2026, 11, 30, 23, 30, tzinfo=ZONE).timestamp()
    _day, night = ready(ctx, clock, "1001", "1010")
    engine.queue("late", "general")
    router.drain()
    assert engine.offers("late") == [night]


def test_abandon_while_ringing_frees_the_agent(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    (agent,) = ready(ctx, clock, "1001")
    engine.queue("ab", "repair")
    router.drain()
    engine.publish("abandoned", "ab", queue="repair", waited=3)
    router.drain()
    assert routing.agent(agent)["state"] == "ready"
    assert routing.call("ab")["outcome:1"] == "abandoned"
    engine.queue("ab2", "repair")
    router.drain()
    assert engine.offers("ab2") == [agent]


def test_lead_moves_an_agent_into_a_queue_live(
    ctx: AppContext, clock: TestClock, router: Router, engine: EngineSide, routing: Routing
) -> None:
    from callcenter.auth import Principal
    from callcenter.models import Role

    (agent,) = ready(ctx, clock, "1004")  # general, fees, callback: not repair
    engine.queue("mv", "repair")
    router.drain()
    assert engine.offers("mv") == []
    lead = Principal(user_id=2, username="lead1", role=Role.lead)
    services.move_agent(ctx, lead=lead, agent_id=agent, queues={"repair": 6, "general": 5})
    router.drain()
    assert engine.offers("mv") == [agent]
    assert routing.agent(agent)["queues"] == {"general": 5, "repair": 6}


def test_several_routing_processes_never_double_offer(
    ctx: AppContext, clock: TestClock, engine: EngineSide
) -> None:
    """Eight threads, each with its own Routing (as separate processes would), race."""
    ids = agent_ids(ctx)
    agents = [ids[e] for e in ("1001", "1002", "1005", "1006", "1008", "1009")]
    for agent in agents:
        services.login(ctx, agent_id=agent, actor="t")
    for n in range(40):
        ctx.redis.set(ctx.keys.call_slot(f"p{n}"), f"slot-p{n}")
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            mine = Routing(
                ctx.redis.__class__.from_url(ctx.settings.redis_url, decode_responses=True),
                ctx.keys,
                ctx.config,
                clock=clock,
            )
            for n in range(index, 40, 8):
                mine.enqueue(f"p{n}", "repair", slot=f"slot-p{n}")
                agent = agents[n % len(agents)]
                with contextlib.suppress(Conflict):  # already reserved: fine
                    mine.transition(agent, "ready", actor="t")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    offered: dict[str, int] = {}
    per_agent: dict[int, list[str]] = {}
    for n in range(40):
        offers = engine.offers(f"p{n}")
        assert len(offers) <= 1
        if offers:
            offered[f"p{n}"] = offers[0]
            per_agent.setdefault(offers[0], []).append(f"p{n}")
    assert len(offered) == len(agents)
    assert all(len(calls) == 1 for calls in per_agent.values())


# ---------------------------------------------------------------- shifts


def test_shift_in_force_and_call_attribution(ctx: AppContext) -> None:
    cfg = ctx.config.shifts

    def at(hh: int, mm: int = 0) -> datetime:
        return datetime(2026, 11, 30, hh, mm, tzinfo=ZONE)

    assert shifts.shifts_in_force(cfg, at(8, 30)) == ["day"]
    assert shifts.shifts_in_force(cfg, at(10)) == ["mid", "day"]
    assert shifts.shifts_in_force(cfg, at(20, 30)) == ["night", "mid"]
    assert shifts.shifts_in_force(cfg, at(3)) == ["night"]
    assert shifts.shift_for_call(cfg, at(10)) == "mid"
    assert shifts.shift_for_call(cfg, at(10), agent_shift="day") == "day"
    assert shifts.shift_for_call(cfg, at(3), agent_shift="day") == "night"
    assert shifts.minimum_agents(cfg, at(10)) == 8
    assert shifts.minimum_agents(cfg, at(8, 30)) == 4
    assert shifts.minimum_agents(cfg, at(2)) == 2
    assert shifts.on_shift(cfg, "night", at(7, 59)) and not shifts.on_shift(cfg, "night", at(8))


def test_staffing_alert_below_the_minimum(
    ctx: AppContext, clock: TestClock, router: Router
) -> None:
    report = router.check_staffing()
    assert report["alert"] and report["minimum"] == 8 and report["logged_in"] == 0
    assert "below the minimum of 8" in str(report["message"])
    clock.now = datetime(2026, 11, 30, 23, 0, tzinfo=ZONE).timestamp()
    ready(ctx, clock, "1010", "1011")
    report = router.check_staffing()
    assert not report["alert"] and report["minimum"] == 2 and report["logged_in"] == 2
    assert ctx.redis.hget(ctx.keys.routing("staffing"), "alert") == "false"


def test_ended_calls_are_attributed_to_one_shift(
    ctx: AppContext, router: Router, engine: EngineSide
) -> None:
    from cti.models import Call

    ids = agent_ids(ctx)
    ten = datetime(2026, 11, 30, 10, 0, tzinfo=ZONE)
    late = datetime(2026, 11, 30, 20, 30, tzinfo=ZONE)
    with ctx.sessions() as session, session.begin():
        # As the engine's call-record writer has them when the call ends.
        session.add(Call(id="by-day-agent", arrived_at=ten, answered_at=ten, agent_id=ids["1001"]))
        session.add(Call(id="abandoned-at-ten", arrived_at=ten))
        session.add(Call(id="late", arrived_at=late, answered_at=late, agent_id=ids["1005"]))
    for call_id in ("by-day-agent", "abandoned-at-ten", "late"):
        engine.publish("call_ended", call_id, reason="hangup")
    router.drain()
    with ctx.sessions() as session:
        shift = {c.id: c.shift_code for c in session.query(Call).all()}
    # 1001 works day (on at 10:00); nobody answered the second: the shift that started last
    # (middle, 09:00); 1005 works middle, still on at 20:30.
    assert shift == {"by-day-agent": "day", "abandoned-at-ten": "mid", "late": "mid"}
