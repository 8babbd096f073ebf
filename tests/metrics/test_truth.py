"""Metric truth: a simulated day replayed through the live engine gives, at the end, exactly
the figures recomputed independently from the raw records in SQL — and the historical report
agrees with both.

Two independent paths from the same event log: (1) the events are XADDed to the real Redis
streams and consumed by the live engine; (2) this test writes the SQL records itself
(``calls``, ``call_events``, ``agent_state_changes``) and recomputes every figure with its own
code below, which shares nothing with the metrics/ definition modules (call_tracker.py, …).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, insert, select, text

from callcenter.context import AppContext
from callcenter.streams import CallEvent as StreamEvent
from cti.models import Agent, AgentQueue, AgentStateChange, Call, CallEvent
from metrics import reports
from metrics.prometheus import LiveCollector
from metrics.simulation import SimAgent, simulate_day

from .conftest import TZ, Events

DAY = datetime(2026, 11, 28, tzinfo=TZ)
NOW = DAY + timedelta(hours=23, minutes=59, seconds=30)
SHORT = 5
SL = {"general": 20, "repair": 20, "complaint": 20, "fees": 20, "callback": 20}


# ---------------------------------------------------------------- path 2: SQL records


def state_row(event: Any, at: datetime) -> dict[str, Any]:
    """An ``agent_state_changes`` row from an agent event."""
    return {
        "agent_id": int(event.data["agent_id"]),
        "at": at,
        "from_state": event.data["from"],
        "to_state": event.data["to"],
        "reason": event.data.get("reason"),
        "call_id": event.data.get("call_id"),
    }


def note_call_event(call: dict[str, Any], event: Any, at: datetime) -> None:
    """What a call event sets on the call's ``calls`` row."""
    if event.type == "call_arrived":
        call["arrived_at"] = at
    elif event.type == "call_queued":
        call.setdefault("queued_at", at)
        call["queue_code"] = event.data["queue"]
    elif event.type == "call_overflowed":
        call["queue_code"] = event.data["to_queue"]
    elif event.type == "agent_answered":
        call["answered_at"], call["agent_id"] = at, int(event.data["agent_id"])
        call["outcome"] = "answered"
    elif event.type == "abandoned":
        call["outcome"] = "abandoned"
    elif event.type == "callback_requested":
        call["outcome"] = "callback"
    elif event.type == "call_ended":
        call["ended_at"] = at


def write_sql(ctx: AppContext, emitted: list[tuple[str, Any]], ids: list[str]) -> None:
    calls: dict[str, dict[str, Any]] = {}
    call_rows: list[dict[str, Any]] = []
    state_rows: list[dict[str, Any]] = []
    for (stream, event), stream_id in zip(emitted, ids, strict=True):
        at = datetime.fromisoformat(event.at)
        if stream == "agent_events":
            if event.type == "agent_state_changed":
                state_rows.append(state_row(event, at))
            continue
        call = calls.setdefault(event.call_id, {"id": event.call_id, "outcome": None})
        call_rows.append(
            {
                "call_id": event.call_id,
                "stream_id": stream_id,
                "type": event.type,
                "at": at,
                "data": event.data,
            }
        )
        note_call_event(call, event, at)
    with ctx.sessions() as session, session.begin():
        session.execute(
            insert(Call),
            [
                {
                    "direction": "in",
                    "caller_number": "",
                    "did": "",
                    "menu_path": [],
                    "collected": {},
                    "priority": 0,
                    "queue_code": None,
                    "agent_id": None,
                    "arrived_at": None,
                    "queued_at": None,
                    "answered_at": None,
                    "ended_at": None,
                    **c,
                }
                for c in calls.values()
            ],
        )
        session.execute(insert(CallEvent), call_rows)
        session.execute(insert(AgentStateChange), state_rows)


# ---------------------------------------------------------------- independent recompute


@dataclass
class Leg:
    queue: str
    entered: datetime
    outcome: str | None = None
    left: datetime | None = None
    agent: int | None = None
    talk: float | None = None
    wrap: float | None = None
    missed: int = 0


@dataclass
class Expected:
    legs: list[Leg] = field(default_factory=list)


EventRow = tuple[str, datetime, dict[str, Any]]  # (type, at, data) of one call event


def events_by_call(ctx: AppContext) -> dict[str, list[EventRow]]:
    """``call_events`` per call, in order, times made aware and data decoded."""
    with ctx.sessions() as session:
        rows = session.execute(
            text("SELECT call_id, type, at, data FROM call_events ORDER BY call_id, at, id")
        ).all()
    by_call: dict[str, list[EventRow]] = defaultdict(list)
    for call_id, kind, at, data in rows:
        when = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
        by_call[call_id].append((kind, when, data if isinstance(data, dict) else json.loads(data)))
    return by_call


