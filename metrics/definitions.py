"""The metric definitions, written once and used by the live engine and by history alike.

See docs/metrics.md for the prose. The unit of counting is the *queue leg*: one stay of one
call in one queue, from the moment it entered the queue (``call_queued``, or the target side
of ``call_overflowed``) until it left it, with one outcome:

==================  ==============================================================
answered            an agent answered (``agent_answered``)
abandoned           the caller hung up while queued, after ``short_abandon_seconds`` of
                    waiting in all (from the first queue the call entered)
short_abandoned     the caller hung up while queued, before ``short_abandon_seconds``
callback            the caller asked to be called back (``callback_requested`` /
                    ``callback_scheduled``): neither answered nor abandoned
overflowed          the call moved on to another queue (``call_overflowed`` or a new
                    ``call_queued`` naming another queue)
failed              the slot carrying the call died (``slot_failed``)
closed              nobody serving the queue was logged in and the caller heard the
                    no-agents message (``call_ended`` with outcome ``closed``)
==================  ==============================================================

Every figure of a leg is attributed to the *cohort* of the instant it entered the queue: its
local day, the shift in force then, and its minute (for rolling windows). So a call that
queued at 19:59:50 and was answered at 20:00:10 belongs to the day shift, and an answer rate
never exceeds 1.

The :class:`CallTracker` turns events into :class:`Delta` s (counter increments with their
cohort); the live engine stores them in Redis, reports sum them from the SQL event log.
:func:`figures` turns summed counters into rates and averages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from callcenter import call_phases
from callcenter.streams import AgentEventType, CallEvent, EventType
from config.schemas import QueuesFile, ShiftsFile
from metrics.alerts import AlertPolicy

# ---------------------------------------------------------------- counters

OFFERED = "offered"
ANSWERED = "answered"
ANSWERED_IN_SL = "answered_in_sl"
ABANDONED = "abandoned"
SHORT_ABANDONED = "short_abandoned"
CALLBACKS = "callbacks"
OVERFLOWED = "overflowed"
FAILED = "failed"
CLOSED = "closed"
WAIT_ANSWERED_SUM = "wait_answered_sum"  # seconds, answered legs only (ASA numerator)
TALK_SUM = "talk_sum"  # seconds from answer to call end (talk + hold)
TALKS = "talks"  # answered legs whose call has ended
WRAP_SUM = "wrap_sum"  # seconds from call end to wrap_up_ended
MISSED_OFFERS = "missed_offers"
STATE_PREFIX = "state_seconds:"
# Calls the edge turned away before any queue (every line busy, unknown number, a flood ban,
# outside the dial plan): counted for the center only, in all and per reason.
REFUSED = "refused"
REFUSED_PREFIX = "refused:"
REFUSED_REASONS = (
    "no_slot",
    "unknown_did",
    "not_from_trunk",
    "flood_banned",
    "dial_plan",
    "bad_request",
)

CALL_COUNTERS = (
    OFFERED,
    ANSWERED,
    ANSWERED_IN_SL,
    ABANDONED,
    SHORT_ABANDONED,
    CALLBACKS,
    OVERFLOWED,
    FAILED,
    CLOSED,
    WAIT_ANSWERED_SUM,
    TALK_SUM,
    TALKS,
    WRAP_SUM,
    MISSED_OFFERS,
)

OUTCOME_COUNTER = {
    "answered": ANSWERED,
    "abandoned": ABANDONED,
    "short_abandoned": SHORT_ABANDONED,
    "callback": CALLBACKS,
    "overflowed": OVERFLOWED,
    "failed": FAILED,
    "closed": CLOSED,
}

# Agent states as cti/ names them. Busy = handling a call; available = could take one.
BUSY_STATES = ("on_call", "on_hold", "wrap_up")
AVAILABLE_STATES = ("ready", "reserved")
AGENT_STATES = ("ready", "not_ready", "reserved", "on_call", "on_hold", "wrap_up")
NO_SHIFT = "none"
NO_TEAM = "none"


# ---------------------------------------------------------------- time, shifts, windows


def parse_at(value: str) -> datetime:
    """An event's ``at`` (ISO 8601); naive values are taken as UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _covers(start: time, end: time, moment: time) -> bool:
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # overnight: 20:00-08:00


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def shifts_in_force(shifts: ShiftsFile, local: datetime) -> list[str]:
    """Every shift whose hours cover ``local`` (start inclusive, end exclusive), the one that
    started most recently first; a tie goes to the shift listed first in shifts.toml."""
    moment = local.time()
    minute = _minutes(moment)
    found = [
        ((minute - _minutes(shift.start)) % 1440, index, code)
        for index, (code, shift) in enumerate(shifts.shifts.items())
        if _covers(shift.start, shift.end, moment)
    ]
    return [code for _since, _index, code in sorted(found)]


