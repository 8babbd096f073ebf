"""Shared set-up for the metrics benchmarks: a throw-away state dir, a migrated and seeded
SQLite database, and a context on the Redis URL given (flushed: use a scratch database)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench._measure import percentile
from callcenter.context import AppContext, build_context
from callcenter.migrate import upgrade
from config.settings import Settings


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/14",
        help="a Redis database this benchmark may FLUSH (default: %(default)s)",
    )
    return parser


def context(redis_url: str, config_dir: Path | None = None, seed: bool = False) -> AppContext:
    state = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    settings = Settings(environment="test", state_dir=state, redis_url=redis_url)
    if config_dir is not None:
        settings = settings.model_copy(update={"config_dir": config_dir})
    upgrade(settings.database_url)
    ctx = build_context(settings)
    if seed:
        from callcenter.demo import seed_demo

        seed_demo(ctx)
    ctx.redis.flushdb()
    return ctx


def summary(values: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    return (
        f"n={len(values)} p50={percentile(values, 0.5) * scale:.2f}{unit} "
        f"p99={percentile(values, 0.99) * scale:.2f}{unit} "
        f"mean={statistics.fmean(values) * scale:.2f}{unit} max={max(values) * scale:.2f}{unit}"
    )
