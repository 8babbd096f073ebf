"""A day of a call center as events, for the metric-truth test and the benchmarks.

Calls arrive as a Poisson process whose rate changes by the hour; each caller has an
exponential patience; agents work the three shifts, take offers longest-idle first, sometimes
miss them (ring timeout), talk, sometimes hold, wrap up, take breaks. Queues overflow to
``general`` after their configured wait and callers may ask for a callback after a wait. The
output is the exact sequence of ``events`` and ``agent_events`` entries the engine and routing
publish (callcenter/streams.py), in time order.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from callcenter.call_phases import CallPhase
from callcenter.streams import AgentEventType, CallEvent, EventType
from config.schemas import QueuesFile, ShiftsFile

# Calls per hour of the day (local), a property hotline's shape: quiet at night, peaks at 9-11
# and 14-17.
HOURLY_PROFILE = (
    4, 2, 2, 1, 1, 2, 6, 20, 60, 90, 95, 80, 55, 60, 85, 90, 80, 60, 40, 30, 22, 15, 10, 6,
)  # fmt: skip
QUEUE_MIX = {"general": 0.4, "repair": 0.3, "complaint": 0.1, "fees": 0.2}


@dataclass(frozen=True)
class SimAgent:
    agent_id: str
    shift: str
    queues: tuple[str, ...]


@dataclass(frozen=True)
class SimParams:
    day: datetime  # local midnight of the simulated day (timezone-aware)
    end: datetime  # stop here (events after it are not emitted)
    seed: int = 1
    volume: float = 1.0  # multiplies HOURLY_PROFILE
    patience_mean: float = 110.0
    talk_mean: float = 150.0
    wrap_range: tuple[float, float] = (10.0, 45.0)
    ivr_range: tuple[float, float] = (3.0, 25.0)
    ring_seconds: float = 4.0
    ring_timeout: float = 15.0
    miss_probability: float = 0.05
    hold_probability: float = 0.1
    callback_after: float = 120.0
    callback_probability: float = 0.25
    break_probability: float = 0.03
    break_seconds: float = 600.0
    queue_mix: Mapping[str, float] = field(default_factory=lambda: dict(QUEUE_MIX))


@dataclass
class _Call:
    call_id: str
    queue: str = ""
    queued_at: float = 0.0
    patience_at: float = 0.0
    state: CallPhase = CallPhase.menu  # callcenter/call_phases.py
    agent: str | None = None
    token: int = 0  # invalidates scheduled checks when the call moves on
    wants_callback: bool = False


@dataclass
class _Agent:
    spec: SimAgent
    state: str = "logged_out"
    idle_since: float = 0.0
    on_shift: bool = False
    call: str | None = None


Emitted = tuple[str, CallEvent]  # ("events" | "agent_events", event)


class DaySimulation:
    def __init__(
        self,
        params: SimParams,
        agents: Sequence[SimAgent],
        queues: QueuesFile,
        shifts: ShiftsFile,
    ) -> None:
        self.p = params
        self.rng = random.Random(params.seed)
        self.queues = queues
        self.shifts = shifts
        self.agents = {a.agent_id: _Agent(a) for a in agents}
        self.calls: dict[str, _Call] = {}
        self.waiting: list[str] = []  # call ids in queue order
        self.heap: list[tuple[float, int, Callable[[], None]]] = []
        self.seq = itertools.count()
        self.now = 0.0
        self.out: list[Emitted] = []
        self.start = params.day
        self.horizon = (params.end - params.day).total_seconds()

    # ---------------------------------------------------------------- plumbing
    def at(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.heap, (self.now + delay, next(self.seq), action))

    def stamp(self) -> str:
        return (self.start + timedelta(seconds=self.now)).astimezone(UTC).isoformat()

    def call_event(self, kind: str, call_id: str, **data: Any) -> None:
        node = "routing" if kind in _ROUTING_EVENTS else "node1"
        self.out.append(
            ("events", CallEvent(kind, call_id, slot="", node=node, at=self.stamp(), data=data))
        )

    def agent_event(self, kind: str, agent: _Agent, **data: Any) -> None:
        data = {"agent_id": agent.spec.agent_id, **data}
        self.out.append(
            (
                "agent_events",
                CallEvent(kind, agent.spec.agent_id, node="routing", at=self.stamp(), data=data),
            )
        )

    def set_state(self, agent: _Agent, to: str, reason: str | None = None, call: str = "") -> None:
        if agent.state == to:
            return
        self.agent_event(
            AgentEventType.state_changed,
            agent,
            **{
                "from": agent.state,
                "to": to,
                "reason": reason,
                "call_id": call,
                "queues": list(agent.spec.queues),
            },
        )
        agent.state = to
        if to == "ready":
            agent.idle_since = self.now

    # ---------------------------------------------------------------- the day
    def run(self) -> list[Emitted]:
        self._schedule_shifts()
        self._schedule_arrivals()
        while self.heap:
            when, _, action = heapq.heappop(self.heap)
            if when > self.horizon:
                break
            self.now = when
            action()
        return self.out

    def _schedule_shifts(self) -> None:
        for agent in self.agents.values():
            shift = self.shifts.shifts[agent.spec.shift]
            for start, end in _shift_spans(shift.start, shift.end):
                self.at(start, functools.partial(self._login, agent))
                self.at(end, functools.partial(self._shift_over, agent))

    def _schedule_arrivals(self) -> None:
        t = 0.0
        counter = itertools.count(1)
        while True:
            hour = min(int(t // 3600), 23)
            rate = HOURLY_PROFILE[hour] * self.p.volume / 3600.0
            if rate <= 0:
                t = (hour + 1) * 3600.0
                if t >= 86400:
                    return
                continue
            gap = self.rng.expovariate(rate)
            if int((t + gap) // 3600) != hour:  # rate changes: restart in the next hour
                t = (hour + 1) * 3600.0
                if t >= 86400:
                    return
                continue
            t += gap
            call_id = f"sim-{self.p.seed}-{next(counter):05d}"
            arrive: Callable[[], None] = functools.partial(self._arrive, call_id)
            heapq.heappush(self.heap, (t, next(self.seq), arrive))

    def _login(self, agent: _Agent) -> None:
        agent.on_shift = True
        if agent.state != "logged_out":
            return
        self.agent_event(
            AgentEventType.logged_in,
            agent,
            extension="",
            queues=list(agent.spec.queues),
            shift=agent.spec.shift,
        )
        self.set_state(agent, "not_ready", "login")
        self.at(self.rng.uniform(5, 60), lambda: self._ready(agent))

    def _shift_over(self, agent: _Agent) -> None:
        agent.on_shift = False
        if agent.state in ("ready", "not_ready"):
            self._logout(agent)

    def _logout(self, agent: _Agent) -> None:
        self.set_state(agent, "logged_out", "shift_end")
        self.agent_event(AgentEventType.logged_out, agent, reason="shift_end")

    def _ready(self, agent: _Agent) -> None:
        if agent.state == "logged_out":
            return
        if not agent.on_shift:
            self._logout(agent)
            return
        if agent.state != "ready" and self.rng.random() < self.p.break_probability:
            self.set_state(agent, "not_ready", "break")
            self.at(self.rng.uniform(0.5, 1.5) * self.p.break_seconds, lambda: self._ready(agent))
            return
        self.set_state(agent, "ready")
        self._dispatch()

    # ---------------------------------------------------------------- calls
    def _arrive(self, call_id: str) -> None:
        call = _Call(call_id)
        self.calls[call_id] = call
        self.call_event(
            EventType.call_arrived, call_id, caller="13800138000", did="4008001234", direction="in"
        )
        self.at(self.rng.uniform(*self.p.ivr_range), lambda: self._enqueue(call))

    def _enqueue(self, call: _Call) -> None:
        mix = self.p.queue_mix
        queue = self.rng.choices(list(mix), weights=list(mix.values()))[0]
        self.call_event(EventType.menu_chosen, call.call_id, node="main", digit="1", target=queue)
        self._join(call, queue)
        call.patience_at = self.now + self.rng.expovariate(1.0 / self.p.patience_mean)
        self.at(call.patience_at - self.now, functools.partial(self._give_up, call, call.token))
        config = self.queues.queues.get(queue)
        if config and config.callback_offer and config.callback_offer.after_seconds:
            call.wants_callback = self.rng.random() < self.p.callback_probability
            self.at(config.callback_offer.after_seconds, lambda: self._offer_callback(call))
        self._dispatch()

    def _join(self, call: _Call, queue: str) -> None:
        call.queue, call.queued_at, call.state = queue, self.now, CallPhase.waiting
        call.token += 1
        if call.call_id not in self.waiting:
            self.waiting.append(call.call_id)
        self.call_event(
            EventType.call_queued,
            call.call_id,
            queue=queue,
            priority=0,
            skills=[],
            collected={},
            menu_path=["main"],
        )
        overflow = self.queues.queues[queue].overflow if queue in self.queues.queues else None
        if overflow:
            token = call.token
            self.at(overflow.after_seconds, lambda: self._overflow(call, token, overflow.to))

    def _overflow(self, call: _Call, token: int, target: str) -> None:
        if call.token != token or call.state != CallPhase.waiting:
            return
        waited = self.now - call.queued_at
        self.call_event(
            EventType.call_overflowed,
            call.call_id,
            from_queue=call.queue,
            to_queue=target,
            waited=round(waited, 3),
        )
        call.queue, call.queued_at = target, self.now
        call.token += 1
        self._dispatch()

    def _offer_callback(self, call: _Call) -> None:
        if call.state != CallPhase.waiting or not call.wants_callback:
            return
        self.call_event(
            EventType.callback_requested, call.call_id, queue=call.queue, number="13800138000"
        )
        self._leave(call)
        self.at(2.0, lambda: self._end(call, "callback"))

    def _give_up(self, call: _Call, _token: int) -> None:
        if call.state not in (CallPhase.waiting, CallPhase.reserved):
            return
        if call.state == CallPhase.reserved and call.agent:
            agent = self.agents[call.agent]
            self.set_state(agent, "ready", call=call.call_id)
            call.agent = None
        waited = self.now - call.queued_at
        self.call_event(EventType.caller_hung_up, call.call_id)
        self.call_event(
            EventType.abandoned, call.call_id, queue=call.queue, waited=round(waited, 3)
        )
        self._leave(call)
        self._end(call, "abandoned")
        self._dispatch()

    def _leave(self, call: _Call) -> None:
        call.state = CallPhase.ended
        call.token += 1
        if call.call_id in self.waiting:
            self.waiting.remove(call.call_id)

    def _end(self, call: _Call, outcome: str) -> None:
        self.call_event(EventType.call_ended, call.call_id, reason=outcome, outcome=outcome)

    def _dispatch(self) -> None:
        """Longest-idle ready agent serving the queue takes the longest-waiting call."""
        for call_id in list(self.waiting):
            call = self.calls[call_id]
            if call.state != CallPhase.waiting:
                continue
            ready = [
                a
                for a in self.agents.values()
                if a.state == "ready" and call.queue in a.spec.queues
            ]
            if not ready:
                continue
            agent = min(ready, key=lambda a: a.idle_since)
            self._offer(call, agent)

    def _offer(self, call: _Call, agent: _Agent) -> None:
        call.state, call.agent = CallPhase.reserved, agent.spec.agent_id
        agent.call = call.call_id
        self.set_state(agent, "reserved", call=call.call_id)
        self.call_event(
            EventType.call_reserved,
            call.call_id,
            queue=call.queue,
            agent_id=agent.spec.agent_id,
            agent_uri="",
        )
        self.call_event(
            EventType.agent_offered,
            call.call_id,
            agent_uri="",
            agent_id=agent.spec.agent_id,
            queue=call.queue,
        )
        token = call.token
        if self.rng.random() < self.p.miss_probability:
            self.at(self.p.ring_timeout, lambda: self._missed(call, agent, token))
        else:
            self.at(self.p.ring_seconds, lambda: self._answer(call, agent, token))

    def _missed(self, call: _Call, agent: _Agent, token: int) -> None:
        if (
            call.token != token
            or call.state != CallPhase.reserved
            or call.agent != agent.spec.agent_id
        ):
            return
        self.call_event(
            EventType.agent_missed,
            call.call_id,
            agent_uri="",
            agent_id=agent.spec.agent_id,
            reason="ring_timeout",
        )
        self.set_state(agent, "not_ready", "missed", call=call.call_id)
        agent.call = None
        call.state, call.agent = CallPhase.waiting, None
        self.at(60.0, lambda: self._ready(agent))
        self._dispatch()

    def _answer(self, call: _Call, agent: _Agent, token: int) -> None:
        if (
            call.token != token
            or call.state != CallPhase.reserved
            or call.agent != agent.spec.agent_id
        ):
            return
        call.state = CallPhase.connected
        if call.call_id in self.waiting:
            self.waiting.remove(call.call_id)
        call.token += 1
        self.call_event(
            EventType.agent_answered, call.call_id, agent_uri="", agent_id=agent.spec.agent_id
        )
        self.call_event(EventType.bridged, call.call_id, agent_uri="")
        self.set_state(agent, "on_call", call=call.call_id)
        talk = self.rng.expovariate(1.0 / self.p.talk_mean) + 10
        if self.rng.random() < self.p.hold_probability:
            self.at(talk / 3, lambda: self._hold(call, agent))
        self.at(talk, lambda: self._hang_up(call, agent))

    def _hold(self, call: _Call, agent: _Agent) -> None:
        if call.state != CallPhase.connected:
            return
        self.call_event(EventType.held, call.call_id)
        self.set_state(agent, "on_hold", call=call.call_id)

        def unhold() -> None:
            if call.state == CallPhase.connected:
                self.call_event(EventType.unheld, call.call_id)
                self.set_state(agent, "on_call", call=call.call_id)

        self.at(self.rng.uniform(5, 30), unhold)

    def _hang_up(self, call: _Call, agent: _Agent) -> None:
        if call.state != CallPhase.connected:
            return
        call.state = CallPhase.ended
        self.call_event(EventType.agent_hung_up, call.call_id)
        self._end(call, "answered")
        self.set_state(agent, "wrap_up", call=call.call_id)
        self.at(self.rng.uniform(*self.p.wrap_range), lambda: self._wrapped(call, agent))

    def _wrapped(self, call: _Call, agent: _Agent) -> None:
        self.call_event(
            EventType.wrap_up_ended,
            call.call_id,
            agent_id=agent.spec.agent_id,
            disposition="resolved",
        )
        agent.call = None
        self._ready(agent)


_ROUTING_EVENTS = {
    EventType.call_reserved,
    EventType.call_overflowed,
    EventType.callback_scheduled,
    EventType.wrap_up_ended,
}


def _shift_spans(start: time, end: time) -> list[tuple[float, float]]:
    """Seconds from local midnight the shift is on, inside one day (overnight: two spans)."""
    s = start.hour * 3600 + start.minute * 60
    e = end.hour * 3600 + end.minute * 60
    if s < e:
        return [(float(s), float(e))]
    return [(0.0, float(e)), (float(s), 86400.0 + 3600.0)]


def simulate_day(
    *,
    day: datetime,
    end: datetime | None = None,
    agents: Sequence[SimAgent],
    queues: QueuesFile,
    shifts: ShiftsFile,
    seed: int = 1,
    volume: float = 1.0,
) -> list[Emitted]:
    """Events of one simulated local day (midnight ``day``) up to ``end`` (default: its end)."""
    stop = end or day + timedelta(days=1)
    params = SimParams(day=day, end=stop, seed=seed, volume=volume)
    return DaySimulation(params, agents, queues, shifts).run()


def local_midnight(on: datetime, timezone: str) -> datetime:
    tz = ZoneInfo(timezone)
    return datetime.combine(on.astimezone(tz).date(), time(0, 0), tzinfo=tz)
