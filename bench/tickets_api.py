"""Ticket API and SLA timer benchmark.

Part 1 — through the API: a real uvicorn on loopback, an open-loop load at a fixed rate
(default 100 requests/s) of ticket creation and of transitions, next to a baseline of
``GET /healthz`` (SQL + Redis round trip) and ``GET /api/v1/me`` (auth only) in the same run.
Latency is measured from the *scheduled* send time, so a stalled server is not hidden.
Goal: p99 < 50 ms at 100 requests/s.

Part 2 — timers: N open tickets (default 10,000) inserted in bulk, then the cost of
scheduling their SLA timers as RQ scheduled jobs (one per ticket at a time) and of the
escalation scan (nothing due; 10% due), next to a plain ``SELECT count(*)`` of the same rows.

Usage (Redis DB and PostgreSQL URL default to the tickets test ones):
  .venv/bin/python bench/tickets_api.py --db sqlite --seconds 5 --tickets 10000
  .venv/bin/python bench/tickets_api.py --db postgres --seconds 5 --tickets 10000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter import runtime  # noqa: E402
from callcenter.context import build_context  # noqa: E402
from callcenter.db import make_engine  # noqa: E402
from callcenter.demo import seed_demo  # noqa: E402
from callcenter.migrate import upgrade  # noqa: E402
from config.settings import Settings  # noqa: E402
from ticketing import jobs  # noqa: E402
from ticketing.models import Ticket  # noqa: E402

REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
POSTGRES_URL = os.environ.get(
    "CALLCENTER_TEST_POSTGRES_URL",
    "postgresql://callcenter:callcenter@127.0.0.1:5432/callcenter_test_tickets",
)

TICKET = {
    "category": "public_water",
    "description": "bench",
    "track": "general",
    "reporter": "张伟",
    "unit": "3-2-1201",
    "what": "楼道漏水",
    "when": "刚才",
    "contact": "13800138000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(db: str, state_dir: Path) -> Settings:
    url = f"sqlite:///{state_dir / 'callcenter.db'}" if db == "sqlite" else POSTGRES_URL
    if db == "postgres":
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    settings = Settings(
        environment="test", state_dir=state_dir, database_url=url, redis_url=REDIS_URL
    )
    ctx = build_context(settings)
    ctx.redis.flushdb()
    seed_demo(ctx)
    ctx.close()
    return settings


def start_api(settings: Settings, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """``callcenter api`` as production runs it (uvloop, httptools, access log, ``workers``
    processes), on loopback; its output goes to ``api.log`` in the state directory."""
    env = dict(
        os.environ,
        CALLCENTER_ENVIRONMENT="test",
        CALLCENTER_STATE_DIR=str(settings.state_dir),
        CALLCENTER_DATABASE_URL=settings.database_url,
        CALLCENTER_REDIS_URL=settings.redis_url,
        CALLCENTER_HTTP__HOST="127.0.0.1",
        CALLCENTER_HTTP__PORT=str(port),
        CALLCENTER_HTTP__WORKERS=str(workers),
    )
    log = (settings.state_dir / "api.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", "api"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 503):
                # every worker process answers before the load starts
                time.sleep(1.0 if workers > 1 else 0)
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"callcenter api did not start; see {settings.state_dir / 'api.log'}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def open_loop(
    client: httpx.AsyncClient, rate: float, seconds: float, make: Any
) -> dict[str, Any]:
    """Send ``make(i)`` (method, url, json) at ``rate`` per second; latency from schedule."""
    count = int(rate * seconds)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    start = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        method, url, body = make(i)
        try:
            response = await client.request(method, url, json=body)
            ok = response.status_code < 300
            key = str(response.status_code)
        except httpx.HTTPError as exc:
            ok, key = False, type(exc).__name__
        latencies.append((time.perf_counter() - scheduled) * 1000)
        if not ok:
            errors[key] = errors.get(key, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - began
    return {
        "requests": count,
        "achieved_rps": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        "errors": errors,
    }


async def closed_loop(client: httpx.AsyncClient, workers: int, total: int, make: Any) -> float:
    """Requests per second with ``workers`` requests always in flight (capacity)."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            method, url, body = make(i)
            await client.request(method, url, json=body)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return total / (time.perf_counter() - began)


