"""The what-if simulator: a day's callers against a staffing plan, through the real routing.

Leads ask "would two more agents on the night shift reach 90 %?". This answers with the
center's own rules: the routing script (``cti/lua/routing.lua``, the same code production runs)
decides every offer, overflow and wrap-up, on a scratch key space of the real Redis
(``whatif:<id>``, deleted afterwards), in simulated time (its clock is the simulation's). The
simulated side plays the engine and the people: callers join a queue and hang up when their
patience runs out; agents of the plan log in for their shift, answer an offer after
``ring_seconds`` and talk for the caller's talk time.

The figures come from the metric definitions the wallboard uses (``metrics.call_tracker`` and
``metrics.figures``: the same CallTracker over the same event shapes), per hour, per shift and
per queue, beside the Erlang C and Erlang A figures for the same load and staffing.
"""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import redis

from callcenter.errors import CallCenterError, InvalidInput
from callcenter.redis_keys import Keys
from callcenter.streams import AgentEventType, CallEvent, EventType
from config.loader import CenterConfig
from cti.routing import Routing
from cti.shifts import shift_window
from metrics.agent_states import AVAILABLE_STATES, BUSY_STATES
from metrics.call_state import CallState
from metrics.call_tracker import CallTracker
from metrics.counters import add_into
from metrics.erlang import erlang_a, erlang_c_service_level
from metrics.errors import UNKNOWN_QUEUE, UNKNOWN_SHIFT
from metrics.figures import figures
from metrics.metric_config import MetricConfig
from metrics.whatif_inputs import Arrival, PlanFile, local_midnight, mean

AGENT_ID_BASE = 900_000  # simulated agents' ids: far from any real agent's
FIGURE_KEYS = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "overflowed",
    "closed",
    "answer_rate",
    "service_level",
    "asa_seconds",
    "aht_seconds",
)


@dataclass
class _Caller:
    arrival: Arrival
    status: str = "waiting"  # waiting, ringing, talking, gone
    agent: int | None = None
    queue: str = ""


@dataclass
class _SimAgent:
    agent_id: int
    shift: str
    queues: dict[str, int]
    spans: list[tuple[float, float]]
    logged_in: bool = False


@dataclass
class Outcome:
    """The events of the simulated day (engine's and routing's), in time order."""

    events: list[CallEvent] = field(default_factory=list)
    agent_events: list[CallEvent] = field(default_factory=list)
    agents_by_shift: dict[str, int] = field(default_factory=dict)
    script_calls: int = 0
    patience_mean: float = 0.0  # of the day's callers (for Erlang A)
    talk_mean: float = 0.0


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def shift_spans(
    config: CenterConfig, code: str, day: date, timezone: str
) -> list[tuple[float, float]]:
    """The epoch spans of a shift inside the local day (an overnight shift gives two)."""
    shift = config.shifts.shifts[code]
    midnight = local_midnight(day, timezone)
    start = datetime.combine(day, shift.start, tzinfo=midnight.tzinfo)
    end = datetime.combine(day, shift.end, tzinfo=midnight.tzinfo)
    next_midnight = midnight + timedelta(days=1)
    if end > start:
        return [(start.timestamp(), end.timestamp())]
    return [(midnight.timestamp(), end.timestamp()), (start.timestamp(), next_midnight.timestamp())]


