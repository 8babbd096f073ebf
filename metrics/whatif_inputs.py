"""What the what-if simulator replays: a day's arrivals and a staffing plan.

Arrivals come from the built-in day profile (``synthetic_arrivals``) or from a stored day's
call records (``stored_arrivals``); the plan is a TOML file (``load_plan``), validated with
the same ``file: dotted.key: problem`` messages as the center's own configuration.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from pydantic import Field
from sqlalchemy import select

from callcenter.context import AppContext
from config.loader import load_file
from config.schemas import Code, Strict
from metrics.simulation import HOURLY_PROFILE, QUEUE_MIX

if TYPE_CHECKING:
    from cti.models import Call

DEFAULT_PATIENCE_SECONDS = 110.0  # the mean patience when a stored day has no abandons
DEFAULT_HANDLE_SECONDS = 150.0  # the mean talk time when a stored day has no answered call


@dataclass(frozen=True)
class Arrival:
    """One caller: when they joined a queue, which one, how long they would wait at most,
    and how long the agent would talk with them."""

    call_id: str
    at: float  # epoch seconds
    queue: str
    patience: float
    talk: float
    priority: int = 0


# ---------------------------------------------------------------- the plan


class PlanGroup(Strict):
    """``count`` agents working ``shift`` and serving ``queues`` (queue → skill level)."""

    shift: Code
    count: int = Field(ge=0, le=1000)
    queues: dict[Code, int] = Field(min_length=1)


class PlanFile(Strict):
    ring_seconds: float = Field(default=4.0, ge=0, le=120)
    agents: list[PlanGroup] = Field(min_length=1)


def load_plan(path: Path) -> PlanFile:
    """A plan file; raises config.loader.ConfigError listing every problem."""
    return load_file(path, PlanFile)


DEFAULT_PLAN = PlanFile(
    agents=[
        PlanGroup(shift="day", count=6, queues={"general": 1, "repair": 1, "fees": 1}),
        PlanGroup(shift="mid", count=4, queues={"general": 1, "complaint": 1, "repair": 2}),
        PlanGroup(shift="night", count=2, queues={"general": 1, "repair": 1}),
    ]
)


# ---------------------------------------------------------------- arrivals


def local_midnight(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=ZoneInfo(timezone))


def synthetic_arrivals(
    day: date,
    timezone: str,
    *,
    seed: int,
    volume: float = 1.0,
    queues: Mapping[str, float] | None = None,
    patience_mean: float = DEFAULT_PATIENCE_SECONDS,
    talk_mean: float = DEFAULT_HANDLE_SECONDS,
) -> list[Arrival]:
    """The built-in day: Poisson arrivals at the hotline's hourly profile (metrics.simulation),
    exponential patience and talk times. The same seed gives the same day."""
    rng = random.Random(seed)
    mix = dict(queues or QUEUE_MIX)
    names, weights = list(mix), list(mix.values())
    start = local_midnight(day, timezone).timestamp()
    arrivals: list[Arrival] = []
    for hour, per_hour in enumerate(HOURLY_PROFILE):
        rate = per_hour * volume / 3600.0
        if rate <= 0:
            continue
        moment = start + hour * 3600.0
        end = moment + 3600.0
        while True:
            moment += rng.expovariate(rate)
            if moment >= end:
                break
            arrivals.append(
                Arrival(
                    call_id=f"sim-{len(arrivals) + 1:05d}",
                    at=moment,
                    queue=rng.choices(names, weights)[0],
                    patience=rng.expovariate(1.0 / patience_mean),
                    talk=max(5.0, rng.expovariate(1.0 / talk_mean)),
                )
            )
    return arrivals


ABANDONED = ("abandoned", "short_abandoned")


def stored_arrivals(ctx: AppContext, day: date, *, seed: int = 1) -> list[Arrival]:
    """The callers of a stored local day, from the call records.

    Each queued call arrives when it first joined a queue, in that queue. A caller who gave up
    waited exactly their patience; for the others it is drawn from an exponential whose mean is
    the day's observed patience (total waiting / abandons, the maximum-likelihood estimate when
    waits are cut short by answers). An answered call talks as long as it did; the others as
    long as a call drawn from the day's answered calls.
    """
    calls, first_queue = _stored_calls(ctx, day)
    patience_mean, talks = _observed(calls)
    rng = random.Random(seed)
    arrivals = []
    for call in calls:
        queued, answered, ended = _times(call)
        # the draws come in this order for every call (the seed's sequence stays the same)
        if call.outcome in ABANDONED and ended is not None:
            patience = ended - queued
        else:
            patience = rng.expovariate(1.0 / patience_mean)
        if answered is not None and ended is not None:
            talk = max(ended - answered, 1.0)
        else:
            talk = rng.choice(talks) if talks else DEFAULT_HANDLE_SECONDS
        queue = first_queue.get(call.id) or call.queue_code
        if not queue:
            continue
        arrivals.append(
            Arrival(
                call_id=call.id,
                at=queued,
                queue=queue,
                patience=patience,
                talk=talk,
                priority=call.priority,
            )
        )
    return arrivals


def _stored_calls(ctx: AppContext, day: date) -> tuple[list[Call], dict[str, str]]:
    """The calls queued on a local day, in order, and the queue each first joined."""
    from cti.models import Call, CallEvent

    start = local_midnight(day, ctx.settings.timezone).astimezone(UTC)
    end = start + timedelta(days=1)
    with ctx.sessions() as session:
        calls = list(
            session.scalars(
                select(Call)
                .where(Call.queued_at >= start, Call.queued_at < end)
                .order_by(Call.queued_at, Call.id)
            )
        )
        first_queue: dict[str, str] = {}
        for call_id, data in session.execute(
            select(CallEvent.call_id, CallEvent.data)
            .where(CallEvent.call_id.in_([c.id for c in calls]), CallEvent.type == "call_queued")
            .order_by(CallEvent.at, CallEvent.id)
        ):
            if call_id not in first_queue and data.get("queue"):
                first_queue[call_id] = str(data["queue"])
    return calls, first_queue


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _times(call: Call) -> tuple[float, float | None, float | None]:
    """A queued call's queued, answered and ended times (epoch seconds)."""
    queued = _epoch(call.queued_at)
    assert queued is not None
    return queued, _epoch(call.answered_at), _epoch(call.ended_at)


