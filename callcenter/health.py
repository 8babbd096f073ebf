"""``GET /healthz``: 200 only when SQL, Redis and every process ``up`` started are alive."""

from __future__ import annotations

import time
from typing import Any

import redis
from sqlalchemy import text

from callcenter.context import AppContext

HEARTBEAT_TTL_SECONDS = 10


def beat(ctx: AppContext, name: str) -> None:
    """Mark a long-running process alive for the next HEARTBEAT_TTL_SECONDS."""
    ctx.redis.set(ctx.keys.process_heartbeat(name), str(time.time()), ex=HEARTBEAT_TTL_SECONDS)


def expected_processes_key(ctx: AppContext) -> str:
    return f"{ctx.keys.prefix}:up:processes"


def check(ctx: AppContext) -> tuple[bool, dict[str, Any]]:
    report: dict[str, Any] = {}
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        report["database"] = "ok"
    except Exception as exc:
        report["database"] = f"down: {type(exc).__name__}: {exc}"
    try:
        ctx.redis.ping()
        report["redis"] = "ok"
        expected = sorted(str(name) for name in ctx.redis.smembers(expected_processes_key(ctx)))
        for name in expected:
            alive = ctx.redis.exists(ctx.keys.process_heartbeat(name))
            report[f"process:{name}"] = "ok" if alive else "down: no heartbeat"
    except redis.RedisError as exc:
        report["redis"] = f"down: {type(exc).__name__}: {exc}"
    healthy = all(value == "ok" for value in report.values())
    return healthy, report
