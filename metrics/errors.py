"""The error ids of the metrics package (live figures, reports, staffing, what-if), declared in
one place; docs/errors.md says what each means and a test keeps the two in step."""

from __future__ import annotations

from callcenter.errors import ErrorCatalog

METRICS = ErrorCatalog(
    "metrics",
    {
        "live-unavailable": "live figures are unavailable: Redis did not answer",
        "wallboard-forbidden": "the role may not watch the wallboard",
        "bad-period": "a time range, period or grouping a report or plan cannot take",
        "unknown-queue": "a queue queues.toml does not have",
        "unknown-shift": "a shift shifts.toml does not have",
        "bad-target": "a service-level target outside (0, 1]",
    },
)

LIVE_UNAVAILABLE = METRICS.id("live-unavailable")
WALLBOARD_FORBIDDEN = METRICS.id("wallboard-forbidden")
BAD_PERIOD = METRICS.id("bad-period")
UNKNOWN_QUEUE = METRICS.id("unknown-queue")
UNKNOWN_SHIFT = METRICS.id("unknown-shift")
BAD_TARGET = METRICS.id("bad-target")
