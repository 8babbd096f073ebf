"""Agents needed per hour of the day, from the center's own history, against the shift plan.

From the queue legs of the range (same definitions as live and reports): arrivals per hour of
day (calls that entered a queue, overflow legs not counted twice), handle time, and the
callers' observed patience — estimated as the total time callers spent waiting (answered or
not) divided by the number who gave up, the maximum-likelihood estimate for an exponential
patience with waits cut short by an answer. Erlang A (with that patience) gives the agents for
the answer-rate target and for the service level; Erlang C (no abandonment) for the service
level, the classic planning figure. The plan per hour is the number of active agents whose
shift covers that hour, held also against the configured minimum.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.errors import InvalidInput
from cti.models import Agent
from metrics.counters import (
    ABANDONED,
    ANSWERED,
    OFFERED,
    OVERFLOWED,
    SHORT_ABANDONED,
    TALK_SUM,
    TALKS,
    WAIT_ANSWERED_SUM,
    WRAP_SUM,
)
from metrics.erlang import agents_for_erlang_a, agents_for_erlang_c
from metrics.errors import BAD_PERIOD, BAD_TARGET
from metrics.figures import figures
from metrics.live_alerts import staffing_minimum
from metrics.live_config import load_teams, metric_config
from metrics.reports import call_deltas

DEFAULT_AHT_SECONDS = 180.0
DEFAULT_PATIENCE_SECONDS = 120.0


def _covers(start: time, end: time, moment: time) -> bool:
    return start <= moment < end if start < end else (moment >= start or moment < end)


def plan_by_hour(ctx: AppContext) -> dict[int, int]:
    """Active agents whose shift covers hh:30 of each hour (the roster)."""
    with ctx.sessions() as session:
        rows = session.execute(select(Agent.shift_code).where(Agent.active.is_(True))).all()
    shifts = ctx.config.shifts.shifts
    plan = {}
    for hour in range(24):
        moment = time(hour, 30)
        plan[hour] = sum(
            1
            for (code,) in rows
            if code in shifts and _covers(shifts[code].start, shifts[code].end, moment)
        )
    return plan


def staffing(
    ctx: AppContext, *, start: datetime, end: datetime, service_level_target: float = 0.8
) -> dict[str, Any]:
    if end <= start:
        raise InvalidInput("'to' must be after 'from'", error_id=BAD_PERIOD)
    if not 0 < service_level_target <= 1:
        raise InvalidInput("service_level_target must be in (0, 1]", error_id=BAD_TARGET)
    config = metric_config(ctx)
    with ctx.sessions() as session:
        deltas = call_deltas(ctx, session, start, end)
    by_hour: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    total: dict[str, float] = defaultdict(float)
    for delta in deltas:
        hour = config.local(delta.cohort.at).hour
        by_hour[hour][delta.counter] += delta.value
        total[delta.counter] += delta.value
    days = max((end - start) / timedelta(days=1), 1e-9)
    abandon_wait = _abandon_wait_seconds(ctx, start, end)
    waited = total[WAIT_ANSWERED_SUM] + abandon_wait
    gave_up = total[ABANDONED] + total[SHORT_ABANDONED]
    patience = waited / gave_up if gave_up > 0 and waited > 0 else DEFAULT_PATIENCE_SECONDS
    overall_aht = figures(total)["aht_seconds"] or DEFAULT_AHT_SECONDS
    target = config.answer_rate_target
    sl_seconds = min(config.service_level_seconds.values(), default=20)
    plan = plan_by_hour(ctx)
    hours = []
    for hour in range(24):
        counters = by_hour.get(hour, {})
        arrivals = (counters.get(OFFERED, 0.0) - counters.get(OVERFLOWED, 0.0)) / days
        rate = arrivals / 3600.0
        talks = counters.get(TALKS, 0.0)
        aht = (
            (counters.get(TALK_SUM, 0.0) + counters.get(WRAP_SUM, 0.0)) / talks
            if talks >= 5
            else overall_aht
        )
        need_rate = agents_for_erlang_a(rate, aht, patience, answer_rate=target)
        need_sl_a = agents_for_erlang_a(
            rate, aht, patience, service_level=service_level_target, target_seconds=sl_seconds
        )
        need_sl_c = agents_for_erlang_c(rate, aht, sl_seconds, service_level_target)
        needed = max(need_rate, need_sl_a)
        minimum = staffing_minimum(ctx, datetime.combine(start.date(), time(hour, 30))) or 0
        planned = plan.get(hour, 0)
        hours.append(
            {
                "hour": hour,
                "calls_per_hour": round(arrivals, 3),
                "answered_per_hour": round(counters.get(ANSWERED, 0.0) / days, 3),
                "aht_seconds": round(aht, 1),
                "load_erlangs": round(rate * aht, 3),
                "agents_for_answer_rate_erlang_a": need_rate,
                "agents_for_service_level_erlang_a": need_sl_a,
                "agents_for_service_level_erlang_c": need_sl_c,
                "agents_needed": max(needed, minimum),
                "planned_agents": planned,
                "minimum_agents": minimum,
                "short_by": max(0, max(needed, minimum) - planned),
            }
        )
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "days": round(days, 3),
        "answer_rate_target": target,
        "service_level_target": service_level_target,
        "service_level_seconds": sl_seconds,
        "observed_patience_seconds": round(patience, 1),
        "aht_seconds": round(overall_aht, 1),
        "hours": hours,
        "under_staffed": [
            {"hour": h["hour"], "short_by": h["short_by"]} for h in hours if h["short_by"] > 0
        ],
    }


def _abandon_wait_seconds(ctx: AppContext, start: datetime, end: datetime) -> float:
    """Total time abandoned legs waited (replays the same tracker, keeping leg waits)."""
    from metrics.call_state import CallState
    from metrics.call_tracker import CallTracker
    from metrics.reports import _events_for_calls

    config = metric_config(ctx)
    tracker = CallTracker(config, load_teams(ctx))
    total = 0.0
    with ctx.sessions() as session:
        by_call = _events_for_calls(session, start, end)
    for call_id, events in by_call.items():
        state = CallState(call_id)
        for event in events:
            leg = state.leg
            effects = tracker.apply(state, event)
            if leg is not None and state.leg is not leg:
                closed = [
                    d for d in effects.deltas if d.counter in ("abandoned", "short_abandoned")
                ]
                if closed and start <= leg.entered_at < end:
                    at = datetime.fromisoformat(event.at)
                    total += max((at - leg.entered_at).total_seconds(), 0.0)
    return total
