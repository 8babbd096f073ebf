"""The metric counters: their names, and how counters from several places are summed.

Every figure (see :mod:`metrics.figures`) is computed from these counters, summed over a
cohort (queue, team, shift, day or minute). The call tracker (:mod:`metrics.call_tracker`)
and the agent tracker (:mod:`metrics.agent_states`) say which counter each event adds to;
the live engine keeps them in Redis, reports sum them from the SQL event log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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
STATE_PREFIX = "state_seconds:"  # + an agent state: seconds agents spent in it
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


def add_into(target: dict[str, float], counters: Mapping[str, float]) -> dict[str, float]:
    for name, value in counters.items():
        target[name] = target.get(name, 0.0) + float(value)
    return target


def sum_counters(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        add_into(total, part)
    return total