@dataclass
class CallReplay:
    """One call's events replayed into its queue legs, one step per event type."""

    legs: list[Leg]
    current: Leg | None = None
    answered: Leg | None = None
    ended_at: datetime | None = None
    first_queued: datetime | None = None  # short abandons: the caller's whole wait

    def feed(self, kind: str, at: datetime, data: dict[str, Any]) -> None:
        step = CALL_STEPS.get(kind)
        if step is not None:
            step(self, at, data)
        elif kind in OPEN_LEG_STEPS and self.current and self.current.outcome is None:
            OPEN_LEG_STEPS[kind](self, self.current, at, data)

    def queued(self, at: datetime, data: dict[str, Any]) -> None:
        self.current = Leg(data["queue"], at)
        self.legs.append(self.current)
        self.first_queued = self.first_queued or at

    def overflowed(self, at: datetime, data: dict[str, Any]) -> None:
        assert self.current is not None
        self.current.outcome, self.current.left = "overflowed", at
        self.current = Leg(data["to_queue"], at)
        self.legs.append(self.current)

    def ended(self, at: datetime, data: dict[str, Any]) -> None:
        self.ended_at = at
        if self.answered is not None and self.answered.left is not None:
            self.answered.talk = (at - self.answered.left).total_seconds()

    def wrap_up_ended(self, at: datetime, data: dict[str, Any]) -> None:
        if self.answered is not None and self.ended_at is not None:
            self.answered.wrap = (at - self.ended_at).total_seconds()

    # steps on the open leg (one with no outcome yet)

    def callback(self, leg: Leg, at: datetime, data: dict[str, Any]) -> None:
        leg.outcome, leg.left = "callback", at

    def missed(self, leg: Leg, at: datetime, data: dict[str, Any]) -> None:
        leg.missed += 1

    def answer(self, leg: Leg, at: datetime, data: dict[str, Any]) -> None:
        leg.outcome, leg.left, leg.agent = "answered", at, int(data["agent_id"])
        self.answered = leg

    def abandon(self, leg: Leg, at: datetime, data: dict[str, Any]) -> None:
        waited = (at - (self.first_queued or leg.entered)).total_seconds()
        leg.outcome = "short" if waited < SHORT else "abandoned"
        leg.left = at


CALL_STEPS: dict[str, Callable[[CallReplay, datetime, dict[str, Any]], None]] = {
    "call_queued": CallReplay.queued,
    "call_overflowed": CallReplay.overflowed,
    "call_ended": CallReplay.ended,
    "wrap_up_ended": CallReplay.wrap_up_ended,
}
OPEN_LEG_STEPS: dict[str, Callable[[CallReplay, Leg, datetime, dict[str, Any]], None]] = {
    "callback_requested": CallReplay.callback,
    "agent_missed": CallReplay.missed,
    "agent_answered": CallReplay.answer,
    "abandoned": CallReplay.abandon,
}


def legs_from_sql(ctx: AppContext) -> list[Leg]:
    legs: list[Leg] = []
    for events in events_by_call(ctx).values():
        replay = CallReplay(legs)
        for kind, at, data in events:
            replay.feed(kind, at, data)
    return legs


def shift_label(moment: datetime) -> str:
    """The seed's shifts, by the rule "the shift in force that started last"."""
    hour = moment.astimezone(TZ).hour
    return "day" if hour == 8 else ("mid" if 9 <= hour < 20 else "night")


def window_start(name: str) -> datetime:
    minute = NOW.replace(second=0, microsecond=0)
    return {
        "today": DAY,
        "shift": DAY.replace(hour=20),  # the night shift in force at NOW started at 20:00
        "15m": minute - timedelta(minutes=14),
        "60m": minute - timedelta(minutes=59),
    }[name]


def _left(leg: Leg) -> datetime:
    assert leg.left is not None
    return leg.left


def expected_figures(legs: list[Leg], queue: str | None, window: str) -> dict[str, Any]:
    start = window_start(window)
    chosen = [leg for leg in legs if leg.entered >= start and (queue is None or leg.queue == queue)]
    count = lambda outcome: sum(1 for leg in chosen if leg.outcome == outcome)  # noqa: E731
    answered = [leg for leg in chosen if leg.outcome == "answered"]
    base = len(chosen) - count("short") - count("callback") - count("overflowed")
    waits = [(_left(leg) - leg.entered).total_seconds() for leg in answered]
    within = sum(1 for leg, wait in zip(answered, waits, strict=True) if wait <= SL[leg.queue])
    talked = [leg for leg in answered if leg.talk is not None]
    handle = sum((leg.talk or 0.0) + (leg.wrap or 0.0) for leg in talked)
    return {
        "offered": len(chosen),
        "answered": len(answered),
        "abandoned": count("abandoned"),
        "short_abandoned": count("short"),
        "callbacks": count("callback"),
        "overflowed": count("overflowed"),
        "missed_offers": sum(leg.missed for leg in chosen),
        "answer_rate": len(answered) / base if base else None,
        "service_level": within / base if base else None,
        "asa_seconds": sum(waits) / len(answered) if answered else None,
        "aht_seconds": handle / len(talked) if talked else None,
    }


