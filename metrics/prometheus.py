"""Prometheus exposition of the live figures, read from Redis at scrape time.

Every API process registers the same collector, so whichever one Prometheus scrapes reports
the same numbers. Names are stable (dashboards and alerts depend on them); see docs/metrics.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from callcenter.context import AppContext
from callcenter.service_keys import REGISTRY, Service
from metrics.counters import (
    ABANDONED,
    ANSWERED,
    CALLBACKS,
    CLOSED,
    MISSED_OFFERS,
    OFFERED,
    OVERFLOWED,
    REFUSED_PREFIX,
    SHORT_ABANDONED,
)
from metrics.live_keys import BUCKETS, EDGE_DIM
from metrics.reader import WINDOWS, LiveReader

log = logging.getLogger(__name__)

COUNTERS = (
    ("callcenter_calls_offered", OFFERED, "Calls that entered a queue (queue legs)"),
    ("callcenter_calls_answered", ANSWERED, "Queue legs answered by an agent"),
    (
        "callcenter_calls_abandoned",
        ABANDONED,
        "Callers who hung up while queued, at or after the short-abandon threshold",
    ),
    (
        "callcenter_calls_short_abandoned",
        SHORT_ABANDONED,
        "Callers who hung up while queued before the short-abandon threshold",
    ),
    ("callcenter_calls_callback_requested", CALLBACKS, "Queued callers who asked for a callback"),
    ("callcenter_calls_overflowed", OVERFLOWED, "Queue legs that moved on to another queue"),
    (
        "callcenter_calls_closed",
        CLOSED,
        "Callers who heard the no-agents message because nobody serving the queue was logged in",
    ),
    ("callcenter_agent_missed_offers", MISSED_OFFERS, "Offers an agent did not answer in time"),
)


class LiveCollector(Collector):
    def __init__(self, ctx: AppContext) -> None:
        self.reader = LiveReader(ctx)

    def describe(self) -> list[Metric]:
        return []  # no describe at registration: collect() reads Redis, which may be down then

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "callcenter_metrics_up", "1 when the live figures could be read from Redis"
        )
        try:
            snapshot = self.reader.snapshot()
            totals = self.reader.totals()
            histograms = {m: self.reader.histogram(m) for m in BUCKETS}
        except redis.RedisError:
            log.exception("/metrics: live figures unavailable")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from self._families(snapshot, totals, histograms)

    def _families(
        self,
        snapshot: dict[str, Any],
        totals: dict[str, dict[str, dict[str, float]]],
        histograms: dict[str, dict[str, dict[str, float]]],
    ) -> Iterator[Metric]:
        yield from _queue_counters(totals)
        yield _refused(totals)
        yield from _waiting(snapshot)
        yield _agents(snapshot)
        yield from self._rates(snapshot)
        for metric, help_text in (
            ("wait", "Time in queue of answered calls"),
            ("handle", "Handle time: talk + hold + wrap-up"),
        ):
            yield self._histogram(metric, help_text, histograms[metric])

    def _rates(self, snapshot: dict[str, Any]) -> Iterator[Metric]:
        specs = (
            ("callcenter_answer_rate", "answer_rate", "Answer rate 0-1 (see docs/metrics.md)"),
            ("callcenter_service_level", "service_level", "Answered within N s / answer base"),
            ("callcenter_asa_seconds", "asa_seconds", "Average speed of answer"),
            ("callcenter_aht_seconds", "aht_seconds", "Average handle time"),
        )
        scopes = [("all", snapshot["center"]), *snapshot["queues"].items()]
        for name, key, help_text in specs:
            family = GaugeMetricFamily(name, help_text, labels=["queue", "window"])
            for queue, scope in scopes:
                for window in WINDOWS:
                    value = scope["windows"][window][key]
                    if value is not None:  # undefined (no calls) is left out, not shown as 0 or 1
                        family.add_metric([queue, window], value)
            yield family
        occupancy = GaugeMetricFamily(
            "callcenter_occupancy", "Busy time / (busy + available time)", labels=["window"]
        )
        for window in WINDOWS:
            value = snapshot["center"]["windows"][window]["occupancy"]
            if value is not None:
                occupancy.add_metric([window], value)
        yield occupancy
        alerts = GaugeMetricFamily(
            "callcenter_alerts", "Active wallboard alerts", labels=["kind", "queue"]
        )
        for alert in snapshot["alerts"]:
            alerts.add_metric([alert["kind"], alert["queue"]], 1)
        yield alerts

    def _histogram(
        self, metric: str, help_text: str, values: dict[str, dict[str, float]]
    ) -> Metric:
        family = HistogramMetricFamily(f"callcenter_{metric}_seconds", help_text, labels=["queue"])
        for queue, parts in sorted(values.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound in BUCKETS[metric]:
                cumulative += parts.get(str(bound), 0.0)
                buckets.append((str(bound), cumulative))
            cumulative += parts.get("+Inf", 0.0)
            buckets.append(("+Inf", cumulative))
            family.add_metric([queue], buckets, parts.get("sum", 0.0))
        return family


def _queue_counters(totals: dict[str, dict[str, dict[str, float]]]) -> Iterator[Metric]:
    for name, counter, help_text in COUNTERS:
        family = CounterMetricFamily(name, help_text, labels=["queue", "shift"])
        for dim, by_shift in sorted(totals.items()):
            if not dim.startswith("q:"):
                continue
            for shift, counters in sorted(by_shift.items()):
                family.add_metric([dim[2:], shift], counters.get(counter, 0.0))
        yield family


def _refused(totals: dict[str, dict[str, dict[str, float]]]) -> Metric:
    refused = CounterMetricFamily(
        "callcenter_calls_refused",
        "Calls turned away at the SIP edge before any queue (see docs/metrics.md)",
        labels=["reason"],
    )
    by_reason: dict[str, float] = {}
    for counters in totals.get(EDGE_DIM, {}).values():
        for counter, value in counters.items():
            if counter.startswith(REFUSED_PREFIX):
                reason = counter[len(REFUSED_PREFIX) :]
                by_reason[reason] = by_reason.get(reason, 0.0) + value
    for reason, value in sorted(by_reason.items()):
        refused.add_metric([reason], value)
    return refused


def _waiting(snapshot: dict[str, Any]) -> Iterator[Metric]:
    waiting = GaugeMetricFamily(
        "callcenter_calls_waiting", "Calls waiting in the queue now", labels=["queue"]
    )
    longest = GaugeMetricFamily(
        "callcenter_longest_wait_seconds",
        "How long the longest-waiting call in the queue has waited (0 when none)",
        labels=["queue"],
    )
    for queue, entry in snapshot["queues"].items():
        waiting.add_metric([queue], entry["waiting"])
        longest.add_metric([queue], entry["longest_wait_seconds"] or 0.0)
    yield waiting
    yield longest


def _agents(snapshot: dict[str, Any]) -> Metric:
    agents = GaugeMetricFamily(
        "callcenter_agents",
        "Logged-in agents by state; an agent counts in every queue it serves; queue=all once",
        labels=["state", "queue"],
    )
    for state, count in sorted(snapshot["center"]["agents"].items()):
        agents.add_metric([state, "all"], count)
    for queue, entry in snapshot["queues"].items():
        for state, count in sorted(entry["agents"].items()):
            agents.add_metric([state, queue], count)
    return agents


LIVE_COLLECTOR: Service[bool] = Service("live metrics collector installed")


def install_collector(ctx: AppContext) -> None:
    """Register the live collector on the app's registry once per context."""
    if ctx.services.get(LIVE_COLLECTOR):
        return
    registry = ctx.services.get_or_make(REGISTRY, CollectorRegistry)
    registry.register(LiveCollector(ctx))
    ctx.services.set(LIVE_COLLECTOR, True)
