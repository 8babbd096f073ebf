"""Pages benchmark: server time of /desktop, /lead and /tickets with 10,000 tickets.

A real uvicorn on loopback serves the app in its own process, wrapped in a small ASGI timer
that reports each request's server time (request in → response headers out: the page is
rendered by then) in a ``Server-Timing`` header. The client signs in through ``POST /login``
like a browser and requests each page one at a time; the same run measures ``/healthz`` (the HTTP
stack alone) and ``/api/v1/me`` (cookie session: Redis + one user read) as baselines.
Goal: p99 < 150 ms for each page (the overdue report over a month of them too).

Usage (Redis DB and PostgreSQL URL default to the test ones):
  .venv/bin/python bench/pages.py --db sqlite --tickets 10000 --requests 200
  .venv/bin/python bench/pages.py --db postgres --tickets 10000 --requests 200
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _measure import free_port, gc_paused, percentile  # noqa: E402
from _serve import start_api  # noqa: E402

from callcenter.context import build_context  # noqa: E402
from callcenter.db import make_engine  # noqa: E402
from callcenter.demo import seed_demo  # noqa: E402
from callcenter.migrate import upgrade  # noqa: E402
from config.settings import Settings  # noqa: E402
from cti.models import Agent, Call, Department  # noqa: E402
from ticketing.models import Ticket  # noqa: E402

REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
POSTGRES_URL = os.environ.get(
    "CALLCENTER_TEST_POSTGRES_URL",
    "postgresql://callcenter:callcenter@127.0.0.1:5432/callcenter_test",
)
CATEGORIES = (
    ("paid_home_repair", "engineering"),
    ("public_water", "engineering"),
    ("cleaning", "environment"),
    ("fees", "finance"),
    ("access_control", "security"),
)
STATUSES = ("dispatched", "assigned", "on_site", "resolved", "archived")
WHATS = ("卫生间漏水", "门锁损坏", "楼道灯不亮", "垃圾未清运", "物业费咨询", "车辆进出")


def prepare(db: str, state_dir: Path, tickets: int) -> Settings:
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
    start = datetime.now(UTC) - timedelta(days=30)
    with ctx.sessions.begin() as session:
        departments = dict(session.execute(select(Department.code, Department.id)).all())
        agent_id = session.scalar(select(Agent.id).where(Agent.extension == "1001"))
        rows = []
        for i in range(1, tickets + 1):
            category, department = CATEGORIES[i % len(CATEGORIES)]
            at = start + timedelta(seconds=i * 259)
            rows.append(
                {
                    "number": f"GD{at:%Y%m%d}-{i:05d}",
                    "category": category,
                    "department_id": departments[department],
                    "track": "general",
                    "status": STATUSES[i % len(STATUSES)],
                    "reporter": f"业主{i}",
                    "unit": f"{i % 12 + 1}-{i % 3 + 1}-{i % 2000:04d}",
                    "what": WHATS[i % len(WHATS)],
                    "when_text": "今天",
                    "contact": f"139{i:08d}",
                    "description": "",
                    "channel": "phone",
                    "sla_class": "3h",
                    "due_at": at + timedelta(hours=3),
                    "overdue": i % 17 == 0,
                    "overdue_at": at + timedelta(hours=3) if i % 17 == 0 else None,
                    "escalation_level": 0,
                    "created_by": "bench",
                    "created_at": at,
                    "updated_at": at,
                }
            )
        session.execute(insert(Ticket), rows)
        session.execute(
            insert(Call),
            [
                {
                    "id": f"bench-call-{i}",
                    "caller_number": f"1380013{i:04d}",
                    "queue_code": "repair",
                    "agent_id": agent_id,
                    "arrived_at": start + timedelta(minutes=i),
                    "outcome": "answered",
                    "menu_path": [],
                    "collected": {},
                }
                for i in range(200)
            ],
        )
    ctx.close()
    return settings


# ---------------------------------------------------------------- the server process


def serve(port: int) -> None:
    """The app from the environment's settings, behind a timer reporting server time."""
    import uvicorn

    from callcenter.app import app_factory

    app = app_factory()

    async def timed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_timed(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                headers = list(message.get("headers", []))
                headers.append((b"server-timing", f"app;dur={elapsed:.3f}".encode()))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_timed)

    uvicorn.run(timed, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ---------------------------------------------------------------- the client


def signed_in(base: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=10, follow_redirects=True)
    response = client.post("/login", data={"username": username, "password": f"pw{username}"})
    if response.status_code != 200:
        raise SystemExit(f"sign-in of {username} failed: {response.status_code}")
    return client


def measure(client: httpx.Client, path: str, count: int) -> tuple[list[float], list[float]]:
    """Server and client milliseconds of ``count`` sequential GETs (after 5 warm-ups)."""
    for _ in range(5):
        client.get(path)
    server, wall = [], []
    with gc_paused():
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(path)
            wall.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code}")
            timing = response.headers["server-timing"]
            server.append(float(timing.split("dur=")[1]))
    return server, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as tmp:
        settings = prepare(args.db, Path(tmp), args.tickets)
        port = free_port()
        server = start_api(
            settings, port, command=[sys.executable, __file__, "--serve", str(port)], timeout=30
        )
        base = f"http://127.0.0.1:{port}"
        try:
            anonymous = httpx.Client(base_url=base, timeout=10)
            agent, lead, eng = (signed_in(base, u) for u in ("1001", "lead1", "eng1"))
            first = lead.get("/tickets").text
            number = first.split('<tr data-number="', 1)[1].split('"', 1)[0]
            middle = args.tickets // 2
            local_today = datetime.now(ZoneInfo(settings.timezone)).date()
            today, month_ago = local_today, local_today - timedelta(days=30)
            cases: list[tuple[str, httpx.Client, str]] = [
                ("baseline /healthz", anonymous, "/healthz"),
                ("baseline /api/v1/me (cookie)", agent, "/api/v1/me"),
                ("/desktop (1001)", agent, "/desktop"),
                ("/lead (lead1)", lead, "/lead"),
                ("/tickets first page", lead, "/tickets"),
                (
                    f"/tickets?before={middle} (page {args.tickets // 100})",
                    lead,
                    f"/tickets?before={middle}",
                ),
                ("/tickets?before=60 (last page)", lead, "/tickets?before=60"),
                ("/tickets?text=门锁", lead, "/tickets?text=门锁"),
                (
                    "/tickets?status=dispatched&department=engineering",
                    lead,
                    "/tickets?status=dispatched&department=engineering",
                ),
                ("/tickets?overdue=1", lead, "/tickets?overdue=1"),
                ("/tickets?phone=13900004242", lead, "/tickets?phone=13900004242"),
                ("/tickets (eng1, own department)", eng, "/tickets"),
                (f"/tickets/{number}", lead, f"/tickets/{number}"),
                (
                    "/tickets/reports/overdue (31 days by day, lead1)",
                    lead,
                    f"/tickets/reports/overdue?since={month_ago}&until={today}",
                ),
                (
                    "/tickets/reports/overdue (31 days by week, eng1)",
                    eng,
                    f"/tickets/reports/overdue?since={month_ago}&until={today}&period=week",
                ),
            ]
            print(
                f"pages benchmark: {args.db}, {args.tickets} tickets, "
                f"{args.requests} sequential requests each"
            )
            print(f"{'request':58} {'server p50':>10} {'p99':>8} {'client p50':>10} {'p99':>8} ms")
            for name, client, path in cases:
                server_ms, wall_ms = measure(client, path, args.requests)
                print(
                    f"{name:58} {percentile(server_ms, 0.5):10.1f} "
                    f"{percentile(server_ms, 0.99):8.1f} {percentile(wall_ms, 0.5):10.1f} "
                    f"{percentile(wall_ms, 0.99):8.1f}"
                )
            print("goal: server p99 < 150 ms for /desktop, /lead and /tickets")
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
