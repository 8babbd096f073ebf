"""Wallboard update latency with 50 SSE clients (goal p99 < 1 s).

A real API server runs in its own process (uvicorn, with its metrics consumer and wallboard
hub); 50 clients hold ``/api/v1/wallboard/stream``; a publisher XADDs a new queued call every
``--interval`` seconds. Latency = from the XADD to the moment a client parses a snapshot that
shows the call (the center's waiting count reaches it).

Baseline in the same run: Redis PUBLISH → 50 asyncio pub/sub subscribers, the transport floor.

    .venv/bin/python -m bench.metrics_wallboard --events 30
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import redis.asyncio as aioredis

from bench._measure import free_port
from bench.metrics_common import arguments, context, summary
from callcenter.streams import CallEvent, EventType

CLIENTS = 50


async def pubsub_baseline(redis_url: str, events: int) -> list[float]:
    latencies: list[float] = []
    sent: dict[int, float] = {}
    clients = [aioredis.Redis.from_url(redis_url, decode_responses=True) for _ in range(CLIENTS)]
    subs = [c.pubsub() for c in clients]
    for sub in subs:
        await sub.subscribe("bench:baseline")

    async def listen(sub: Any) -> None:
        seen = 0
        while seen < events:
            message = await sub.get_message(ignore_subscribe_messages=True, timeout=5)
            if message:
                seen += 1
                latencies.append(time.perf_counter() - sent[int(message["data"])])

    tasks = [asyncio.create_task(listen(s)) for s in subs]
    publisher = aioredis.Redis.from_url(redis_url, decode_responses=True)
    for k in range(events):
        sent[k] = time.perf_counter()
        await publisher.publish("bench:baseline", str(k))
        await asyncio.sleep(0.02)
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    for sub, client in zip(subs, clients, strict=True):
        await sub.aclose()
        await client.aclose()
    await publisher.aclose()
    return latencies


async def sse_clients(
    base: str, token: str, redis_url: str, keys: Any, events: int, interval: float
) -> tuple[list[float], int]:
    sent: dict[int, float] = {}
    latencies: list[float] = []
    ready = asyncio.Event()
    connected = 0

    async def client() -> None:
        nonlocal connected
        seen = 0
        async with (
            httpx.AsyncClient(timeout=30) as http,
            http.stream(
                "GET", f"{base}/api/v1/wallboard/stream", params={"token": token}
            ) as response,
        ):
            connected += 1
            if connected == CLIENTS:
                ready.set()
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                waiting = json.loads(line[6:])["center"]["waiting"]
                now = time.perf_counter()
                for k in range(seen + 1, waiting + 1):
                    if k in sent:
                        latencies.append(now - sent[k])
                seen = max(seen, waiting)
                if seen >= events:
                    return

    tasks = [asyncio.create_task(client()) for _ in range(CLIENTS)]
    await asyncio.wait_for(ready.wait(), timeout=60)
    publisher: Any = aioredis.Redis.from_url(redis_url, decode_responses=True)
    for k in range(1, events + 1):
        event = CallEvent(
            EventType.call_queued,
            f"wb-{k}",
            at=datetime.now(UTC).isoformat(),
            data={"queue": "general"},
        )
        sent[k] = time.perf_counter()
        await publisher.xadd(keys.events, event.to_fields())
        await asyncio.sleep(interval)
    done, pending = await asyncio.wait(tasks, timeout=30)
    for task in pending:
        task.cancel()
    await publisher.aclose()
    return latencies, len(done)


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.3)
    args = parser.parse_args()
    ctx = context(args.redis, seed=True)
    port = free_port()
    env = {
        **os.environ,
        "CALLCENTER_ENVIRONMENT": "development",  # the test environment runs no consumer
        "CALLCENTER_STATE_DIR": str(ctx.settings.state_dir),
        "CALLCENTER_REDIS_URL": args.redis,
        "CALLCENTER_HTTP__PORT": str(port),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "callcenter.app:app_factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the API server did not start")
            time.sleep(0.2)
        token = httpx.post(
            f"{base}/api/v1/auth/token", json={"username": "lead1", "password": "pwlead1"}
        ).json()
        baseline = asyncio.run(pubsub_baseline(args.redis, args.events))
        print(f"baseline Redis pub/sub → {CLIENTS} subscribers: {summary(baseline)}")
        latencies, finished = asyncio.run(
            sse_clients(
                base, token["access_token"], args.redis, ctx.keys, args.events, args.interval
            )
        )
        print(
            f"wallboard SSE, {CLIENTS} clients ({finished} saw every event): {summary(latencies)}"
        )
        p99 = sorted(latencies)[int(0.99 * (len(latencies) - 1))] if latencies else float("inf")
        print("goal: p99 < 1 s;", "met" if p99 < 1 else "NOT met")
    finally:
        server.terminate()
        server.wait(timeout=15)
        ctx.redis.flushdb()
        ctx.close()


if __name__ == "__main__":
    main()
