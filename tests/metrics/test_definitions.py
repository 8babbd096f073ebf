"""Each definition on hand-made event sequences, published to the real Redis streams and
consumed by the live engine exactly as in production."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.streams import AgentEventType, EventType
from cti.models import Agent
from metrics.consumer import CONSUMER, GROUP
from metrics.live_config import metric_config
from metrics.reader import LiveReader
from metrics.store import MetricStore
from metrics.time_windows import shift_in_force, shifts_in_force

from .conftest import Events, local

E = EventType


def redis_any(ctx: AppContext) -> Any:
    return ctx.redis


def answer(ev: Events, call: str, queue: str, queued, answered, agent: str = "1") -> None:
    ev.call(E.call_queued, call, queued, queue=queue, priority=0)
    ev.call(E.agent_offered, call, answered, agent_id=agent, queue=queue, agent_uri="")
    ev.call(E.agent_answered, call, answered, agent_id=agent, agent_uri="")


def test_short_abandons_are_left_out_of_both_sides_of_the_answer_rate(events: Events) -> None:
    answer(events, "c1", "general", local(28, 10, 0, 0), local(28, 10, 0, 8))
    events.call(E.call_queued, "c2", local(28, 10, 1, 0), queue="general")
    events.call(E.abandoned, "c2", local(28, 10, 1, 3), queue="general", waited=3)  # short
    events.call(E.call_queued, "c3", local(28, 10, 2, 0), queue="general")
    events.call(E.abandoned, "c3", local(28, 10, 2, 40), queue="general", waited=40)
    answer(events, "c4", "general", local(28, 10, 3, 0), local(28, 10, 3, 30))  # over 20 s
    events.call(E.call_queued, "c5", local(28, 10, 4, 0), queue="general")  # still waiting
    events.drain()

    snap = events.snapshot(local(28, 10, 5, 0))
    general = snap["queues"]["general"]
    today = general["windows"]["today"]
    assert (today["offered"], today["answered"], today["abandoned"]) == (5, 2, 1)
    assert today["short_abandoned"] == 1
    assert today["answer_rate_base"] == 4  # 5 offered − 1 short abandon
    assert today["answer_rate"] == pytest.approx(2 / 4)
    assert today["service_level"] == pytest.approx(1 / 4)  # only c1 within 20 s
    assert today["asa_seconds"] == pytest.approx((8 + 30) / 2)
    assert general["waiting"] == 1
    assert general["longest_wait_seconds"] == pytest.approx(60.0)
    assert snap["center"]["windows"]["today"]["answer_rate"] == pytest.approx(0.5)
    assert snap["center"]["windows"]["15m"]["offered"] == 5
    # the alert judges resolved calls only (c5 still waits): 2 answered of 3 resolved, but 3 is
    # under the minimum of resolved calls, so no answer-rate alert yet (tests/metrics/test_alerts)
    shift = general["windows"]["shift"]
    assert (shift["resolved"], shift["resolved_answer_rate"]) == (3, pytest.approx(2 / 3))
    kinds = {(a["kind"], a["queue"]) for a in snap["alerts"]}
    assert not {k for k in kinds if k[0] == "answer_rate"}
    assert ("long_wait", "general") not in kinds  # 60 s < long_wait_alert_seconds (120)
    assert ("staffing", "all") in kinds  # nobody logged in, minimum 8 at 10:05
    later = events.snapshot(local(28, 10, 6, 1))  # c5 has now waited 121 s
    long_wait = [a for a in later["alerts"] if a["kind"] == "long_wait"]
    assert long_wait and long_wait[0]["queue"] == "general" and long_wait[0]["value"] == 121
    assert "综合服务" in long_wait[0]["zh-CN"] and "General" in long_wait[0]["en"]


def test_abandon_threshold_is_configurable(ctx: AppContext, events: Events) -> None:
    assert ctx.config.queues.short_abandon_seconds == 5
    events.call(E.call_queued, "a", local(28, 10, 0, 0), queue="fees")
    events.call(E.abandoned, "a", local(28, 10, 0, 5), queue="fees")  # exactly 5 s: not short
    events.call(E.call_queued, "b", local(28, 10, 1, 0), queue="fees")
    events.call(E.call_ended, "b", local(28, 10, 1, 4.9), reason="caller_hung_up")  # short
    events.drain()
    today = events.snapshot(local(28, 10, 5))["queues"]["fees"]["windows"]["today"]
    assert (today["abandoned"], today["short_abandoned"]) == (1, 1)


def test_overflow_and_callbacks_leave_the_denominator(events: Events) -> None:
    events.call(E.call_queued, "o1", local(28, 9, 30), queue="repair")
    events.call(
        E.call_overflowed,
        "o1",
        local(28, 9, 31, 30),
        from_queue="repair",
        to_queue="general",
        waited=90,
    )
    events.call(E.agent_answered, "o1", local(28, 9, 31, 40), agent_id="2")
    events.call(E.call_queued, "k1", local(28, 9, 40), queue="general")
    events.call(E.callback_requested, "k1", local(28, 9, 42), queue="general", number="1")
    events.call(E.callback_scheduled, "k1", local(28, 9, 42, 1), queue="general", number="1")
    events.call(E.call_ended, "k1", local(28, 9, 42, 5), reason="callback")
    events.drain()
    snap = events.snapshot(local(28, 9, 50))
    repair = snap["queues"]["repair"]["windows"]["today"]
    general = snap["queues"]["general"]["windows"]["today"]
    center = snap["center"]["windows"]["today"]
    assert (repair["offered"], repair["overflowed"], repair["answer_rate"]) == (1, 1, None)
    assert (general["offered"], general["answered"], general["callbacks"]) == (2, 1, 1)
    assert general["abandoned"] == 0  # a callback is neither answered nor abandoned
    assert general["answer_rate"] == pytest.approx(1.0)
    assert general["asa_seconds"] == pytest.approx(10.0)  # waited in general from the overflow
    assert (center["offered"], center["answer_rate_base"], center["answer_rate"]) == (3, 1, 1.0)
    assert snap["queues"]["general"]["waiting"] == 0


def test_an_abandon_just_after_an_overflow_is_judged_on_the_whole_wait(events: Events) -> None:
    events.call(E.call_queued, "f1", local(28, 9, 30), queue="fees")
    events.call(E.call_overflowed, "f1", local(28, 9, 31), from_queue="fees", to_queue="general")
    events.call(E.abandoned, "f1", local(28, 9, 31, 2.4), queue="general", waited=62.4)
    events.call(E.call_ended, "f1", local(28, 9, 31, 2.4), outcome="abandoned")
    events.drain()
    queues = events.snapshot(local(28, 9, 40))["queues"]
    general = queues["general"]["windows"]["today"]
    assert (general["abandoned"], general["short_abandoned"]) == (1, 0)
    assert general["answer_rate_base"] == 1 and general["answer_rate"] == 0
    assert queues["fees"]["windows"]["today"]["overflowed"] == 1


def test_a_call_closed_with_the_no_agents_message_is_no_abandon(events: Events) -> None:
    answer(events, "k1", "fees", local(28, 22, 0, 0), local(28, 22, 0, 5))
    events.call(E.call_queued, "k2", local(28, 22, 1, 0), queue="fees")
    events.call(E.call_ended, "k2", local(28, 22, 1, 9), reason="message_played", outcome="closed")
    events.drain()
    today = events.snapshot(local(28, 22, 5))["queues"]["fees"]["windows"]["today"]
    assert (today["offered"], today["closed"], today["abandoned"]) == (2, 1, 0)
    assert today["answer_rate_base"] == 1 and today["answer_rate"] == pytest.approx(1.0)


def test_calls_belong_to_the_shift_in_force_when_they_queued(
    ctx: AppContext, events: Events
) -> None:
    shifts = ctx.config.shifts
    # one shift per moment for the counters' label: the one in force that started last
    assert shift_in_force(shifts, local(28, 8, 30)) == "day"
    assert shift_in_force(shifts, local(28, 9, 0)) == "mid"
    assert shift_in_force(shifts, local(28, 19, 59, 59)) == "mid"
    assert shift_in_force(shifts, local(28, 20, 0)) == "night"
    assert shift_in_force(shifts, local(29, 7, 59)) == "night"
    assert shifts_in_force(shifts, local(28, 10, 0)) == ["mid", "day"]
    answer(events, "d1", "general", local(28, 19, 59, 50), local(28, 20, 0, 10))
    answer(events, "m1", "general", local(28, 20, 30), local(28, 20, 30, 5))
    events.call(E.call_queued, "n1", local(28, 23, 30), queue="general")
    events.call(E.abandoned, "n1", local(28, 23, 31), queue="general")
    answer(events, "n2", "general", local(29, 1, 0), local(29, 1, 0, 30))  # same night shift
    events.drain()

    # d1 queued at 19:59:50 and was answered after 20:00: it stays with the shift it queued in
    totals = LiveReader(ctx).totals()["q:general"]
    assert {s: c["offered"] for s, c in totals.items()} == {"mid": 1, "night": 3}

    overnight = events.snapshot(local(29, 1, 10))
    assert overnight["current_shift"] == "night"
    shift = overnight["center"]["windows"]["shift"]  # the night since 20:00 on the 28th
    assert (shift["offered"], shift["answered"], shift["abandoned"]) == (3, 2, 1)
    assert overnight["center"]["windows"]["today"]["offered"] == 1  # the 29th so far
    assert overnight["center"]["windows"]["15m"]["offered"] == 1  # n2 at 01:00
    # per shift: what happened during each shift's hours (overlapping shifts share calls)
    per_shift = overnight["shifts"]
    assert per_shift["night"]["occurrence"] == "night:2026-11-28"
    assert per_shift["day"]["center"]["offered"] == 1  # 08-20: d1
    assert per_shift["mid"]["queues"]["general"]["answered"] == 2  # 09-21: d1, m1
    assert per_shift["night"]["center"]["abandoned"] == 1
    assert per_shift["night"]["center"]["offered"] == 3  # m1, n1, n2


def _team_of(ctx: AppContext, agent_id: int) -> str:
    with ctx.sessions() as session:
        team = session.scalar(select(Agent.team_id).where(Agent.id == agent_id))
    return str(team) if team is not None else "none"


def test_handle_time_occupancy_missed_offers_and_agent_states(
    ctx: AppContext, events: Events
) -> None:
    t0 = local(28, 10, 0)
    for agent in ("5", "6"):
        events.agent(AgentEventType.logged_in, agent, t0, queues={"general": 5}, shift="day")
        events.agent(
            AgentEventType.state_changed,
            agent,
            t0,
            **{
                "from": "logged_out",
                "to": "ready",
                "reason": None,
                "queues": ["general", "repair"],
            },
        )
    events.call(E.call_queued, "h1", t0, queue="general")
    events.call(E.agent_offered, "h1", local(28, 10, 0, 1), agent_id="5", queue="general")
    events.agent(
        AgentEventType.state_changed,
        "5",
        local(28, 10, 0, 1),
        **{"from": "ready", "to": "reserved"},
    )
    events.call(E.agent_missed, "h1", local(28, 10, 0, 16), agent_id="5", reason="timeout")
    events.agent(
        AgentEventType.state_changed,
        "5",
        local(28, 10, 0, 16),
        **{"from": "reserved", "to": "not_ready", "reason": "missed"},
    )
    events.agent(
        AgentEventType.state_changed,
        "6",
        local(28, 10, 0, 16),
        **{"from": "ready", "to": "reserved"},
    )
    events.call(E.agent_answered, "h1", local(28, 10, 0, 20), agent_id="6")
    events.agent(
        AgentEventType.state_changed,
        "6",
        local(28, 10, 0, 20),
        **{"from": "reserved", "to": "on_call"},
    )
    events.call(E.call_ended, "h1", local(28, 10, 2, 20), reason="agent_hung_up")
    events.agent(
        AgentEventType.state_changed,
        "6",
        local(28, 10, 2, 20),
        **{"from": "on_call", "to": "wrap_up"},
    )
    events.call(E.wrap_up_ended, "h1", local(28, 10, 2, 50), agent_id="6", disposition="ok")
    events.agent(
        AgentEventType.state_changed,
        "6",
        local(28, 10, 2, 50),
        **{"from": "wrap_up", "to": "ready"},
    )
    events.drain()

    snap = events.snapshot(local(28, 10, 3, 0))
    staffing = [a for a in snap["alerts"] if a["kind"] == "staffing"]
    assert staffing and (staffing[0]["value"], staffing[0]["threshold"]) == (2, 8)
    today = snap["center"]["windows"]["today"]
    assert today["aht_seconds"] == pytest.approx(120 + 30)
    assert today["missed_offers"] == 1
    assert snap["queues"]["general"]["windows"]["today"]["missed_offers"] == 1
    assert snap["center"]["agents"] == {"ready": 1, "not_ready": 1}
    assert snap["queues"]["repair"]["agents"] == {"ready": 1, "not_ready": 1}
    assert snap["queues"]["fees"]["agents"] == {}
    busy = 120 + 30
    available = (16 + 4 + 10) + (1 + 15)  # agent 6 ready/reserved/ready, agent 5 ready/reserved
    assert today["occupancy"] == pytest.approx(busy / (busy + available))
    assert today["state_seconds"]["not_ready"] == pytest.approx(164)  # 10:00:16 → 10:03 (open)
    team = snap["teams"][_team_of(ctx, 6)]["windows"]["today"]
    assert team["answered"] == 1 and team["aht_seconds"] == pytest.approx(150)


def test_replays_are_idempotent_and_a_restarted_consumer_resumes(
    ctx: AppContext, events: Events
) -> None:
    ids = [events.call(E.call_queued, "r1", local(28, 11, 0), queue="general")]
    events.drain()
    redis_client: Any = ctx.redis
    store = MetricStore(redis_client, ctx.keys, metric_config(ctx))
    entries = redis_any(ctx).xrange(ctx.keys.events)
    assert [i for i, _ in entries] == ids
    assert store.apply_batch(ctx.keys.events, entries) == 0  # already applied: nothing counted

    # A consumer reads the next entries and dies before applying or acknowledging them.
    events.call(E.agent_answered, "r1", local(28, 11, 0, 10), agent_id="3")
    events.call(E.call_queued, "r2", local(28, 11, 1), queue="general")
    read = redis_any(ctx).xreadgroup(GROUP, CONSUMER, {ctx.keys.events: ">"}, count=10)
    assert len(read[0][1]) == 2
    assert events.snapshot(local(28, 11, 2))["center"]["windows"]["today"]["answered"] == 0
    # The next consumer picks up the pending entries first.
    events.consumer = type(events.consumer)(ctx, block_ms=1)
    events.drain()
    today = events.snapshot(local(28, 11, 2))["center"]["windows"]["today"]
    assert (today["offered"], today["answered"]) == (2, 1)
    assert redis_any(ctx).xpending(ctx.keys.events, GROUP)["pending"] == 0
    # Applying everything again (a crash between EXEC and XACK) changes nothing.
    assert store.apply_batch(ctx.keys.events, redis_any(ctx).xrange(ctx.keys.events)) == 0
    again = events.snapshot(local(28, 11, 2))["center"]["windows"]["today"]
    assert again == today


def test_a_malformed_entry_is_skipped_counted_and_blocks_nothing(
    ctx: AppContext, events: Events
) -> None:
    events.call(E.call_queued, "g1", local(28, 12, 0), queue="general")
    redis_any(ctx).xadd(
        ctx.keys.events, {"type": "call_queued", "call_id": "bad", "at": "yesterday", "data": "{}"}
    )
    redis_any(ctx).xadd(ctx.keys.events, {"type": "call_queued", "data": "{}"})  # no call_id
    events.call(E.call_queued, "g2", local(28, 12, 1), queue="general")
    events.drain()
    assert events.snapshot(local(28, 12, 2))["center"]["waiting"] == 2
    rejected = redis_any(ctx).hgetall(ctx.keys.metrics("rejected"))
    assert sum(float(v) for v in rejected.values()) == 2
    assert any("yesterday" in name for name in rejected)


def test_rolling_windows_only_hold_recent_calls(events: Events) -> None:
    answer(events, "w1", "general", local(28, 14, 0), local(28, 14, 0, 5))
    answer(events, "w2", "general", local(28, 14, 50), local(28, 14, 50, 5))
    answer(events, "w3", "general", local(28, 15, 5), local(28, 15, 5, 5))
    events.drain()
    snap = events.snapshot(local(28, 15, 10, 30))
    windows = snap["center"]["windows"]
    assert windows["15m"]["offered"] == 1  # 14:56-15:10
    assert windows["60m"]["offered"] == 2  # 14:11-15:10
    assert windows["today"]["offered"] == 3


def test_waiting_calls_older_than_the_longest_call_are_forgotten(
    ctx: AppContext, events: Events
) -> None:
    events.call(E.call_queued, "lost", local(28, 8, 0), queue="general")  # its end never came
    events.call(E.call_queued, "now", local(28, 13, 0), queue="general")
    events.drain()
    assert events.snapshot(local(28, 13, 1))["queues"]["general"]["waiting"] == 2
    removed = events.consumer.forget_stale_waiting(now=local(28, 13, 1).timestamp())
    assert removed == 1  # older than sip.max_call_seconds (4 h)
    general = events.snapshot(local(28, 13, 1))["queues"]["general"]
    assert general["waiting"] == 1 and general["longest_wait_seconds"] == 60


def test_a_transfer_ends_the_first_agents_talk_and_queues_again(events: Events) -> None:
    answer(events, "x1", "general", local(28, 10, 0), local(28, 10, 0, 10), agent="1")
    events.call(E.transferred, "x1", local(28, 10, 1, 10), kind="queue", to="complaint")
    events.call(E.call_queued, "x1", local(28, 10, 1, 11), queue="complaint")
    events.call(E.agent_answered, "x1", local(28, 10, 1, 20), agent_id="2")
    events.call(E.call_ended, "x1", local(28, 10, 3, 20))
    events.call(E.wrap_up_ended, "x1", local(28, 10, 3, 40), agent_id="2")
    events.drain()
    snap = events.snapshot(local(28, 10, 5))
    general = snap["queues"]["general"]["windows"]["today"]
    complaint = snap["queues"]["complaint"]["windows"]["today"]
    assert (general["answered"], general["aht_seconds"]) == (1, 60)  # talk only: no wrap-up
    assert (complaint["offered"], complaint["answered"], complaint["aht_seconds"]) == (1, 1, 140)
    assert complaint["asa_seconds"] == 9
    assert snap["center"]["windows"]["today"]["aht_seconds"] == 100


def test_two_consumers_running_at_once_count_every_event_once(
    ctx: AppContext, events: Events
) -> None:
    from metrics.consumer import MetricsConsumer

    from .conftest import wait_for

    consumers = [MetricsConsumer(ctx, batch=50, block_ms=20) for _ in range(2)]
    for consumer in consumers:
        consumer.start()
    try:
        last = ""
        for n in range(300):
            at = local(28, 15, n // 10, n % 10)
            last = events.call(E.call_queued, f"two-{n}", at, queue="general")
            if n % 3 == 0:
                last = events.call(E.agent_answered, f"two-{n}", at, agent_id="1")
        applied = ctx.keys.metrics(f"applied:{ctx.keys.events}")
        wait_for(lambda: redis_any(ctx).get(applied) == last, timeout=20)
    finally:
        for consumer in consumers:
            consumer.stop()
    today = events.snapshot(local(28, 15, 40))["center"]["windows"]["today"]
    assert (today["offered"], today["answered"]) == (300, 100)
    assert events.snapshot(local(28, 15, 40))["queues"]["general"]["waiting"] == 200