class DayRun:
    """One simulated day. ``run()`` drives the routing script and returns the events."""

    def __init__(
        self,
        client: redis.Redis,
        config: CenterConfig,
        plan: PlanFile,
        arrivals: Sequence[Arrival],
        *,
        day: date,
        timezone: str,
    ) -> None:
        self.redis = client
        self.config = config
        self.plan = plan
        self.arrivals = sorted(arrivals, key=lambda a: (a.at, a.call_id))
        self.day = day
        self.timezone = timezone
        self.keys = Keys(prefix=f"whatif:{uuid.uuid4().hex[:12]}")
        start = local_midnight(day, timezone).timestamp()
        self.clock = _Clock(start)
        self.end = start + 86_400.0
        self.heap: list[tuple[float, int, Callable[[], None]]] = []
        self.order = itertools.count()
        self.callers: dict[str, _Caller] = {}
        self.outcome = Outcome(
            patience_mean=mean([a.patience for a in arrivals]),
            talk_mean=mean([a.talk for a in arrivals]),
        )
        self.agents: list[_SimAgent] = []
        ids = itertools.count(AGENT_ID_BASE)
        for group in plan.agents:
            spans = shift_spans(config, group.shift, day, timezone)
            for _ in range(group.count):
                self.agents.append(_SimAgent(next(ids), group.shift, dict(group.queues), spans))
            self.outcome.agents_by_shift[group.shift] = (
                self.outcome.agents_by_shift.get(group.shift, 0) + group.count
            )
        self.routing = Routing(client, self.keys, config, timezone=timezone, clock=self.clock)

    # ------------------------------------------------------------ plumbing

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.heap, (when, next(self.order), action))

    def emit(self, kind: str, call_id: str, **data: Any) -> None:
        self.outcome.events.append(CallEvent(kind, call_id, at=_iso(self.clock.now), data=data))

    def script(self, result: dict[str, Any]) -> None:
        """Act on a routing decision: each offer rings a simulated agent."""
        self.outcome.script_calls += 1
        for offer in Routing.offers(result):
            caller = self.callers.get(offer.call_id)
            if caller is None or caller.status not in ("waiting", "ringing"):
                continue  # (ringing: routing moved the call on, e.g. an overflow while ringing)
            caller.status, caller.agent, caller.queue = "ringing", offer.agent_id, offer.queue
            agent = offer.agent_id
            self.at(self.clock.now + self.plan.ring_seconds, partial(self._answer, caller, agent))
        if result.get("status") == "closed":
            for caller in self.callers.values():
                if (
                    caller.status == "waiting"
                    and self.routing.call(caller.arrival.call_id).get("state") == "ended"
                ):
                    self._gone(caller, "closed")

    def _fire_next_timer(self, before: float) -> bool:
        """Fire routing's earliest timer (a wrap-up end, an overflow, a ring backstop) if it is
        due no later than ``before``, at its own time. Timers and the simulation's own events
        must interleave in time order: an answer scheduled 4 s after an offer has to come
        before the ring backstop of that offer."""
        timers = self.keys.routing("timers")
        head: list[tuple[str, float]] = self.redis.zrange(timers, 0, 0, withscores=True)  # type: ignore[assignment]
        if not head or head[0][1] > before:
            return False
        member, due = head[0]
        self.clock.now = max(self.clock.now, float(due))
        if self.redis.zrem(timers, member):
            self.script(self.routing.fire_timer(str(member)))
        return True

    # ------------------------------------------------------------ people

    def _log_in(self, agent: _SimAgent, until: float) -> None:
        self.routing.login(
            agent.agent_id,
            extension=str(agent.agent_id),
            uri=f"sip:{agent.agent_id}@whatif.invalid",
            queues=agent.queues,
            shift=agent.shift,
            shift_window=shift_window(self.config.shifts, agent.shift),
            actor="whatif",
        )
        agent.logged_in = True
        self.script(self.routing.transition(agent.agent_id, "ready", actor="whatif"))
        self.at(until, lambda: self._log_out(agent))

    def _log_out(self, agent: _SimAgent) -> None:
        try:
            self.script(self.routing.logout(agent.agent_id, actor="whatif"))
            agent.logged_in = False
        except CallCenterError:  # on a call or wrapping up: leaves when that is over
            self.at(self.clock.now + 30.0, lambda: self._log_out(agent))

    def _arrive(self, arrival: Arrival) -> None:
        caller = _Caller(arrival, queue=arrival.queue)
        self.callers[arrival.call_id] = caller
        self.emit(EventType.call_queued, arrival.call_id, queue=arrival.queue)
        self.script(self.routing.enqueue(arrival.call_id, arrival.queue, priority=arrival.priority))
        if caller.status in ("waiting", "ringing"):
            self.at(arrival.at + arrival.patience, lambda: self._give_up(caller))

    def _give_up(self, caller: _Caller) -> None:
        if caller.status not in ("waiting", "ringing"):
            return
        call_id = caller.arrival.call_id
        queue = self.routing.call(call_id).get("queue") or caller.queue
        self.emit(EventType.abandoned, call_id, queue=queue, waited=caller.arrival.patience)
        self.script(self.routing.hangup(call_id, final=False))
        self._gone(caller, "abandoned")

    def _gone(self, caller: _Caller, outcome: str) -> None:
        caller.status = "gone"
        call_id = caller.arrival.call_id
        self.emit(EventType.call_ended, call_id, outcome=outcome, reason="caller_hung_up")
        self.script(self.routing.hangup(call_id, final=True))

    def _answer(self, caller: _Caller, agent: int) -> None:
        if caller.status != "ringing" or caller.agent != agent:
            return
        call_id = caller.arrival.call_id
        call = self.routing.call(call_id)
        if call.get("state") != "reserved":
            caller.status = "waiting"  # routing took the offer back (its ring backstop)
            return
        if call.get("agent") != str(caller.agent):
            return  # offered to someone else since: that agent's answer is on its way
        caller.status = "talking"
        self.emit(EventType.agent_answered, call_id, agent_id=caller.agent, queue=call["queue"])
        self.routing.answered(call_id, caller.agent)
        self.outcome.script_calls += 1
        self.at(self.clock.now + caller.arrival.talk, lambda: self._hang_up(caller))

    def _hang_up(self, caller: _Caller) -> None:
        caller.status = "gone"
        call_id = caller.arrival.call_id
        self.emit(EventType.call_ended, call_id, outcome="answered", reason="caller_hung_up")
        self.script(self.routing.hangup(call_id, final=True))

    # ------------------------------------------------------------ the day

    def run(self) -> Outcome:
        try:
            for agent in self.agents:
                for begin, finish in agent.spans:
                    self.at(begin, partial(self._log_in, agent, finish))
            for arrival in self.arrivals:
                self.at(arrival.at, partial(self._arrive, arrival))
            while self.heap:
                if self._fire_next_timer(before=self.heap[0][0]):
                    continue
                when, _n, action = heapq.heappop(self.heap)
                if when > self.end + 3600.0:  # calls still talking at midnight: let them end
                    break
                self.clock.now = max(self.clock.now, when)
                action()
            self._collect_routing_events()
        finally:
            self._delete_scratch()
        self.outcome.events.sort(key=lambda e: e.at)
        self.outcome.agent_events.sort(key=lambda e: e.at)
        return self.outcome

    def _collect_routing_events(self) -> None:
        """Routing's own facts (overflows; agents' state changes) from the scratch streams."""
        for stream, into in (
            (self.keys.events, self.outcome.events),
            (self.keys.agent_events, self.outcome.agent_events),
        ):
            entries: list[tuple[str, dict[str, str]]] = self.redis.xrange(stream)  # type: ignore[assignment]
            for _id, fields in entries:
                event = CallEvent.from_fields(fields)
                if stream == self.keys.agent_events or event.type == EventType.call_overflowed:
                    into.append(event)

    def _delete_scratch(self) -> None:
        for keys in _chunks(self.redis.scan_iter(match=f"{self.keys.prefix}:*", count=1000)):
            self.redis.delete(*keys)


