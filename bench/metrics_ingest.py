"""Events per second into the live metric engine on one core (goal ≥ 5,000/s).

Baseline in the same run: raw XADD (pipelined) and raw XREADGROUP + XACK of the same entries
with no processing, so the figure shows what the metric logic costs on top of Redis itself.
The engine figure is the consumer as it runs in production: XREADGROUP in batches, the
definitions applied, one MULTI/EXEC per batch, XACK.

    .venv/bin/python bench/metrics_ingest.py --days 2
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.metrics_common import arguments, context
from metrics.consumer import MetricsConsumer
from metrics.simulation import SimAgent, local_midnight, simulate_day


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--days", type=int, default=2, help="simulated days of events")
    parser.add_argument("--volume", type=float, default=4.0, help="call volume multiplier")
    args = parser.parse_args()
    ctx = context(args.redis)
    redis: Any = ctx.redis
    agents = [
        SimAgent(str(i), shift, ("general", "repair", "complaint", "fees"))
        for i, shift in enumerate(["day"] * 14 + ["mid"] * 10 + ["night"] * 6, start=1)
    ]
    first = local_midnight(datetime(2026, 11, 20, 12, tzinfo=UTC), ctx.settings.timezone)
    emitted = []
    for day in range(args.days):
        emitted += simulate_day(
            day=first + timedelta(days=day),
            agents=agents,
            queues=ctx.config.queues,
            shifts=ctx.config.shifts,
            seed=day + 1,
            volume=args.volume,
        )
    total = len(emitted)
    print(f"events: {total} ({args.days} simulated days, volume x{args.volume})")

    def publish() -> float:
        redis.flushdb()
        started = time.perf_counter()
        pipe = redis.pipeline(transaction=False)
        for n, (stream, event) in enumerate(emitted, start=1):
            key = ctx.keys.events if stream == "events" else ctx.keys.agent_events
            pipe.xadd(key, event.to_fields())
            if n % 1000 == 0:
                pipe.execute()
        pipe.execute()
        return time.perf_counter() - started

    xadd_seconds = publish()
    print(f"baseline XADD (pipelined):            {total / xadd_seconds:10.0f} events/s")

    for stream in (ctx.keys.events, ctx.keys.agent_events):
        redis.xgroup_create(stream, "raw", id="0")
    started = time.perf_counter()
    read = 0
    while True:
        response = redis.xreadgroup(
            "raw", "raw", {ctx.keys.events: ">", ctx.keys.agent_events: ">"}, count=500
        )
        if not response:
            break
        for stream, entries in response:
            redis.xack(stream, "raw", *[i for i, _ in entries])
            read += len(entries)
    raw_seconds = time.perf_counter() - started
    print(f"baseline XREADGROUP+XACK (no logic):  {read / raw_seconds:10.0f} events/s")

    publish()
    consumer = MetricsConsumer(ctx, batch=500)
    consumer.ensure_groups()
    consumer.refresh_teams(force=True)
    cpu_started = time.process_time()
    started = time.perf_counter()
    applied = consumer.drain()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(
        f"metric engine (consumer, one process):{applied / seconds:10.0f} events/s "
        f"(wall {seconds:.2f} s, this process's CPU {cpu:.2f} s = "
        f"{applied / cpu:.0f} events per CPU-second)"
    )
    print("goal: >= 5000 events/s;", "met" if applied / seconds >= 5000 else "NOT met")
    redis.flushdb()
    ctx.close()


if __name__ == "__main__":
    main()
