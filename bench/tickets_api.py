"""Ticket API and SLA timer benchmark.

Part 1 — through the API: a real uvicorn on loopback, an open-loop load at a fixed rate
(default 100 requests/s) of ticket creation and of transitions, next to baselines of
``GET /healthz`` (the HTTP stack alone: liveness touches no store) and ``GET /api/v1/me``
(auth only) in the same run.
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
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvloop
from sqlalchemy import func, insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _measure import free_port, gc_paused, percentile  # noqa: E402
from _serve import start_api  # noqa: E402

from callcenter import runtime  # noqa: E402
from callcenter.context import build_context  # noqa: E402
from callcenter.db import make_engine  # noqa: E402
from callcenter.demo import seed_demo  # noqa: E402
from callcenter.migrate import upgrade  # noqa: E402
from config.settings import Settings  # noqa: E402
from ticketing import jobs, scheduling  # noqa: E402
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


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children now running (uvicorn workers)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


KEEP_ALIVE_SECONDS = 4.0


class Reply:
    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class LoadClient:
    """A small HTTP/1.1 keep-alive client for generating load on loopback.

    httpx spends about 5 ms of CPU per request on this kind of machine, as much as the server
    under test, and the client shares the machine: its own queueing would be counted as
    server latency. This one writes prebuilt header bytes and reads the status line, the
    headers and ``Content-Length`` bytes of body (every answer here has one). Connections
    are kept alive and reused, up to ``max_connections`` (then requests wait for one).
    """

    def __init__(self, port: int, headers: dict[str, str], max_connections: int = 64) -> None:
        self.port = port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.open = 0
        self.slots = asyncio.Semaphore(max_connections)

    async def request(self, method: str, url: str, json: Any = None) -> Reply:
        body = b"" if json is None else _json_bytes(json)
        head = (
            f"{method} {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n{self.extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with self.slots:
            for _attempt in range(2):
                reader, writer, reused = await self._connection()
                try:
                    writer.write(head + body)
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (OSError, asyncio.IncompleteReadError) as exc:
                    writer.close()
                    self.open -= 1
                    nothing_read = (
                        not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
                    )
                    if reused and nothing_read:
                        continue  # the server had closed the idle connection: never processed
                    raise
                status_line, _, header_block = raw.decode("latin-1").partition("\r\n")
                length = 0
                for line in header_block.split("\r\n"):
                    name, _, value = line.partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                reply = Reply(int(status_line.split(" ", 2)[1]), await reader.readexactly(length))
                self.idle.append((reader, writer, time.monotonic()))
                return reply
            raise ConnectionError("the server closed two connections in a row")

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while self.idle:
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < KEEP_ALIVE_SECONDS:
                return reader, writer, True
            writer.close()  # the server closes idle connections after 5 s (uvicorn's default)
            self.open -= 1
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.open += 1
        return reader, writer, False

    async def get(self, url: str, params: dict[str, Any] | None = None) -> Reply:
        query = ("?" + "&".join(f"{k}={v}" for k, v in params.items())) if params else ""
        return await self.request("GET", url + query)

    async def post(self, url: str, json: Any = None) -> Reply:
        return await self.request("POST", url, json=json)

    async def close(self) -> None:
        for _reader, writer, _since in self.idle:
            writer.close()
        self.idle.clear()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


async def open_loop(
    client: LoadClient, rate: float, seconds: float, make: Any, server_pid: int = 0
) -> dict[str, Any]:
    """Send ``make(i)`` (method, url, json) at ``rate`` per second; latency from schedule.

    Also reported: how late the client itself sent (``send_lag``: this process starved of
    CPU shows here, not as server time) and the CPU each side spent per request."""
    count = int(rate * seconds)
    latencies: list[float] = []
    lags: list[float] = []
    errors: dict[str, int] = {}
    start = 0.0

    async def one(i: int) -> None:
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        method, url, body = make(i)
        lags.append((time.perf_counter() - scheduled) * 1000)
        try:
            response = await client.request(method, url, json=body)
            ok = response.status_code < 300
            key = str(response.status_code)
        except (OSError, asyncio.IncompleteReadError) as exc:
            ok, key = False, type(exc).__name__
        latencies.append((time.perf_counter() - scheduled) * 1000)
        if not ok:
            errors[key] = errors.get(key, 0) + 1

    with gc_paused():  # first: its collection takes about 0.1 s
        server_cpu = process_cpu_seconds(server_pid) if server_pid else 0.0
        client_cpu = time.process_time()
        began = time.perf_counter()
        start = began + 0.05
        await asyncio.gather(*(one(i) for i in range(count)))
        elapsed = time.perf_counter() - began
        client_cpu = time.process_time() - client_cpu
        server_cpu = process_cpu_seconds(server_pid) - server_cpu if server_pid else 0.0
    return {
        "requests": count,
        "achieved_rps": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies), 2),
        "send_lag_p99_ms": round(percentile(lags, 0.99), 2),
        "server_cpu_ms": round(server_cpu * 1000 / count, 2),
        "client_cpu_ms": round(client_cpu * 1000 / count, 2),
        "errors": errors,
    }


async def closed_loop(client: LoadClient, workers: int, total: int, make: Any) -> float:
    """Requests per second with ``workers`` requests always in flight (capacity)."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            method, url, body = make(i)
            await client.request(method, url, json=body)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return total / (time.perf_counter() - began)