def expected_occupancy(ctx: AppContext, window: str) -> float | None:
    start = window_start(window).astimezone(UTC)
    now = NOW.astimezone(UTC)
    with ctx.sessions() as session:
        rows = session.execute(
            select(
                AgentStateChange.agent_id, AgentStateChange.at, AgentStateChange.to_state
            ).order_by(AgentStateChange.agent_id, AgentStateChange.at, AgentStateChange.id)
        ).all()
    by_agent: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for agent, at, state in rows:
        by_agent[agent].append((at, state))
    busy = available = 0.0
    for changes in by_agent.values():
        for (at, state), nxt in zip(changes, [*changes[1:], (now, "-")], strict=True):
            overlap = (min(nxt[0], now) - max(at, start)).total_seconds()
            if overlap <= 0:
                continue
            if state in ("on_call", "on_hold", "wrap_up"):
                busy += overlap
            elif state in ("ready", "reserved"):
                available += overlap
    return busy / (busy + available) if busy + available else None


def assert_same(live: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    for name, value in expected.items():
        got = live[name]
        if value is None or got is None or isinstance(value, int):
            assert got == value, f"{where} {name}: live {got} != SQL {value}"
        else:
            assert math.isclose(got, value, rel_tol=1e-9, abs_tol=1e-6), (
                f"{where} {name}: live {got} != SQL {value}"
            )


# ---------------------------------------------------------------- the test


def sim_agents(ctx: AppContext) -> list[SimAgent]:
    with ctx.sessions() as session:
        agents = session.execute(select(Agent.id, Agent.shift_code)).all()
        queues = defaultdict(list)
        for agent_id, queue in session.execute(select(AgentQueue.agent_id, AgentQueue.queue_code)):
            queues[agent_id].append(queue)
    return [SimAgent(str(a), s, tuple(sorted(queues[a]))) for a, s in agents if s]


def test_live_figures_equal_sql_recompute_and_the_report(ctx: AppContext) -> None:
    check_truth(ctx, volume=1.6)


@pytest.mark.postgres
def test_live_figures_equal_sql_recompute_and_the_report_on_postgres(pg_ctx: AppContext) -> None:
    check_truth(pg_ctx, volume=1.6)


QUEUE_CODES = ("general", "repair", "complaint", "fees")
REPORT_KEYS = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "callbacks",
    "overflowed",
    "missed_offers",
    "answer_rate",
    "service_level",
    "asa_seconds",
    "aht_seconds",
)


def check_truth(ctx: AppContext, volume: float) -> None:
    events = Events(ctx)
    emitted = simulated_day(ctx, volume)
    # path 1: the real streams, the live engine
    ids = xadd_all(ctx, emitted)
    events.drain()
    live = events.snapshot(NOW)
    # path 2: SQL records, independent recompute
    write_sql(ctx, emitted, ids)
    legs = legs_from_sql(ctx)
    outcomes = {leg.outcome for leg in legs}
    # the day exercises every definition
    assert {"answered", "abandoned", "short", "callback", "overflowed", None} <= outcomes
    assert any(leg.missed for leg in legs)

    check_windows(ctx, live, legs)
    check_waiting(live, legs)
    check_agents_and_answered(ctx, live)
    check_prometheus(ctx, legs)
    check_report(ctx, live)


def simulated_day(ctx: AppContext, volume: float) -> list[tuple[str, Any]]:
    emitted = simulate_day(
        day=DAY,
        end=NOW,
        agents=sim_agents(ctx),
        queues=ctx.config.queues,
        shifts=ctx.config.shifts,
        seed=7,
        volume=volume,
    )
    assert len(emitted) > 5000
    # Two callers still waiting at the end (the night is quiet; waiting figures need some).
    for call_id, queue, ago in (("late-1", "repair", 70), ("late-2", "repair", 15)):
        at = (NOW - timedelta(seconds=ago)).astimezone(UTC).isoformat()
        emitted.append(("events", StreamEvent("call_arrived", call_id, at=at, data={})))
        emitted.append(
            ("events", StreamEvent("call_queued", call_id, at=at, data={"queue": queue}))
        )
    return emitted


def xadd_all(ctx: AppContext, emitted: list[tuple[str, Any]]) -> list[str]:
    """Every event onto its real stream, in order; returns the stream ids."""
    redis_client: Any = ctx.redis
    pipe = redis_client.pipeline(transaction=False)
    for stream, event in emitted:
        key = ctx.keys.events if stream == "events" else ctx.keys.agent_events
        pipe.xadd(key, event.to_fields())
    return [str(i) for i in pipe.execute()]


