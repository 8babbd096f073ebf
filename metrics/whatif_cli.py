"""``callcenter simulate``: the what-if simulator from the command line (metrics/whatif.py).

callcenter simulate --synthetic --seed 7 [--plan FILE] [--volume 1.5] [--json]
callcenter simulate --day 2026-11-28 --plan FILE [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

from callcenter.errors import CallCenterError
from config.loader import ConfigError, load_config
from config.settings import load_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", action="store_true", help="the built-in day profile")
    source.add_argument("--day", help="replay a stored local day's callers (YYYY-MM-DD)")
    parser.add_argument("--plan", type=Path, help="staffing plan (TOML); default: built-in")
    parser.add_argument(
        "--config-dir", type=Path, help="queue and shift settings to try (default: the center's)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--volume", type=float, default=1.0, help="synthetic: call volume factor")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from callcenter.context import build_context
    from metrics.live_config import metric_config
    from metrics.whatif import simulate
    from metrics.whatif_inputs import (
        DEFAULT_PLAN,
        load_plan,
        stored_arrivals,
        synthetic_arrivals,
    )

    settings = load_settings()
    try:
        plan = load_plan(args.plan) if args.plan else DEFAULT_PLAN
        center = load_config(args.config_dir) if args.config_dir else None
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.day is not None:
        try:
            day = date.fromisoformat(args.day)
        except ValueError:
            print(f"--day: {args.day!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
            return 2
    else:
        day = datetime.now().date()
    if args.volume <= 0:
        print("--volume: must be greater than 0", file=sys.stderr)
        return 2
    ctx = build_context(settings)
    try:
        config = center or ctx.config
        if args.synthetic:
            arrivals = synthetic_arrivals(
                day, settings.timezone, seed=args.seed, volume=args.volume
            )
        else:
            arrivals = stored_arrivals(ctx, day, seed=args.seed)
        from metrics.metric_config import MetricConfig

        figures_config = (
            MetricConfig.from_files(config.queues, config.shifts, settings.timezone)
            if center
            else metric_config(ctx)
        )
        result = simulate(
            ctx.redis,
            config,
            figures_config,
            plan,
            arrivals,
            day=day,
            timezone=settings.timezone,
        )
    except CallCenterError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 1
    finally:
        ctx.close()
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
    else:
        print(render_text(result))
    return 0


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:.1%}"


def render_text(result: dict[str, Any]) -> str:
    center = result["center"]
    lines = [
        f"模拟 / what-if {result['day']}: {result['calls']} 通来电 calls, "
        f"接通率 answer rate {_pct(center['answer_rate'])}, "
        f"服务水平 service level {_pct(center['service_level'])}, "
        f"放弃 abandoned {center['abandoned']}, 占用率 occupancy {_pct(center['occupancy'])}",
        "",
        "hour  agents  offered  answered  abandoned  answer%  SL%     occupancy  ErlangA%",
    ]
    for row in result["hours"]:
        erlang = row["erlang"] or {}
        lines.append(
            f"{row['hour']:02d}    {row['agents']:>6}  {row['offered']:>7}  {row['answered']:>8}"
            f"  {row['abandoned']:>9}  {_pct(row['answer_rate']):>7}  "
            f"{_pct(row['service_level']):>6}  {_pct(row['occupancy']):>9}  "
            f"{_pct(erlang.get('erlang_a_answer_rate')):>8}"
        )
    return "\n".join(lines)
