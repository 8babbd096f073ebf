"""Historical reports from SQL, through the same definitions as the live engine.

Calls: the stored event log (``call_events``) of every call that entered a queue in the range
is replayed through :class:`metrics.call_tracker.CallTracker`, exactly as the live consumer
does; a call with no stored events is replayed from its ``calls`` row. Agent time comes from
``agent_state_changes``; tickets and satisfaction callbacks from the ticketing tables.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.context import AppContext
from callcenter.errors import InvalidInput
from callcenter.streams import AgentEventType, CallEvent, EventType
from cti.models import AgentStateChange, Call
from cti.models import CallEvent as CallEventRow
from metrics.agent_states import AgentState, AgentTracker
from metrics.call_state import CallState
from metrics.call_tracker import CallTracker
from metrics.counters import add_into
from metrics.effects import Delta
from metrics.errors import BAD_PERIOD
from metrics.figures import figures
from metrics.live_config import load_teams, metric_config
from metrics.metric_config import Cohort, MetricConfig

Period = Literal["hour", "shift", "day", "week", "total"]
Group = Literal["queue", "team", "agent", "center"]
PERIODS = ("hour", "shift", "day", "week", "total")
GROUPS = ("queue", "team", "agent", "center")
MAX_RANGE_DAYS = 400


def period_keys(config: MetricConfig, cohort: Cohort, period: str) -> list[str]:
    """The report rows a cohort belongs to. By shift: every shift occurrence whose hours
    cover it (overlapping shifts both count it, as on the wallboard)."""
    local = config.local(cohort.at)
    if period == "hour":
        return [local.strftime("%Y-%m-%d %H:00")]
    if period == "day":
        return [local.date().isoformat()]
    if period == "week":
        year, week, _ = local.isocalendar()
        return [f"{year}-W{week:02d}"]
    if period == "shift":
        return [occurrence for _code, occurrence in cohort.occurrences]
    return ["total"]


def group_key(cohort: Cohort, group: str) -> str | None:
    if group == "queue":
        return cohort.queue
    if group == "team":
        return cohort.team or ("none" if cohort.agent else None)
    if group == "agent":
        return cohort.agent
    return "all"


def _events_for_calls(
    session: Session, start: datetime, end: datetime
) -> dict[str, list[CallEvent]]:
    """Stored events of calls that were queued in [start, end) (with margin for overflows),
    and of calls refused at the edge in it."""
    queued_types = (
        EventType.call_queued.value,
        EventType.call_overflowed.value,
        EventType.call_refused.value,
    )
    ids_query = select(CallEventRow.call_id).where(
        CallEventRow.type.in_(queued_types), CallEventRow.at >= start, CallEventRow.at < end
    )
    rows = session.execute(
        select(CallEventRow)
        .where(CallEventRow.call_id.in_(ids_query))
        .order_by(CallEventRow.call_id, CallEventRow.at, CallEventRow.id)
    ).scalars()
    by_call: dict[str, list[CallEvent]] = defaultdict(list)
    for row in rows:
        by_call[row.call_id].append(
            CallEvent(
                type=row.type, call_id=row.call_id, at=row.at.isoformat(), data=row.data or {}
            )
        )
    return by_call


def _events_from_call_row(call: Call) -> list[CallEvent]:
    """A call stored without its event log: the row's times say what happened, one queue."""
    if call.queued_at is None or not call.queue_code:
        return []
    events = [
        CallEvent(
            EventType.call_queued,
            call.id,
            at=call.queued_at.isoformat(),
            data={"queue": call.queue_code},
        )
    ]
    end = (call.ended_at or call.queued_at).isoformat()
    outcome = call.outcome or ""
    if outcome == "answered" and call.answered_at is not None:
        events.append(
            CallEvent(
                EventType.agent_answered,
                call.id,
                at=call.answered_at.isoformat(),
                data={"agent_id": call.agent_id},
            )
        )
    elif outcome == "callback":
        events.append(CallEvent(EventType.callback_requested, call.id, at=end))
    elif outcome in ("failed", "slot_failed"):
        events.append(CallEvent(EventType.slot_failed, call.id, at=end))
    elif outcome in ("abandoned", "short_abandoned"):
        events.append(CallEvent(EventType.abandoned, call.id, at=end))
    if call.ended_at is not None:
        events.append(CallEvent(EventType.call_ended, call.id, at=end))
    return events