def check_windows(ctx: AppContext, live: dict[str, Any], legs: list[Leg]) -> None:
    for window in ("today", "shift", "15m", "60m"):
        assert_same(
            live["center"]["windows"][window],
            expected_figures(legs, None, window),
            f"center/{window}",
        )
        for queue in QUEUE_CODES:
            assert_same(
                live["queues"][queue]["windows"][window],
                expected_figures(legs, queue, window),
                f"{queue}/{window}",
            )
        occupancy = expected_occupancy(ctx, window)
        assert live["center"]["windows"][window]["occupancy"] == pytest.approx(occupancy)


def check_waiting(live: dict[str, Any], legs: list[Leg]) -> None:
    """Waiting now and the longest wait, per queue."""
    for queue in QUEUE_CODES:
        open_legs = [leg for leg in legs if leg.queue == queue and leg.outcome is None]
        assert live["queues"][queue]["waiting"] == len(open_legs)
        if open_legs:
            longest = (NOW - min(leg.entered for leg in open_legs)).total_seconds()
            assert live["queues"][queue]["longest_wait_seconds"] == pytest.approx(longest)


def check_agents_and_answered(ctx: AppContext, live: dict[str, Any]) -> None:
    """Agents by state (each agent's last recorded state) and a plain SQL count of answers."""
    with ctx.sessions() as session:
        last = session.execute(
            text(
                "SELECT agent_id, to_state FROM agent_state_changes a WHERE id = "
                "(SELECT max(id) FROM agent_state_changes b WHERE b.agent_id = a.agent_id)"
            )
        ).all()
        answered_calls = session.scalar(
            select(func.count()).select_from(Call).where(Call.outcome == "answered")
        )
    by_state: dict[str, int] = defaultdict(int)
    for _agent, state in last:
        if state != "logged_out":
            by_state[state] += 1
    assert live["center"]["agents"] == dict(by_state)
    assert live["center"]["windows"]["today"]["answered"] == answered_calls  # plain SQL count


def legs_per_queue(legs: list[Leg], counts: Callable[[Leg], bool]) -> dict[str, int]:
    per_queue: dict[str, int] = defaultdict(int)
    for leg in legs:
        if counts(leg):
            per_queue[leg.queue] += 1
    return per_queue


def check_prometheus(ctx: AppContext, legs: list[Leg]) -> None:
    """The Prometheus exposition: counters by queue and shift label, histogram counts."""
    registry = CollectorRegistry()
    registry.register(LiveCollector(ctx))
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    for family, outcome in (
        ("callcenter_calls_offered", None),
        ("callcenter_calls_answered", "answered"),
        ("callcenter_calls_abandoned", "abandoned"),
        ("callcenter_calls_short_abandoned", "short"),
    ):
        exposed = {
            (s.labels["queue"], s.labels["shift"]): s.value
            for s in families[family].samples
            if s.name.endswith("_total") and s.value
        }
        expected: dict[tuple[str, str], int] = defaultdict(int)
        for leg in legs:
            if outcome is None or leg.outcome == outcome:
                expected[(leg.queue, shift_label(leg.entered))] += 1
        assert exposed == expected, family
    waits = {
        s.labels["queue"]: s.value
        for s in families["callcenter_wait_seconds"].samples
        if s.name.endswith("_count")
    }
    assert waits == legs_per_queue(legs, lambda leg: leg.outcome == "answered")
    handles = {
        s.labels["queue"]: s.value
        for s in families["callcenter_handle_seconds"].samples
        if s.name.endswith("_count")
    }
    assert handles == legs_per_queue(legs, lambda leg: leg.wrap is not None)


def check_report(ctx: AppContext, live: dict[str, Any]) -> None:
    """The historical report (SQL event log → the shared definitions) agrees with both."""
    start = DAY.astimezone(UTC)
    end = NOW.astimezone(UTC) + timedelta(seconds=1)
    by_queue = {
        r["queue"]: r
        for r in reports.report(ctx, start=start, end=end, period="day", group="queue")
    }
    center = reports.report(ctx, start=start, end=end, period="day", group="center")
    assert len(center) == 1
    for name in REPORT_KEYS:
        assert center[0][name] == pytest.approx(live["center"]["windows"]["today"][name])
        for queue in QUEUE_CODES:
            assert by_queue[queue][name] == pytest.approx(
                live["queues"][queue]["windows"]["today"][name]
            ), (queue, name)
    shifts = {
        r["period"]: r
        for r in reports.report(ctx, start=start, end=end, period="shift", group="center")
    }
    for name in REPORT_KEYS:
        assert shifts["night:2026-11-28"][name] == pytest.approx(
            live["center"]["windows"]["shift"][name]
        )
