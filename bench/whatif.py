"""What-if simulator speed: a 2,000-call day through the real routing script (goal < 30 s).

Simulates the built-in day profile scaled to about 2,000 callers against the built-in plan
scaled up to match, on a scratch key space of a local Redis, and prints the wall time, the
routing script calls it made and the report time. Baseline in the same run: as many Redis
round trips (EVALSHA of ``return 1``) as the simulation made script calls, i.e. the part of the
time that is Redis transport alone.

    .venv/bin/python bench/whatif.py [--calls 2000] [--seed 1] [--redis redis://127.0.0.1:6379/14]
"""

from __future__ import annotations

import argparse
import time
from datetime import date

import redis

from config.loader import load_config
from config.settings import DEFAULT_CONFIG_DIR
from metrics.metric_config import MetricConfig
from metrics.simulation import HOURLY_PROFILE
from metrics.whatif import simulate
from metrics.whatif_inputs import DEFAULT_PLAN, PlanFile, PlanGroup, synthetic_arrivals

TIMEZONE = "Asia/Shanghai"


def scaled_plan(factor: float) -> PlanFile:
    return PlanFile(
        agents=[
            PlanGroup(shift=g.shift, count=max(1, round(g.count * factor)), queues=g.queues)
            for g in DEFAULT_PLAN.agents
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis, decode_responses=True)
    config = load_config(DEFAULT_CONFIG_DIR)
    metric_config = MetricConfig.from_files(config.queues, config.shifts, TIMEZONE)
    volume = args.calls / sum(HOURLY_PROFILE)
    day = date(2026, 11, 28)
    arrivals = synthetic_arrivals(day, TIMEZONE, seed=args.seed, volume=volume)

    started = time.perf_counter()
    result = simulate(
        client, config, metric_config, scaled_plan(volume), arrivals, day=day, timezone=TIMEZONE
    )
    elapsed = time.perf_counter() - started
    script_calls = int(result["routing_script_calls"])

    sha = str(client.script_load("return 1"))
    base_started = time.perf_counter()
    for _ in range(script_calls):
        client.evalsha(sha, 0)
    baseline = time.perf_counter() - base_started

    center = result["center"]
    print(f"callers simulated        {len(arrivals)}")
    print(f"agents in the plan       {sum(g.count for g in scaled_plan(volume).agents)}")
    print(f"routing script calls     {script_calls}")
    print(f"simulated day            {elapsed:.2f} s   (goal < 30 s)")
    print(f"baseline: {script_calls} EVALSHA 'return 1' round trips  {baseline:.2f} s")
    print(
        f"figures: answer rate {center['answer_rate']:.3f}, service level "
        f"{center['service_level']:.3f}, abandoned {center['abandoned']}, "
        f"occupancy {center['occupancy']:.3f}"
    )


if __name__ == "__main__":
    main()
