"""The call tracker: call events in, what each adds to which counter out (pure, no I/O).

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

Each leg's figures land in the cohort of the instant it entered the queue
(:mod:`metrics.metric_config`). The live engine stores the :class:`~metrics.effects.Delta` s
in Redis, reports sum them from the SQL event log; :func:`metrics.figures.figures` turns
summed counters into rates and averages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from callcenter import call_phases
from callcenter.streams import CallEvent, EventType
from metrics.call_state import CallState, Handling, OpenLeg
from metrics.counters import (
    ANSWERED_IN_SL,
    CLOSED,
    MISSED_OFFERS,
    OFFERED,
    OUTCOME_COUNTER,
    REFUSED,
    REFUSED_PREFIX,
    REFUSED_REASONS,
    TALK_SUM,
    TALKS,
    WAIT_ANSWERED_SUM,
    WRAP_SUM,
)
from metrics.effects import Delta, Effects, Observation, WaitingChange
from metrics.metric_config import MetricConfig
from metrics.time_windows import parse_at


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