def _observed(calls: list[Call]) -> tuple[float, list[float]]:
    """The day's mean patience (total waiting / abandons) and its answered calls' talk times."""
    waits, abandons, talks = 0.0, 0, []
    for call in calls:
        queued, answered, ended = _times(call)
        if answered is not None:
            waits += answered - queued
            if ended is not None:
                talks.append(max(ended - answered, 1.0))
        elif ended is not None:
            waits += ended - queued
            if call.outcome in ABANDONED:
                abandons += 1
    patience_mean = waits / abandons if abandons else DEFAULT_PATIENCE_SECONDS
    return patience_mean, talks


def mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def plan_in_force(ctx: AppContext, *, ring_seconds: float = 4.0) -> PlanFile:
    """The staffing the center has now: its active agents, grouped by shift and queue skills
    (``agents.shift_code``, ``agent_queues``). Agents without a shift or a queue are left out
    (they would never be logged in by the simulator); with none left, the built-in plan."""
    from cti.models import Agent, AgentQueue

    with ctx.sessions() as session:
        skills: dict[int, dict[str, int]] = {}
        for agent_id, queue, level in session.execute(
            select(AgentQueue.agent_id, AgentQueue.queue_code, AgentQueue.skill_level)
            .join(Agent, Agent.id == AgentQueue.agent_id)
            .where(Agent.active.is_(True))
        ):
            skills.setdefault(agent_id, {})[queue] = level
        shifts = dict(
            session.execute(
                select(Agent.id, Agent.shift_code).where(
                    Agent.active.is_(True), Agent.shift_code.is_not(None)
                )
            ).all()
        )
    known_queues, known_shifts = set(ctx.config.queues.queues), set(ctx.config.shifts.shifts)
    groups: dict[tuple[str, tuple[tuple[str, int], ...]], int] = {}
    for agent_id, shift in shifts.items():
        queues = tuple(
            sorted((q, v) for q, v in skills.get(agent_id, {}).items() if q in known_queues)
        )
        if not queues or shift not in known_shifts:
            continue
        groups[(shift, queues)] = groups.get((shift, queues), 0) + 1
    if not groups:
        return DEFAULT_PLAN
    order = list(ctx.config.shifts.shifts)
    return PlanFile(
        ring_seconds=ring_seconds,
        agents=[
            PlanGroup(shift=shift, count=count, queues=dict(queues))
            for (shift, queues), count in sorted(
                groups.items(), key=lambda item: (order.index(item[0][0]), item[0][1])
            )
        ],
    )