async def warm_up(c: httpx.AsyncClient, e: httpx.AsyncClient) -> None:
    """A few requests of each kind first (every process compiles its statements once)."""
    for _ in range(20):
        await c.get("/healthz")
        await c.get("/api/v1/me")
        created = (await c.post("/api/v1/tickets", json=TICKET)).json()
        await e.post(
            f"/api/v1/tickets/{created['id']}/transitions", json={"to": "assigned", "assignee": "x"}
        )
        await c.get(f"/api/v1/tickets/{created['id']}")


async def api_phase(port: int, rate: float, seconds: float) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(
        base_url=base, timeout=10, limits=httpx.Limits(max_connections=64)
    ) as anon:
        token = (
            await anon.post("/api/v1/auth/token", json={"username": "1001", "password": "pw1001"})
        ).json()
        eng = (
            await anon.post("/api/v1/auth/token", json={"username": "eng1", "password": "pweng1"})
        ).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    eng_headers = {"Authorization": f"Bearer {eng['access_token']}"}
    results: dict[str, Any] = {}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with (
        httpx.AsyncClient(base_url=base, timeout=10, headers=headers, limits=limits) as c,
        httpx.AsyncClient(base_url=base, timeout=10, headers=eng_headers, limits=limits) as e,
    ):
        await warm_up(c, e)
        results["baseline GET /healthz"] = await open_loop(
            c, rate, seconds, lambda i: ("GET", "/healthz", None)
        )
        results["baseline GET /api/v1/me"] = await open_loop(
            c, rate, seconds, lambda i: ("GET", "/api/v1/me", None)
        )
        results["POST /api/v1/tickets"] = await open_loop(
            c, rate, seconds, lambda i: ("POST", "/api/v1/tickets", TICKET)
        )
        ids = [
            t["id"]
            for t in (
                await c.get("/api/v1/tickets", params={"status": "dispatched", "limit": 500})
            ).json()["items"]
        ]
        ids.sort()
        n = min(len(ids), int(rate * seconds))
        results["POST transitions (assigned)"] = await open_loop(
            e,
            rate,
            n / rate,
            lambda i: (
                "POST",
                f"/api/v1/tickets/{ids[i]}/transitions",
                {"to": "assigned", "assignee": "王师傅"},
            ),
        )
        results["GET /api/v1/tickets/{id}"] = await open_loop(
            c, rate, seconds, lambda i: ("GET", f"/api/v1/tickets/{ids[i % len(ids)]}", None)
        )
        capacity_total = int(rate * seconds)
        results["capacity: creations/s (8 in flight)"] = round(
            await closed_loop(c, 8, capacity_total, lambda i: ("POST", "/api/v1/tickets", TICKET)),
            1,
        )
        results["capacity: /healthz/s (8 in flight)"] = round(
            await closed_loop(c, 8, capacity_total, lambda i: ("GET", "/healthz", None)), 1
        )
    return results