def _chunks(items: Iterator[Any], size: int = 500) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---------------------------------------------------------------- the report


def report(
    outcome: Outcome,
    metric_config: MetricConfig,
    plan: PlanFile,
    config: CenterConfig,
    *,
    day: date,
    timezone: str,
) -> dict[str, Any]:
    """Answer rate, service level, abandons and occupancy per hour, shift and queue, with the
    Erlang C / Erlang A figures for each hour's load and staffing."""
    tracker = CallTracker(metric_config)
    states: dict[str, CallState] = {}
    by_hour: dict[int, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    by_shift: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for event in outcome.events:
        state = states.setdefault(event.call_id, CallState(event.call_id))
        for delta in tracker.apply(state, event).deltas:
            hour = delta.cohort.at.astimezone(metric_config.tz).hour
            queue = delta.cohort.queue or "none"
            for scope in (by_hour[hour], by_shift[delta.cohort.shift]):
                for name in (queue, "all"):
                    add_into(scope[name], {delta.counter: delta.value})
    busy, available = _agent_time(outcome.agent_events, metric_config)

    def pick(counters: dict[str, float]) -> dict[str, Any]:
        full = figures(counters)
        return {k: full[k] for k in FIGURE_KEYS}

    hours = []
    for hour in range(24):
        scope = by_hour.get(hour, {})
        row: dict[str, Any] = {"hour": hour, **pick(scope.get("all", {}))}
        row["queues"] = {q: pick(c) for q, c in sorted(scope.items()) if q != "all"}
        b, a = busy.get(hour, 0.0), available.get(hour, 0.0)
        row["occupancy"] = b / (b + a) if b + a > 0 else None
        row["agents"] = _agents_in_hour(plan, config, day, timezone, hour)
        row["erlang"] = _erlang(row, outcome, metric_config, config)
        hours.append(row)
    shifts = {
        code: {
            **pick(scope.get("all", {})),
            "agents": outcome.agents_by_shift.get(code, 0),
            "queues": {q: pick(c) for q, c in sorted(scope.items()) if q != "all"},
        }
        for code, scope in sorted(by_shift.items())
    }
    total: dict[str, dict[str, float]] = defaultdict(dict)
    for scope in by_hour.values():
        for name, counters in scope.items():
            add_into(total[name], counters)
    b, a = sum(busy.values()), sum(available.values())
    return {
        "day": day.isoformat(),
        "plan": plan.model_dump(),
        "center": {**pick(total.get("all", {})), "occupancy": b / (b + a) if b + a else None},
        "queues": {q: pick(c) for q, c in sorted(total.items()) if q != "all"},
        "shifts": shifts,
        "hours": hours,
        "routing_script_calls": outcome.script_calls,
    }


def _agent_time(
    agent_events: Sequence[CallEvent], config: MetricConfig
) -> tuple[dict[int, float], dict[int, float]]:
    """Busy and available agent-seconds per local hour, from routing's state changes."""
    busy: dict[int, float] = defaultdict(float)
    available: dict[int, float] = defaultdict(float)
    last: dict[str, tuple[str, datetime]] = {}
    for event in agent_events:
        if event.type != AgentEventType.state_changed:
            continue
        agent = str(event.data.get("agent_id"))
        at = datetime.fromisoformat(event.at)
        previous = last.get(agent)
        if previous is not None:
            state, since = previous
            target = (
                busy if state in BUSY_STATES else available if state in AVAILABLE_STATES else None
            )
            if target is not None:
                for hour, seconds in _split_by_hour(since, at, config):
                    target[hour] += seconds
        last[agent] = (str(event.data.get("to")), at)
    return busy, available


def _split_by_hour(
    start: datetime, end: datetime, config: MetricConfig
) -> Iterator[tuple[int, float]]:
    cursor = start
    while cursor < end:
        local = cursor.astimezone(config.tz)
        boundary = (
            local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        ).astimezone(UTC)
        piece = min(boundary, end)
        yield local.hour, (piece - cursor).total_seconds()
        cursor = piece


def _agents_in_hour(
    plan: PlanFile, config: CenterConfig, day: date, timezone: str, hour: int
) -> int:
    midpoint = local_midnight(day, timezone).timestamp() + hour * 3600 + 1800
    return sum(
        group.count
        for group in plan.agents
        if any(a <= midpoint < b for a, b in shift_spans(config, group.shift, day, timezone))
    )


def _erlang(
    row: dict[str, Any], outcome: Outcome, metric_config: MetricConfig, config: CenterConfig
) -> dict[str, Any] | None:
    """Erlang C (no abandons) and Erlang A (with the day's patience) for the hour's calls and
    the plan's agents, every queue pooled: the textbook answer to compare with."""
    calls, agents = int(row["offered"]) - int(row["overflowed"]), int(row["agents"])
    if calls <= 0:
        return None
    wrap = mean([float(q.wrap_up_seconds) for q in config.queues.queues.values()])
    aht = (outcome.talk_mean or 150.0) + wrap
    load = calls * aht / 3600.0
    target = float(metric_config.default_service_level_seconds)
    patience = outcome.patience_mean or 110.0
    a = erlang_a(calls / 3600.0, aht, patience, agents, target) if agents > 0 else None
    return {
        "load_erlangs": round(load, 3),
        "aht_seconds": round(aht, 1),
        "erlang_c_service_level": erlang_c_service_level(agents, load, aht, target),
        "erlang_a_answer_rate": a.answer_rate if a else 0.0,
        "erlang_a_service_level": a.service_level if a else 0.0,
    }


# ---------------------------------------------------------------- entry point


def simulate(
    client: redis.Redis,
    config: CenterConfig,
    metric_config: MetricConfig,
    plan: PlanFile,
    arrivals: Sequence[Arrival],
    *,
    day: date,
    timezone: str,
) -> dict[str, Any]:
    """Run the day and report it (see the module docstring)."""
    wanted = {a.queue for a in arrivals} | {q for g in plan.agents for q in g.queues}
    unknown = sorted(wanted - set(config.queues.queues))
    if unknown:
        raise InvalidInput(
            f"queue(s) not in queues.toml: {', '.join(unknown)}",
            details={"queues": unknown},
            error_id=UNKNOWN_QUEUE,
        )
    shifts = sorted({g.shift for g in plan.agents} - set(config.shifts.shifts))
    if shifts:
        raise InvalidInput(
            f"shift(s) not in shifts.toml: {', '.join(shifts)}",
            details={"shifts": shifts},
            error_id=UNKNOWN_SHIFT,
        )
    run = DayRun(client, config, plan, arrivals, day=day, timezone=timezone)
    outcome = run.run()
    result = report(outcome, metric_config, plan, config, day=day, timezone=timezone)
    result["calls"] = len(arrivals)
    return result