async def warm_up(c: LoadClient, e: LoadClient) -> None:
    """A few requests of each kind first (every process compiles its statements once)."""
    for _ in range(20):
        await c.get("/healthz")
        await c.get("/api/v1/me")
        created = (await c.post("/api/v1/tickets", json=TICKET)).json()
        await e.post(
            f"/api/v1/tickets/{created['id']}/transitions", json={"to": "assigned", "assignee": "x"}
        )
        await c.get(f"/api/v1/tickets/{created['id']}")


async def api_phase(port: int, rate: float, seconds: float, server_pid: int = 0) -> dict[str, Any]:
    anon = LoadClient(port, {})
    token = await anon.post("/api/v1/auth/token", {"username": "1001", "password": "pw1001"})
    eng = await anon.post("/api/v1/auth/token", {"username": "eng1", "password": "pweng1"})
    await anon.close()
    c = LoadClient(port, {"Authorization": f"Bearer {token.json()['access_token']}"})
    e = LoadClient(port, {"Authorization": f"Bearer {eng.json()['access_token']}"})
    results: dict[str, Any] = {}
    try:
        await warm_up(c, e)
        results["baseline GET /healthz"] = await open_loop(
            c, rate, seconds, lambda i: ("GET", "/healthz", None), server_pid
        )
        results["baseline GET /api/v1/me"] = await open_loop(
            c, rate, seconds, lambda i: ("GET", "/api/v1/me", None), server_pid
        )
        results["POST /api/v1/tickets"] = await open_loop(
            c, rate, seconds, lambda i: ("POST", "/api/v1/tickets", TICKET), server_pid
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
            server_pid,
        )
        results["GET /api/v1/tickets/{id}"] = await open_loop(
            c,
            rate,
            seconds,
            lambda i: ("GET", f"/api/v1/tickets/{ids[i % len(ids)]}", None),
            server_pid,
        )
        capacity_total = int(rate * seconds)
        results["capacity: creations/s (8 in flight)"] = round(
            await closed_loop(c, 8, capacity_total, lambda i: ("POST", "/api/v1/tickets", TICKET)),
            1,
        )
        results["capacity: /healthz/s (8 in flight)"] = round(
            await closed_loop(c, 8, capacity_total, lambda i: ("GET", "/healthz", None)), 1
        )
    finally:
        await c.close()
        await e.close()
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
        high = scheduling.queue(ctx, "high")
        for start in range(0, len(ids), 200):
            pipe = high.connection.pipeline()
            for ticket_id, due in ids[start : start + 200]:
                assert due is not None
                scheduling.schedule_sla_timers(ctx, ticket_id, due, "general", pipeline=pipe)
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
            api = start_api(
                settings,
                port,
                env={"CALLCENTER_HTTP__WORKERS": str(args.workers)},
                timeout=30,
                settle=1.0 if args.workers > 1 else 0.0,
            )
            try:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    results = runner.run(api_phase(port, args.rate, args.seconds, api.pid))
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
                    f"{mark}{errors} (server CPU {value['server_cpu_ms']:g} ms)"
                )
            else:
                cells.append(f"{value:g}/s")
        print(f"| {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