def shift_in_force(shifts: ShiftsFile, local: datetime) -> str:
    """The one shift a moment is attributed to (the ``shift`` label of the Prometheus counters,
    the wallboard's current shift): of the shifts in force, the one that started most recently
    — the same rule as cti/ for calls nobody answered. With the seed's shifts: day 08:00-09:00,
    mid 09:00-20:00, night 20:00-08:00. ``none`` when no shift covers the moment."""
    in_force = shifts_in_force(shifts, local)
    return in_force[0] if in_force else NO_SHIFT


def shift_occurrence(
    shifts: ShiftsFile, code: str, local: datetime
) -> tuple[datetime, datetime] | None:
    """The occurrence of shift ``code`` containing ``local``, or else the latest one that
    started before it (local, timezone-aware bounds). Overnight shifts end the next day."""
    shift = shifts.shifts.get(code)
    if shift is None:
        return None
    tz = local.tzinfo
    for day_offset in (0, -1, -2):
        day = local.date() + timedelta(days=day_offset)
        start = datetime.combine(day, shift.start, tzinfo=tz)
        end_day = day + timedelta(days=1) if shift.end <= shift.start else day
        end = datetime.combine(end_day, shift.end, tzinfo=tz)
        if start <= local:
            return start, end
    return None  # pragma: no cover - a day back always has a start


def occurrence_key(shifts: ShiftsFile, code: str, local: datetime) -> str:
    """``<shift>:<YYYY-MM-DD of the occurrence's start>``: the key of a shift's occurrence."""
    occurrence = shift_occurrence(shifts, code, local)
    return f"{code}:{occurrence[0].date().isoformat()}" if occurrence else f"{code}:-"


@dataclass(frozen=True)
class Cohort:
    """Where a counter increment belongs: its time, queue, shift, team and agent."""

    at: datetime  # UTC
    queue: str | None
    shift: str  # the one shift it is attributed to (shift_in_force)
    day: date  # local calendar day
    # Every shift occurrence whose hours cover it: per-shift figures are "what happened during
    # the shift's hours", so overlapping shifts (day and mid at 10:00) both include it.
    occurrences: tuple[tuple[str, str], ...]
    team: str | None = None
    agent: str | None = None


@dataclass(frozen=True)
class Delta:
    cohort: Cohort
    counter: str
    value: float


@dataclass(frozen=True)
class Observation:
    """One histogram observation (seconds) for the Prometheus histograms."""

    metric: str  # "wait" or "handle"
    queue: str
    value: float


@dataclass(frozen=True)
class WaitingChange:
    queue: str
    call_id: str
    entered_at: datetime | None  # None: left the queue


@dataclass
class Effects:
    deltas: list[Delta] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    waiting: list[WaitingChange] = field(default_factory=list)

    def extend(self, other: Effects) -> None:
        self.deltas += other.deltas
        self.observations += other.observations
        self.waiting += other.waiting