def call_deltas(ctx: AppContext, session: Session, start: datetime, end: datetime) -> list[Delta]:
    config = metric_config(ctx)
    tracker = CallTracker(config, load_teams(ctx))
    by_call = _events_for_calls(session, start - timedelta(hours=6), end)
    rows = session.execute(
        select(Call).where(Call.queued_at >= start, Call.queued_at < end)
    ).scalars()
    for call in rows:
        if call.id not in by_call:
            by_call[call.id] = _events_from_call_row(call)
    deltas: list[Delta] = []
    for call_id, events in by_call.items():
        state = CallState(call_id)
        for event in events:
            deltas += tracker.apply(state, event).deltas
    return [d for d in deltas if start <= d.cohort.at < end]


def agent_deltas(
    ctx: AppContext, session: Session, start: datetime, end: datetime
) -> tuple[list[Delta], list[tuple[Delta, str]]]:
    """State-time deltas, and the not-ready pieces with their reason."""
    config = metric_config(ctx)
    tracker = AgentTracker(config, load_teams(ctx))
    rows = session.execute(
        select(AgentStateChange)
        .where(AgentStateChange.at < end, AgentStateChange.at >= start - timedelta(days=1))
        .order_by(AgentStateChange.agent_id, AgentStateChange.at, AgentStateChange.id)
    ).scalars()
    states: dict[str, AgentState] = {}
    deltas: list[Delta] = []
    not_ready: list[tuple[Delta, str]] = []
    for row in rows:
        agent = str(row.agent_id)
        state = states.setdefault(agent, AgentState(agent))
        previous_reason = state.reason
        previous_state = state.state
        event = CallEvent(
            AgentEventType.state_changed,
            agent,
            at=row.at.isoformat(),
            data={
                "agent_id": agent,
                "from": row.from_state,
                "to": row.to_state,
                "reason": row.reason,
            },
        )
        produced = tracker.apply(state, event)
        deltas += produced
        if previous_state == "not_ready":
            not_ready += [(d, previous_reason or "unspecified") for d in produced]
    now = min(end, datetime.now(UTC))
    for state in states.values():  # still in a state at the end of the range
        produced = tracker.close_interval(state, now)
        deltas += produced
        if state.state == "not_ready":
            not_ready += [(d, state.reason or "unspecified") for d in produced]
    keep = [d for d in deltas if start <= d.cohort.at < end]
    return keep, [(d, r) for d, r in not_ready if start <= d.cohort.at < end]


def _ticket_rows(
    ctx: AppContext, session: Session, start: datetime, end: datetime
) -> tuple[list[tuple[Cohort, str]], list[tuple[Cohort, str | None, int | None]]]:
    """(cohort, 'ticket') for tickets created; (cohort, result, score) for callbacks done."""
    from ticketing.models import SatisfactionCallback, Ticket

    config = metric_config(ctx)
    teams = load_teams(ctx)
    tickets = session.execute(
        select(Ticket.created_at, Call.queue_code, Call.agent_id)
        .outerjoin(Call, Call.id == Ticket.call_id)
        .where(Ticket.created_at >= start, Ticket.created_at < end)
    ).all()
    created = []
    for at, queue, agent in tickets:
        agent_s = str(agent) if agent is not None else None
        created.append((config.cohort(at, queue, teams.get(agent_s or ""), agent_s), "ticket"))
    done = session.execute(
        select(
            SatisfactionCallback.completed_at,
            SatisfactionCallback.result,
            SatisfactionCallback.score,
            Call.queue_code,
            Call.agent_id,
        )
        .join(Ticket, Ticket.id == SatisfactionCallback.ticket_id)
        .outerjoin(Call, Call.id == Ticket.call_id)
        .where(SatisfactionCallback.completed_at >= start, SatisfactionCallback.completed_at < end)
    ).all()
    results = []
    for completed, result, score, queue, agent in done:
        if completed is None:
            continue
        agent_s = str(agent) if agent is not None else None
        results.append(
            (config.cohort(completed, queue, teams.get(agent_s or ""), agent_s), result, score)
        )
    return created, results


Buckets = dict[tuple[str, str], dict[str, float]]  # (period, group) -> counters


def _check_request(start: datetime, end: datetime, period: str, group: str) -> None:
    if period not in PERIODS:
        raise InvalidInput(
            f"period must be one of {', '.join(PERIODS)}; got {period!r}", error_id=BAD_PERIOD
        )
    if group not in GROUPS:
        raise InvalidInput(
            f"group must be one of {', '.join(GROUPS)}; got {group!r}", error_id=BAD_PERIOD
        )
    if end <= start:
        raise InvalidInput(
            "'to' must be after 'from'",
            details={"from": str(start), "to": str(end)},
            error_id=BAD_PERIOD,
        )
    if end - start > timedelta(days=MAX_RANGE_DAYS):
        raise InvalidInput(f"a report covers at most {MAX_RANGE_DAYS} days", error_id=BAD_PERIOD)


