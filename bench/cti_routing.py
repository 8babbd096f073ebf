"""Routing decision latency in Redis: 500 waiting calls, 200 agents, 10 queues (defaults).

Two decisions are timed, each one Lua call (the same call production makes):
  agent_ready  an agent goes ready while every queue has calls waiting: the script looks at
               the head of each queue the pool serves, picks the best call (priority, then
               arrival across queues) and reserves agent + call, emitting the events and the
               offer command;
  call_queued  a call arrives while all 200 agents are ready: the queue's strategy scans the
               ready agents (skill_then_longest_idle, which reads every candidate).
Between timed decisions the state is put back (untimed) so the sizes stay constant.
Baseline in the same run: a Redis PING round trip and an EVALSHA of ``return 1``.

    .venv/bin/python bench/cti_routing.py [--calls 500] [--agents 200] [--queues 10] [-n 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar, cast

import redis
from _measure import percentile

from callcenter.redis_keys import Keys
from config.loader import load_config
from config.schemas import Names, Queue, QueuesFile
from config.settings import DEFAULT_CONFIG_DIR
from cti.routing import Routing

T = TypeVar("T")


def report(name: str, samples: list[float]) -> None:
    ms = [s * 1000 for s in samples]
    print(
        f"  {name:<34} p50 {percentile(ms, 0.5):7.3f} ms   p99 {percentile(ms, 0.99):7.3f} ms   "
        f"mean {statistics.fmean(ms):7.3f} ms   {len(ms) / sum(samples):9.0f} /s"
    )


def evalsha_stats(client: redis.Redis) -> tuple[int, int]:
    """(calls, microseconds) of EVALSHA so far, server-wide (INFO commandstats)."""
    info = cast(dict[str, Any], client.info("commandstats"))
    stats = info.get("cmdstat_evalsha", {})
    return int(stats.get("calls", 0)), int(stats.get("usec", 0))


def timed(action: Callable[[], T], samples: list[float]) -> T:
    start = time.perf_counter()
    value = action()
    samples.append(time.perf_counter() - start)
    return value


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--queues", type=int, default=10)
    parser.add_argument("-n", "--iterations", type=int, default=2000)
    parser.add_argument(
        "--redis", default=os.environ.get("CALLCENTER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    )
    return parser.parse_args()


def clear(client: redis.Redis, keys: Keys) -> None:
    for key in client.scan_iter(f"{keys.prefix}:*", count=1000):
        client.delete(key)


def bench_routing(client: redis.Redis, keys: Keys, codes: list[str]) -> Routing:
    """Routing over ``codes`` queues: q00 scans by skill, the others by longest idle."""
    queues = {
        code: Queue(
            name=Names(**{"zh-CN": code, "en": code}),
            strategy="skill_then_longest_idle" if n == 0 else "longest_idle",
            no_agents="wait",
            missed_offers_to_logout=0,
        )
        for n, code in enumerate(codes)
    }
    base = load_config(DEFAULT_CONFIG_DIR)
    config = dataclasses.replace(base, queues=QueuesFile(queues=queues))
    return Routing(client, keys, config)


def log_in_agents(routing: Routing, count: int, codes: list[str], rng: random.Random) -> list[int]:
    """Agents serve 3 queues each; every agent also serves q00 for the call_queued scan."""
    agents = list(range(1, count + 1))
    for agent in agents:
        served = {"q00", *rng.sample(codes, 3)}
        routing.login(
            agent,
            extension=str(1000 + agent),
            uri=f"sip:{1000 + agent}@bench",
            queues={q: rng.randint(1, 10) for q in served},
            shift=None,
            shift_window=(-1, -1),
            actor="bench",
        )
    return agents


class Calls:
    """New call ids for the benchmark, numbered in order."""

    def __init__(self, client: redis.Redis, keys: Keys, routing: Routing) -> None:
        self.client, self.keys, self.routing = client, keys, routing
        self.serial = 0

    def slotted(self) -> str:
        """A call id whose slot is known, as the engine records it when the call arrives
        (long before the caller reaches a queue), so it is not part of the decision."""
        self.serial += 1
        call_id = f"b{self.serial}"
        self.client.set(self.keys.call_slot(call_id), f"bench-s{self.serial % 90}")
        return call_id

    def queued(self, queue: str, priority: int = 0) -> str:
        call_id = self.slotted()
        self.routing.enqueue(call_id, queue, priority=priority)
        return call_id


def measure_baseline(client: redis.Redis, iterations: int) -> tuple[list[float], list[float]]:
    """PING round trips and EVALSHA of ``return 1``."""
    ping: list[float] = []
    trivial: list[float] = []
    sha = client.script_load("return 1")
    for _ in range(iterations):
        timed(client.ping, ping)
        timed(lambda: client.evalsha(sha, 0), trivial)
    return ping, trivial


def measure_agent_ready(
    args: argparse.Namespace,
    routing: Routing,
    agents: list[int],
    rng: random.Random,
) -> tuple[list[float], list[int]]:
    """An agent goes ready while ``calls`` wait (nobody ready): client and in-Redis times."""
    ready: list[float] = []
    inside: list[int] = []
    for _ in range(args.iterations):
        agent = rng.choice(agents)
        before = evalsha_stats(routing.redis)
        result = timed(partial(routing.transition, agent, "ready", actor="bench"), ready)
        inside.append(evalsha_stats(routing.redis)[1] - before[1])
        offers = Routing.offers(result)
        assert len(offers) == 1, offers
        # Put it back: the offer is missed (the call waits again, the agent is not ready).
        routing.missed(offers[0].call_id, agent)
    return ready, inside


def measure_call_queued(
    iterations: int, routing: Routing, calls: Calls
) -> tuple[list[float], list[int]]:
    """A call arrives in q00 while every agent is ready: client and in-Redis times."""
    arrive: list[float] = []
    inside: list[int] = []
    for _ in range(iterations):
        call_id = calls.slotted()
        before = evalsha_stats(routing.redis)
        result = timed(partial(routing.enqueue, call_id, "q00"), arrive)
        inside.append(evalsha_stats(routing.redis)[1] - before[1])
        assert len(Routing.offers(result)) == 1, result
        # Put it back: the caller hangs up while ringing; the agent is ready again.
        routing.hangup(call_id, final=False)
    return arrive, inside


def hang_up_waiting(client: redis.Redis, keys: Keys, routing: Routing, codes: list[str]) -> None:
    for code in codes:
        waiting_ids = cast(list[str], client.zrange(keys.routing(f"queue:{code}:waiting"), 0, -1))
        for call_id in waiting_ids:
            routing.hangup(str(call_id), final=True)


def report_inside(name: str, usecs: list[int]) -> None:
    inside = [usec / 1000 for usec in usecs]
    print(
        f"  {name:<34} p50 {percentile(inside, 0.5):7.3f} ms   "
        f"p99 {percentile(inside, 0.99):7.3f} ms"
    )


def main() -> None:
    args = parse_args()
    client = redis.Redis.from_url(args.redis, decode_responses=True)
    keys = Keys("bench-cti")
    clear(client, keys)
    codes = [f"q{n:02d}" for n in range(args.queues)]
    routing = bench_routing(client, keys, codes)
    rng = random.Random(7)
    agents = log_in_agents(routing, args.agents, codes, rng)
    calls = Calls(client, keys, routing)

    ping, trivial = measure_baseline(client, args.iterations)
    for _ in range(args.calls):
        calls.queued(rng.choice(codes), priority=rng.choice([0, 0, 0, 1, 5]))
    ready, ready_inside = measure_agent_ready(args, routing, agents, rng)
    waiting = sum(cast(int, client.zcard(keys.routing(f"queue:{q}:waiting"))) for q in codes)
    assert waiting == args.calls, waiting

    # every agent ready, no calls waiting
    hang_up_waiting(client, keys, routing, codes)
    for agent in agents:
        routing.transition(agent, "ready", actor="bench", dispatch=False)
    arrive, arrive_inside = measure_call_queued(args.iterations, routing, calls)

    print(
        f"routing decision, {args.calls} waiting calls, {args.agents} agents, {args.queues} "
        f"queues, {args.iterations} decisions each (Redis {args.redis})"
    )
    report("baseline: PING round trip", ping)
    report("baseline: EVALSHA return 1", trivial)
    report("decision: agent ready, calls wait", ready)
    report("decision: call arrives, all ready", arrive)
    # Time inside Redis of the decision scripts (INFO commandstats deltas; the counter is
    # server-wide, so another client's scripts in the same instant can add to it).
    report_inside("inside Redis: agent-ready script", ready_inside)
    report_inside("inside Redis: call-arrival script", arrive_inside)
    clear(client, keys)


if __name__ == "__main__":
    main()