@dataclass(frozen=True)
class MetricConfig:
    """What the definitions need from the configuration."""

    tz: ZoneInfo
    shifts: ShiftsFile
    short_abandon_seconds: int
    service_level_seconds: Mapping[str, int]
    long_wait_alert_seconds: Mapping[str, int]
    answer_rate_target: float
    service_level_target: float = 0.8
    alert_policy: AlertPolicy = field(default_factory=AlertPolicy)
    default_service_level_seconds: int = 20
    _cache: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_files(cls, queues: QueuesFile, shifts: ShiftsFile, timezone: str) -> MetricConfig:
        return cls(
            tz=ZoneInfo(timezone),
            shifts=shifts,
            short_abandon_seconds=queues.short_abandon_seconds,
            service_level_seconds={c: q.service_level_seconds for c, q in queues.queues.items()},
            long_wait_alert_seconds={
                c: q.long_wait_alert_seconds for c, q in queues.queues.items()
            },
            answer_rate_target=shifts.answer_rate_target,
            service_level_target=shifts.service_level_target,
            alert_policy=AlertPolicy(
                min_resolved_calls=shifts.alerts.min_resolved_calls,
                raise_after_seconds=shifts.alerts.raise_after_seconds,
                clear_after_seconds=shifts.alerts.clear_after_seconds,
            ),
        )

    def sl_seconds(self, queue: str) -> int:
        return self.service_level_seconds.get(queue, self.default_service_level_seconds)

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.tz)

    def cohort(
        self, at: datetime, queue: str | None, team: str | None = None, agent: str | None = None
    ) -> Cohort:
        shift, day, occurrences = self._time_cohort(int(at.timestamp() // 60))
        return Cohort(at, queue, shift, day, occurrences, team, agent)

    def _time_cohort(self, minute: int) -> tuple[str, date, tuple[tuple[str, str], ...]]:
        """Shift, day and occurrences only depend on the minute: cached (hot path)."""
        cache: dict[int, tuple[str, date, tuple[tuple[str, str], ...]]] = self._cache
        hit = cache.get(minute)
        if hit is None:
            local = datetime.fromtimestamp(minute * 60, UTC).astimezone(self.tz)
            in_force = shifts_in_force(self.shifts, local)
            hit = (
                in_force[0] if in_force else NO_SHIFT,
                local.date(),
                tuple((code, occurrence_key(self.shifts, code, local)) for code in in_force),
            )
            if len(cache) > 100_000:
                cache.clear()
            cache[minute] = hit
        return hit


# ---------------------------------------------------------------- the call tracker


@dataclass
class OpenLeg:
    queue: str
    entered_at: datetime


@dataclass
class Handling:
    """An answered leg, followed until wrap-up ends so talk and wrap-up land in its cohort."""

    queue: str
    entered_at: datetime
    agent: str | None
    team: str | None
    answered_at: datetime
    ended_at: datetime | None = None


@dataclass
class CallState:
    call_id: str
    leg: OpenLeg | None = None
    handling: Handling | None = None
    ended_at: datetime | None = None
    first_queued_at: datetime | None = None  # the caller's wait starts here, across overflows

    @property
    def finished(self) -> bool:
        """Nothing more can change this call's figures (it may be forgotten)."""
        return self.ended_at is not None and self.leg is None and self.handling is None

    def to_json(self) -> str:
        def enc(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime) else value

        raw = asdict(self)
        for key in ("leg", "handling"):
            if raw[key] is not None:
                raw[key] = {k: enc(v) for k, v in raw[key].items()}
        raw["ended_at"] = enc(raw["ended_at"])
        raw["first_queued_at"] = enc(raw["first_queued_at"])
        return json.dumps(raw, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CallState:
        raw = json.loads(text)

        def dt(value: str | None) -> datetime | None:
            return parse_at(value) if value else None

        leg = raw.get("leg")
        handling = raw.get("handling")
        return cls(
            call_id=raw["call_id"],
            leg=OpenLeg(leg["queue"], parse_at(leg["entered_at"])) if leg else None,
            handling=Handling(
                queue=handling["queue"],
                entered_at=parse_at(handling["entered_at"]),
                agent=handling["agent"],
                team=handling["team"],
                answered_at=parse_at(handling["answered_at"]),
                ended_at=dt(handling["ended_at"]),
            )
            if handling
            else None,
            ended_at=dt(raw.get("ended_at")),
            first_queued_at=dt(raw.get("first_queued_at")),
        )


def _seconds(later: datetime, earlier: datetime) -> float:
    return max((later - earlier).total_seconds(), 0.0)


class CallTracker:
    """Applies call events to per-call state and says what each one adds to which counter.

    Pure: no I/O. ``team_of`` maps an agent id (string) to its team id (string) or None.
    """

    def __init__(self, config: MetricConfig, team_of: Mapping[str, str | None] | None = None):
        self.config = config
        self.team_of = team_of if team_of is not None else {}
        # What each event type does to the call's queue leg and handling; built once.
        self._handlers: dict[str, Callable[[CallState, Mapping[str, Any], datetime], Effects]] = {
            EventType.call_queued: self._on_queued,
            EventType.call_overflowed: self._on_overflowed,
            EventType.callback_requested: self._on_callback,
            EventType.callback_scheduled: self._on_callback,
            EventType.agent_answered: self._on_answered,
            EventType.agent_missed: self._on_missed,
            EventType.abandoned: self._on_abandoned,
            EventType.slot_failed: self._on_slot_failed,
            EventType.call_ended: self._on_ended,
            EventType.transferred: self._on_transferred,
            EventType.call_refused: self._on_refused,
            EventType.wrap_up_ended: self._on_wrap_up_ended,
        }

    def team(self, agent: str | None) -> str | None:
        return self.team_of.get(agent) if agent else None

    def apply(self, state: CallState, event: CallEvent) -> Effects:
        at = parse_at(event.at)
        handler = self._handlers.get(event.type)
        effects = handler(state, event.data, at) if handler else Effects()
        if event.type in call_phases.ENDING_EVENTS:
            # Nothing more comes for the call (callcenter/call_phases.py): its talk ends here.
            effects.extend(self._end(state, at))
        return effects

    def _on_queued(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        effects = Effects()
        queue = str(data.get("queue") or "")
        if queue and not (state.leg and state.leg.queue == queue):
            if state.leg:
                effects.extend(self._close(state, at, "overflowed"))
            effects.extend(self._open(state, queue, at))
        return effects

    def _on_overflowed(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        effects = Effects()
        target = str(data.get("to_queue") or "")
        if state.leg:
            effects.extend(self._close(state, at, "overflowed"))
        if target:
            effects.extend(self._open(state, target, at))
        return effects

    def _on_callback(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        return self._close(state, at, "callback") if state.leg else Effects()

    def _on_answered(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        if not state.leg:
            return Effects()
        return self._close(state, at, "answered", agent=_agent(data))

    def _on_missed(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        agent = _agent(data)
        missed_queue = state.leg.queue if state.leg else str(data.get("queue") or "")
        entered = state.leg.entered_at if state.leg else at
        cohort = self.config.cohort(entered, missed_queue or None, self.team(agent), agent)
        effects = Effects()
        effects.deltas.append(Delta(cohort, MISSED_OFFERS, 1))
        return effects

    def _on_abandoned(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        return self._close_abandoned(state, at) if state.leg else Effects()

    def _on_slot_failed(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        return self._close(state, at, "failed") if state.leg else Effects()

    def _on_ended(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        if state.leg and data.get("outcome") == CLOSED:
            # Nobody was on duty: the caller heard the no-agents message, then the engine
            # hung up. Not an abandon, and no chance to answer it either.
            return self._close(state, at, CLOSED)
        if state.leg:
            # A caller who hangs up while queued abandons, even if no ``abandoned`` came.
            return self._close_abandoned(state, at)
        return Effects()

    def _on_transferred(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        # The answering agent hands the caller on: their talk ends here. (A queue transfer
        # then arrives as a new call_queued, answered by someone else.)
        return self._end_talk(state, at)

    def _on_refused(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        reason = str(data.get("reason") or "")
        reason = reason if reason in REFUSED_REASONS else "other"
        cohort = self.config.cohort(at, None)
        effects = Effects()
        effects.deltas.append(Delta(cohort, REFUSED, 1))
        effects.deltas.append(Delta(cohort, REFUSED_PREFIX + reason, 1))
        return effects  # nothing follows a refusal: the call's end lets its state be forgotten

    def _on_wrap_up_ended(self, state: CallState, data: Mapping[str, Any], at: datetime) -> Effects:
        effects = Effects()
        handling = state.handling
        if handling is None or handling.ended_at is None:
            return effects
        agent = _agent(data) or handling.agent
        if agent == handling.agent or handling.agent is None:
            wrap = _seconds(at, handling.ended_at)
            cohort = self.config.cohort(
                handling.entered_at, handling.queue, handling.team, handling.agent
            )
            effects.deltas.append(Delta(cohort, WRAP_SUM, wrap))
            talk = _seconds(handling.ended_at, handling.answered_at)
            effects.observations.append(Observation("handle", handling.queue, talk + wrap))
            state.handling = None
        return effects

    def _open(self, state: CallState, queue: str, at: datetime) -> Effects:
        state.leg = OpenLeg(queue, at)
        if state.first_queued_at is None:
            state.first_queued_at = at
        effects = Effects()
        effects.deltas.append(Delta(self.config.cohort(at, queue), OFFERED, 1))
        effects.waiting.append(WaitingChange(queue, state.call_id, at))
        return effects

    def _close_abandoned(self, state: CallState, at: datetime) -> Effects:
        assert state.leg is not None
        # Short or not is the caller's experience: their whole wait, not this queue's part of
        # it (a caller who waited 60 s in one queue and hung up 2 s after overflowing to the
        # next abandoned after 62 s, as the call record says).
        waited = _seconds(at, state.first_queued_at or state.leg.entered_at)
        short = waited < self.config.short_abandon_seconds
        return self._close(state, at, "short_abandoned" if short else "abandoned")

    def _close(
        self, state: CallState, at: datetime, outcome: str, agent: str | None = None
    ) -> Effects:
        leg = state.leg
        assert leg is not None
        state.leg = None
        team = self.team(agent)
        cohort = self.config.cohort(leg.entered_at, leg.queue, team, agent)
        waited = _seconds(at, leg.entered_at)
        effects = Effects()
        effects.waiting.append(WaitingChange(leg.queue, state.call_id, None))
        effects.deltas.append(Delta(cohort, OUTCOME_COUNTER[outcome], 1))
        if outcome == "answered":
            effects.deltas.append(Delta(cohort, WAIT_ANSWERED_SUM, waited))
            if waited <= self.config.sl_seconds(leg.queue):
                effects.deltas.append(Delta(cohort, ANSWERED_IN_SL, 1))
            effects.observations.append(Observation("wait", leg.queue, waited))
            state.handling = Handling(leg.queue, leg.entered_at, agent, team, at)
        return effects

    def _end(self, state: CallState, at: datetime) -> Effects:
        if state.ended_at is not None:
            return Effects()
        state.ended_at = at
        return self._end_talk(state, at)

    def _end_talk(self, state: CallState, at: datetime) -> Effects:
        effects = Effects()
        handling = state.handling
        if handling and handling.ended_at is None:
            handling.ended_at = at
            cohort = self.config.cohort(
                handling.entered_at, handling.queue, handling.team, handling.agent
            )
            effects.deltas.append(Delta(cohort, TALK_SUM, _seconds(at, handling.answered_at)))
            effects.deltas.append(Delta(cohort, TALKS, 1))
        return effects


def _agent(data: Mapping[str, Any]) -> str | None:
    value = data.get("agent_id")
    return str(value) if value not in (None, "") else None


# ---------------------------------------------------------------- agent states


@dataclass
class AgentState:
    agent: str
    state: str = "logged_out"
    since: datetime | None = None
    reason: str | None = None
    queues: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "agent": self.agent,
                "state": self.state,
                "since": self.since.isoformat() if self.since else None,
                "reason": self.reason,
                "queues": self.queues,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> AgentState:
        raw = json.loads(text)
        return cls(
            agent=raw["agent"],
            state=raw["state"],
            since=parse_at(raw["since"]) if raw.get("since") else None,
            reason=raw.get("reason"),
            queues=list(raw.get("queues") or []),
        )


def _queue_list(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        return sorted(str(k) for k in value)
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return None


class AgentTracker:
    """Agent state transitions → time spent in each state, split by minute (pure)."""

    def __init__(self, config: MetricConfig, team_of: Mapping[str, str | None] | None = None):
        self.config = config
        self.team_of = team_of if team_of is not None else {}

    def apply(self, state: AgentState, event: CallEvent) -> list[Delta]:
        at = parse_at(event.at)
        data = event.data
        deltas: list[Delta] = []
        queues = _queue_list(data.get("queues"))
        if queues is not None:
            state.queues = queues
        if event.type == AgentEventType.state_changed:
            deltas = self.close_interval(state, at)
            state.state = str(data.get("to") or "not_ready")
            state.reason = str(data["reason"]) if data.get("reason") else None
            state.since = at
        elif event.type == AgentEventType.logged_out:
            deltas = self.close_interval(state, at)
            state.state, state.reason, state.since = "logged_out", data.get("reason"), at
        elif event.type == AgentEventType.logged_in and state.state == "logged_out":
            state.since = at
        return deltas

    def close_interval(self, state: AgentState, until: datetime) -> list[Delta]:
        if state.since is None or state.state == "logged_out":
            return []
        team = self.team_of.get(state.agent)
        return [
            Delta(self.config.cohort(piece_start, None, team, state.agent), counter, seconds)
            for piece_start, seconds in split_by_minute(state.since, until)
            for counter in (STATE_PREFIX + state.state,)
        ]


def split_by_minute(start: datetime, end: datetime) -> Iterator[tuple[datetime, float]]:
    """Pieces of [start, end) cut at minute boundaries (shift and day boundaries are minutes)."""
    cursor = start
    while cursor < end:
        boundary = cursor.replace(second=0, microsecond=0) + timedelta(minutes=1)
        piece_end = min(boundary, end)
        yield cursor, (piece_end - cursor).total_seconds()
        cursor = piece_end


# ---------------------------------------------------------------- figures


def _div(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def figures(counters: Mapping[str, float]) -> dict[str, Any]:
    """Rates and averages from summed counters (one queue, team, shift, or the center).

    answer rate   = answered / (offered − short abandons − callbacks − overflowed out − closed)
    answer rate with refused = answered / (that denominator + calls refused at the edge)
    resolved      = answered + abandoned + failed: the legs whose outcome is known (the same
                    denominator less the callers still waiting or ringing)
    resolved answer rate = answered / resolved: the figure the answer-rate alert judges
    service level = answered within the queue's N seconds / the same denominator
    resolved service level = answered within N seconds / resolved: the figure the
                    service-level alert judges
    ASA           = sum of waits of answered legs / answered
    AHT           = (talk + hold + wrap-up) / answered calls that have ended
    occupancy     = busy time / (busy + available time); busy = on call, on hold, wrap-up;
                    available = ready, reserved (ringing)
    """
    c = {name: float(counters.get(name, 0.0)) for name in CALL_COUNTERS}
    base = c[OFFERED] - c[SHORT_ABANDONED] - c[CALLBACKS] - c[OVERFLOWED] - c[CLOSED]
    resolved = c[ANSWERED] + c[ABANDONED] + c[FAILED]
    busy = sum(float(counters.get(STATE_PREFIX + s, 0.0)) for s in BUSY_STATES)
    available = sum(float(counters.get(STATE_PREFIX + s, 0.0)) for s in AVAILABLE_STATES)
    result: dict[str, Any] = {
        "offered": int(c[OFFERED]),
        "answered": int(c[ANSWERED]),
        "answered_in_sl": int(c[ANSWERED_IN_SL]),
        "abandoned": int(c[ABANDONED]),
        "short_abandoned": int(c[SHORT_ABANDONED]),
        "callbacks": int(c[CALLBACKS]),
        "overflowed": int(c[OVERFLOWED]),
        "failed": int(c[FAILED]),
        "closed": int(c[CLOSED]),
        "missed_offers": int(c[MISSED_OFFERS]),
        "answer_rate_base": int(base),
        "answer_rate": _div(c[ANSWERED], base),
        "refused": int(counters.get(REFUSED, 0)),
        "refused_by_reason": {
            name[len(REFUSED_PREFIX) :]: int(value)
            for name, value in sorted(counters.items())
            if name.startswith(REFUSED_PREFIX) and value
        },
        "answer_rate_with_refused": _div(c[ANSWERED], base + float(counters.get(REFUSED, 0))),
        "resolved": int(resolved),
        "resolved_answer_rate": _div(c[ANSWERED], resolved),
        "service_level": _div(c[ANSWERED_IN_SL], base),
        "resolved_service_level": _div(c[ANSWERED_IN_SL], resolved),
        "asa_seconds": _div(c[WAIT_ANSWERED_SUM], c[ANSWERED]),
        "aht_seconds": _div(c[TALK_SUM] + c[WRAP_SUM], c[TALKS]),
        "occupancy": _div(busy, busy + available),
        "state_seconds": {
            s: float(counters.get(STATE_PREFIX + s, 0.0))
            for s in AGENT_STATES
            if counters.get(STATE_PREFIX + s)
        },
    }
    return result


def add_into(target: dict[str, float], counters: Mapping[str, float]) -> dict[str, float]:
    for name, value in counters.items():
        target[name] = target.get(name, 0.0) + float(value)
    return target


def sum_counters(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        add_into(total, part)
    return total