class _Grouping:
    """Adds values into the (period, group) buckets of a cohort."""

    def __init__(self, config: MetricConfig, period: str, group: str) -> None:
        self.config = config
        self.period = period
        self.group = group

    def add(
        self, buckets: Buckets, cohort: Cohort, values: Mapping[str, float], *, ungrouped: bool
    ) -> None:
        """``ungrouped``: a cohort outside every group counts under ``none`` (tickets and
        satisfaction callbacks) instead of being left out (calls and agent time)."""
        g = group_key(cohort, self.group)
        if g is None:
            if not ungrouped:
                return
            g = "none"
        for period_name in period_keys(self.config, cohort, self.period):
            add_into(buckets[(period_name, g)], dict(values))


def _report_row(
    key: tuple[str, str], group: str, counters: Buckets, not_ready: Buckets, extra: Buckets
) -> dict[str, Any]:
    fig = figures(counters.get(key, {}))
    more = extra.get(key, {})
    return {
        "period": key[0],
        group: key[1],
        **{k: v for k, v in fig.items() if k != "state_seconds"},
        "state_seconds": fig["state_seconds"],
        "not_ready_seconds": {r: round(s, 3) for r, s in not_ready.get(key, {}).items()},
        "tickets_created": int(more.get("tickets_created", 0)),
        "satisfaction_callbacks": int(more.get("satisfaction_callbacks", 0)),
        "satisfied": int(more.get("result:satisfied", 0)),
        "unsatisfied": int(more.get("result:unsatisfied", 0)),
        "satisfaction_score_avg": (
            more["score_sum"] / more["score_count"] if more.get("score_count") else None
        ),
    }


def report(
    ctx: AppContext, *, start: datetime, end: datetime, period: str, group: str
) -> list[dict[str, Any]]:
    """One row per (period, group): the live figures plus agent time, tickets, satisfaction."""
    _check_request(start, end, period, group)
    grouping = _Grouping(metric_config(ctx), period, group)
    counters: Buckets = defaultdict(dict)
    not_ready: Buckets = defaultdict(dict)
    extra: Buckets = defaultdict(dict)
    with ctx.sessions() as session:
        call = call_deltas(ctx, session, start, end)
        states, reasons = agent_deltas(ctx, session, start, end)
        created, satisfaction = _ticket_rows(ctx, session, start, end)
    for delta in call + states:
        grouping.add(counters, delta.cohort, {delta.counter: delta.value}, ungrouped=False)
    for delta, reason in reasons:
        grouping.add(not_ready, delta.cohort, {reason: delta.value}, ungrouped=False)
    for cohort, _ in created:
        grouping.add(extra, cohort, {"tickets_created": 1}, ungrouped=True)
    for cohort, result, score in satisfaction:
        values: dict[str, float] = {"satisfaction_callbacks": 1, f"result:{result or 'none'}": 1}
        if score is not None:
            values.update({"score_sum": float(score), "score_count": 1})
        grouping.add(extra, cohort, values, ungrouped=True)
    return [
        _report_row(key, group, counters, not_ready, extra)
        for key in sorted(set(counters) | set(not_ready) | set(extra))
    ]


def to_csv(rows: Iterable[Mapping[str, Any]], group: str) -> str:
    rows = list(rows)
    reasons = sorted({r for row in rows for r in row["not_ready_seconds"]})
    states = sorted({s for row in rows for s in row["state_seconds"]})
    refusals = sorted({r for row in rows for r in row.get("refused_by_reason", {})})
    scalar = [
        k
        for k in (rows[0].keys() if rows else ["period", group])
        if k not in ("not_ready_seconds", "state_seconds", "refused_by_reason")
    ]
    header = (
        scalar
        + [f"not_ready_{r}_seconds" for r in reasons]
        + [f"{s}_seconds" for s in states]
        + [f"refused_{r}" for r in refusals]
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(
            [_cell(row[k]) for k in scalar]
            + [_cell(row["not_ready_seconds"].get(r, 0)) for r in reasons]
            + [_cell(row["state_seconds"].get(s, 0)) for s in states]
            + [_cell(row.get("refused_by_reason", {}).get(r, 0)) for r in refusals]
        )
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if not value.is_integer() else str(int(value))
    return str(value)
