"""``/metrics`` scrape time with 50 queues × 3 shifts (the collector reads Redis at scrape).

Baseline in the same run: prometheus_client's own in-memory Counter/Gauge/Histogram objects
holding the same series, rendered by the same ``generate_latest``.

    .venv/bin/python -m bench.metrics_scrape --scrapes 50
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bench.metrics_common import arguments, context, summary
from callcenter.app import create_app
from callcenter.streams import AgentEventType, CallEvent, EventType
from config.settings import DEFAULT_CONFIG_DIR
from metrics.consumer import MetricsConsumer
from metrics.http import CONSUMER_WANTED
from metrics.live_config import metric_config

EXTRA_QUEUES = 45  # + the 5 default queues = 50


def config_with_50_queues() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="metrics-bench-config-"))
    for item in DEFAULT_CONFIG_DIR.iterdir():
        if item.suffix == ".toml":
            shutil.copy(item, directory / item.name)
    with (directory / "queues.toml").open("a", encoding="utf-8") as handle:
        for n in range(EXTRA_QUEUES):
            handle.write(f'\n[queues.q{n:02d}]\nname = {{ zh-CN = "队列{n}", en = "Queue {n}" }}\n')
    return directory


def populate(ctx: Any, queues: list[str]) -> int:
    """Calls in each queue in each shift (day 10:00, mid 20:30, night 23:00 local, yesterday),
    some in the last minutes, a few still waiting, 200 agents in various states."""
    redis: Any = ctx.redis
    now = datetime.now(UTC)
    local_now = now.astimezone(metric_config(ctx).tz)
    yesterday = local_now - timedelta(days=1)
    moments = [yesterday.replace(hour=h, minute=m) for h, m in ((10, 0), (20, 30), (23, 0))]
    moments.append(local_now - timedelta(minutes=5))
    pipe = redis.pipeline(transaction=False)
    n = 0

    def call(kind: str, call_id: str, at: datetime, **data: Any) -> None:
        event = CallEvent(kind, call_id, at=at.astimezone(UTC).isoformat(), data=data)
        pipe.xadd(ctx.keys.events, event.to_fields())

    for queue in queues:
        for moment in moments:
            for k in range(4):
                n += 1
                call_id = f"b{n}"
                start = moment + timedelta(seconds=k * 7)
                call(EventType.call_queued, call_id, start, queue=queue)
                if k == 3:
                    call(EventType.abandoned, call_id, start + timedelta(seconds=40))
                    continue
                call(
                    EventType.agent_answered,
                    call_id,
                    start + timedelta(seconds=5 + k * 10),
                    agent_id=str(k + 1),
                )
                call(EventType.call_ended, call_id, start + timedelta(seconds=200))
                call(
                    EventType.wrap_up_ended,
                    call_id,
                    start + timedelta(seconds=230),
                    agent_id=str(k + 1),
                )
        n += 1
        call(EventType.call_queued, f"b{n}", now - timedelta(seconds=30), queue=queue)
    states = ["ready", "on_call", "wrap_up", "not_ready", "reserved", "on_hold"]
    for agent in range(1, 201):
        event = CallEvent(
            AgentEventType.state_changed,
            str(agent),
            at=(now - timedelta(minutes=3)).isoformat(),
            data={
                "agent_id": str(agent),
                "from": "logged_out",
                "to": states[agent % 6],
                "queues": [queues[agent % len(queues)], queues[(agent * 7) % len(queues)]],
            },
        )
        pipe.xadd(ctx.keys.agent_events, event.to_fields())
    pipe.execute()
    return n


def baseline_registry(queues: list[str]) -> CollectorRegistry:
    registry = CollectorRegistry()
    shifts = ["day", "mid", "night"]
    for name in (
        "offered",
        "answered",
        "abandoned",
        "short_abandoned",
        "callback_requested",
        "overflowed",
    ):
        counter = Counter(f"baseline_calls_{name}", "x", ["queue", "shift"], registry=registry)
        for queue in queues:
            for shift in shifts:
                counter.labels(queue, shift).inc(3)
    waiting = Gauge("baseline_calls_waiting", "x", ["queue"], registry=registry)
    agents = Gauge("baseline_agents", "x", ["state", "queue"], registry=registry)
    rate = Gauge("baseline_answer_rate", "x", ["queue", "window"], registry=registry)
    histogram = Histogram("baseline_wait_seconds", "x", ["queue"], registry=registry)
    for queue in queues:
        waiting.labels(queue).set(1)
        for state in ("ready", "on_call", "wrap_up", "not_ready"):
            agents.labels(state, queue).set(2)
        for window in ("today", "shift", "15m", "60m"):
            rate.labels(queue, window).set(0.9)
        histogram.labels(queue).observe(12)
    return registry


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--scrapes", type=int, default=50)
    args = parser.parse_args()
    ctx = context(args.redis, config_dir=config_with_50_queues())
    queues = list(ctx.config.queues.queues)
    print(f"queues: {len(queues)}, shifts: {len(ctx.config.shifts.shifts)}")
    calls = populate(ctx, queues)
    consumer = MetricsConsumer(ctx)
    consumer.drain()
    print(f"calls: {calls}, agents: 200")
    ctx.services.set(CONSUMER_WANTED, False)
    registry = baseline_registry(queues)
    base_times = []
    for _ in range(args.scrapes):
        started = time.perf_counter()
        body = generate_latest(registry)
        base_times.append(time.perf_counter() - started)
    print(f"baseline (in-memory prometheus_client, {len(body)} bytes): {summary(base_times)}")
    with TestClient(create_app(ctx)) as client:
        client.get("/metrics")  # warm-up (team lookup, imports)
        times = []
        for _ in range(args.scrapes):
            started = time.perf_counter()
            response = client.get("/metrics")
            times.append(time.perf_counter() - started)
        series = sum(1 for line in response.text.splitlines() if line and line[0] != "#")
        print(
            f"/metrics (live collector over Redis, {len(response.content)} bytes, "
            f"{series} samples): {summary(times)}"
        )
    ctx.redis.flushdb()
    ctx.close()


if __name__ == "__main__":
    main()