def timers_phase(settings: Settings, count: int) -> dict[str, Any]:
    ctx = build_context(settings)
    runtime.set_context(ctx)
    try:
        with ctx.engine.begin() as conn:
            # only the bulk-inserted tickets below: drop what the API phase created
            for table in (
                "webhook_deliveries",
                "callback_attempts",
                "callbacks",
                "work_orders",
                "ticket_events",
                "tickets",
            ):
                conn.execute(text(f"DELETE FROM {table}"))
            dept = conn.scalar(text("SELECT id FROM departments WHERE code = 'engineering'"))
        ctx.redis.flushdb()
        now = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        rows = []
        for i in range(count):
            rows.append(
                {
                    "number": f"BENCH-{i:06d}",
                    "category": "public_water",
                    "department_id": dept,
                    "track": "general",
                    "status": "dispatched",
                    "reporter": "x",
                    "unit": "1-1-101",
                    "what": "bench",
                    "when_text": "now",
                    "contact": "13800138000",
                    "description": "",
                    "channel": "api",
                    "sla_class": "30m",
                    # a tenth are due within the next 30 minutes of "now", the rest later
                    "due_at": now + timedelta(minutes=30 if i % 10 == 0 else 600 + i % 3000),
                    "created_by": "bench",
                    "created_at": now,
                    "updated_at": now,
                    "escalation_level": 0,
                    "overdue": False,
                }
            )
        began = time.perf_counter()
        with ctx.engine.begin() as conn:
            conn.execute(insert(Ticket), rows)
        insert_s = time.perf_counter() - began
        with ctx.sessions() as session:
            ids = list(session.execute(select(Ticket.id, Ticket.due_at)).all())
        began = time.perf_counter()
        high = jobs.ticket_queues(ctx)["high"]
        for start in range(0, len(ids), 200):
            pipe = high.connection.pipeline()
            for ticket_id, due in ids[start : start + 200]:
                assert due is not None
                jobs.schedule_sla_timers(ctx, ticket_id, due, "general", pipeline=pipe)
            pipe.execute()
        schedule_s = time.perf_counter() - began
        began = time.perf_counter()
        with ctx.sessions() as session:
            session.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.status == "dispatched")
            )
        count_ms = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        idle = jobs.scan_sla(now=now)
        idle_ms = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        busy = jobs.scan_sla(now=now + timedelta(minutes=31))
        busy_ms = (time.perf_counter() - began) * 1000
        began = time.perf_counter()
        again = jobs.scan_sla(now=now + timedelta(minutes=32))
        again_ms = (time.perf_counter() - began) * 1000
        memory = ctx.redis.info("memory").get("used_memory_human")
        return {
            "open tickets": count,
            "bulk insert (s)": round(insert_s, 2),
            "schedule the first RQ timer per ticket (s)": round(schedule_s, 2),
            "per ticket (ms)": round(schedule_s * 1000 / count, 3),
            "redis used_memory after": memory,
            "baseline SELECT count(*) (ms)": round(count_ms, 2),
            "scan, nothing due (ms)": round(idle_ms, 1),
            "scan result": idle,
            "scan, 10% overdue (ms)": round(busy_ms, 1),
            "scan result (10%)": busy,
            "scan again, all recorded (ms)": round(again_ms, 1),
            "scan result (again)": again,
        }
    finally:
        runtime.set_context(None)
        ctx.redis.flushdb()
        ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    summary: dict[str, dict[str, Any]] = {}
    for db in ["sqlite", "postgres"] if args.db == "both" else [args.db]:
        state_dir = Path(tempfile.mkdtemp(prefix=f"bench-tickets-{db}-"))
        try:
            settings = prepare(db, state_dir)
            port = free_port()
            api = start_api(settings, port, args.workers)
            try:
                results = asyncio.run(api_phase(port, args.rate, args.seconds))
            finally:
                api.terminate()
                api.wait(10)
            print(
                f"\n=== {db}: API at {args.rate:g} requests/s for {args.seconds:g} s per phase, "
                f"{args.workers} uvicorn worker(s), load average {os.getloadavg()[0]:.1f}"
            )
            for name, value in results.items():
                print(f"  {name:40s} {value}")
            summary[db] = results
            print(f"=== {db}: SLA timers")
            for name, value in timers_phase(settings, args.tickets).items():
                print(f"  {name:40s} {value}")
        finally:
            shutil.rmtree(state_dir, ignore_errors=True)
    print_summary(summary, args.rate, args.workers)


def print_summary(summary: dict[str, dict[str, Any]], rate: float, workers: int) -> None:
    """One table: achieved rate, p50 / p99 per phase and database; the goal is p99 < 50 ms."""
    dbs = list(summary)
    print(
        f"\n=== summary: {rate:g} requests/s offered (open loop), {workers} uvicorn worker(s); "
        "achieved/s, p50 / p99 ms; goal p99 < 50 ms"
    )
    print("| phase | " + " | ".join(dbs) + " |")
    print("|---|" + "---|" * len(dbs))
    for phase in summary[dbs[0]]:
        cells = []
        for db in dbs:
            value = summary[db][phase]
            if isinstance(value, dict):
                mark = "" if value["p99_ms"] < 50 else " ✗"
                errors = f", errors {value['errors']}" if value["errors"] else ""
                cells.append(
                    f"{value['achieved_rps']:g}/s, {value['p50_ms']:g} / {value['p99_ms']:g}"
                    f"{mark}{errors}"
                )
            else:
                cells.append(f"{value:g}/s")
        print(f"| {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
