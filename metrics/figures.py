"""The figures: rates and averages from summed counters, the one place they are defined
(docs/metrics.md gives the prose; the wallboard, reports, staffing and what-if all use it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from metrics.agent_states import AGENT_STATES, AVAILABLE_STATES, BUSY_STATES
from metrics.counters import (
    ABANDONED,
    ANSWERED,
    ANSWERED_IN_SL,
    CALL_COUNTERS,
    CALLBACKS,
    CLOSED,
    FAILED,
    MISSED_OFFERS,
    OFFERED,
    OVERFLOWED,
    REFUSED,
    REFUSED_PREFIX,
    SHORT_ABANDONED,
    STATE_PREFIX,
    TALK_SUM,
    TALKS,
    WAIT_ANSWERED_SUM,
    WRAP_SUM,
)


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
