"""Offer -> screen pop received on the agent's WebSocket, with 200 desktops connected.

A real uvicorn serves the API on loopback; 200 agents' desktops hold the event WebSocket open
(``Authorization: Bearer``). The routing service runs as its own process, as in production
(``callcenter router``). Two ways an offer happens, each timed until that agent's socket
receives the ``offer``:
  call arrives   one agent is ready; the "engine" publishes ``call_queued`` for 13800138000 on
                 the events stream; the router looks the caller up (customer, tickets, calls),
                 decides, and pops (the whole path, lookup included);
  agent ready    the call already waits (its record was looked up when it was queued); the
                 agent's desktop sends ``PUT /api/v1/agents/me/state {"state": "ready"}``; the
                 API process decides and pops.
Baseline in the same run: a bare PUBLISH on an agent's channel -> received on the socket.

    .venv/bin/python bench/cti_screenpop.py [--desktops 200] [-n 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websockets
from _agents import add_bench_agents
from _measure import free_port, gc_paused, percentile

from callcenter.auth import issue_token
from callcenter.context import AppContext, build_context
from callcenter.demo import seed_demo
from callcenter.migrate import upgrade
from callcenter.streams import CallEvent
from config.settings import Settings
from cti.routing import Routing


def report(name: str, samples: list[float]) -> None:
    ms = [s * 1000 for s in samples]
    print(
        f"  {name:<36} p50 {percentile(ms, 0.5):7.2f} ms   p99 {percentile(ms, 0.99):7.2f} ms   "
        f"max {max(ms):7.2f} ms   mean {statistics.fmean(ms):7.2f} ms"
    )


def add_desktop_agents(settings: Settings, count: int) -> list[tuple[int, str]]:
    """``count`` agents serving the general queue, no shift; returns (agent id, token)."""
    ctx = build_context(settings)
    out = []
    with ctx.sessions() as session, session.begin():
        for user, agent in add_bench_agents(session, count):
            out.append((agent.id, issue_token(settings.secret_key, user, 3600)))
    ctx.close()
    return out


def clear(ctx: AppContext) -> None:
    for key in ctx.redis.scan_iter("bench-pop:*", count=1000):
        ctx.redis.delete(key)


Process = subprocess.Popen[bytes]


def start_processes(env: dict[str, str], port: int) -> tuple[Process, Process]:
    """The API under uvicorn and the routing service, each its own process."""
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
        env={**os.environ, **env},
    )
    router = subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", "router"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server, router


async def wait_started(ctx: AppContext, port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            break
        except OSError:
            assert time.monotonic() < deadline, "uvicorn did not start"
            await asyncio.sleep(0.1)
    while not ctx.redis.exists(ctx.keys.process_heartbeat("router")):
        assert time.monotonic() < deadline, "the router did not start"
        await asyncio.sleep(0.1)


def log_in(routing: Routing, desktops: list[tuple[int, str]]) -> None:
    for agent_id, _token in desktops:
        routing.login(
            agent_id,
            extension=str(agent_id),
            uri=f"sip:{agent_id}@bench",
            queues={"general": 5},
            shift=None,
            shift_window=(-1, -1),
            actor="bench",
        )


class Desktops:
    """The agents' desktops: each holds the event WebSocket open; every message is queued per
    agent with the moment it was received."""

    def __init__(self, port: int, desktops: list[tuple[int, str]]) -> None:
        self.port = port
        self.tokens = dict(desktops)
        self.inbox: dict[int, asyncio.Queue[dict[str, Any]]] = {
            a: asyncio.Queue() for a, _ in desktops
        }
        self.received_at: dict[int, float] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        self.tasks = [asyncio.create_task(self.listen(a, t)) for a, t in self.tokens.items()]
        for agent_id in self.tokens:  # every socket is up once its snapshot arrived
            first = await asyncio.wait_for(self.inbox[agent_id].get(), 30)
            assert first["type"] == "state"

    async def listen(self, agent_id: int, token: str) -> None:
        url = f"ws://127.0.0.1:{self.port}/api/v1/agents/me/events"
        headers = {"Authorization": f"Bearer {token}"}
        async with websockets.connect(url, max_size=None, additional_headers=headers) as ws:
            async for raw in ws:
                now = time.perf_counter()
                message = json.loads(raw)
                self.received_at[agent_id] = now
                await self.inbox[agent_id].put(message)

    async def wait_type(self, agent_id: int, kind: str) -> float:
        """When the agent's next message of ``kind`` was received (others skipped)."""
        while True:
            message = await asyncio.wait_for(self.inbox[agent_id].get(), 10)
            if message["type"] == kind:
                return self.received_at[agent_id]

    def put_ready(self, agent_id: int) -> int:
        """The desktop's ``PUT /api/v1/agents/me/state {"state": "ready"}``; the status."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v1/agents/me/state",
            data=b'{"state": "ready"}',
            method="PUT",
            headers={
                "Authorization": f"Bearer {self.tokens[agent_id]}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class ScreenPops:
    """The three timed paths to a desktop, each offer put back afterwards."""

    def __init__(self, ctx: AppContext, routing: Routing, desktops: Desktops) -> None:
        self.ctx, self.routing, self.desktops = ctx, routing, desktops
        self.agent_ids = list(desktops.tokens)

    def agent(self, i: int) -> int:
        return self.agent_ids[i % len(self.agent_ids)]

    def queued(self, call_id: str) -> CallEvent:
        """The engine's event for a caller reaching the general queue (slot recorded)."""
        self.ctx.redis.set(self.ctx.keys.call_slot(call_id), "bench-slot")
        return CallEvent(
            type="call_queued",
            call_id=call_id,
            slot="bench-slot",
            node="bench",
            data={
                "queue": "general",
                "priority": 0,
                "caller": "13800138000",
                "menu_path": ["main", "to_agent"],
                "collected": {},
            },
        )

    async def reset(self, agent_id: int, call_id: str) -> None:
        """The caller hangs up while ringing; the agent is ready again, then not ready."""
        self.ctx.redis.xadd(
            self.ctx.keys.events,
            CallEvent(type="abandoned", call_id=call_id, node="bench").to_fields(),  # type: ignore[arg-type]
        )
        while self.routing.agent(agent_id)["state"] != "ready":
            await asyncio.sleep(0.002)
        self.routing.transition(
            agent_id, "not_ready", reason="other", actor="bench", dispatch=False
        )

    async def baseline(self, iterations: int) -> list[float]:
        """A bare PUBLISH on an agent's channel -> received on the socket."""
        samples: list[float] = []
        for i in range(iterations):
            agent_id = self.agent(i)
            start = time.perf_counter()
            self.ctx.redis.publish(self.ctx.keys.agent_channel(agent_id), '{"type": "bench"}')
            samples.append(await self.desktops.wait_type(agent_id, "bench") - start)
        return samples

    async def call_arrives(self, iterations: int) -> list[float]:
        """One agent ready; ``call_queued`` on the events stream -> the offer on its socket."""
        samples: list[float] = []
        for i in range(iterations):
            agent_id = self.agent(i)
            self.routing.transition(agent_id, "ready", actor="bench", dispatch=False)
            call_id = f"pop-{i}"
            event = self.queued(call_id)
            start = time.perf_counter()
            self.ctx.redis.xadd(self.ctx.keys.events, event.to_fields())  # type: ignore[arg-type]
            samples.append(await self.desktops.wait_type(agent_id, "offer") - start)
            await self.reset(agent_id, call_id)
        return samples

    async def agent_ready(self, iterations: int) -> list[float]:
        """The call already waits; the desktop PUTs ready -> the offer on its socket."""
        samples: list[float] = []
        for i in range(iterations):
            agent_id = self.agent(i)
            call_id = f"wait-{i}"
            event = self.queued(call_id)
            self.ctx.redis.xadd(self.ctx.keys.events, event.to_fields())  # type: ignore[arg-type]
            while self.routing.call(call_id).get("state") != "waiting":
                await asyncio.sleep(0.002)
            start = time.perf_counter()
            status, received = await asyncio.gather(
                asyncio.to_thread(self.desktops.put_ready, agent_id),
                self.desktops.wait_type(agent_id, "offer"),
            )
            assert status == 200
            samples.append(received - start)
            await self.reset(agent_id, call_id)
        return samples


async def measure(
    args: argparse.Namespace,
    ctx: AppContext,
    settings: Settings,
    port: int,
    agents: list[tuple[int, str]],
) -> None:
    await wait_started(ctx, port)
    routing = Routing(ctx.redis, ctx.keys, ctx.config, timezone=settings.timezone)
    log_in(routing, agents)
    desktops = Desktops(port, agents)
    await desktops.connect()
    print(f"{len(agents)} desktops connected to uvicorn on 127.0.0.1:{port}")
    pops = ScreenPops(ctx, routing, desktops)
    with gc_paused():
        baseline = await pops.baseline(args.iterations)
        on_arrival = await pops.call_arrives(args.iterations)
        on_ready = await pops.agent_ready(args.iterations)
    print(f"screen pop, {len(agents)} connected desktops, {args.iterations} offers each")
    report("baseline: PUBLISH -> WebSocket", baseline)
    report("call arrives -> pop on WebSocket", on_arrival)
    report("agent ready (PUT) -> pop on WebSocket", on_ready)
    await desktops.close()


async def run(args: argparse.Namespace) -> None:
    state = Path(tempfile.mkdtemp(prefix="bench-screenpop-"))
    env = {
        "CALLCENTER_STATE_DIR": str(state),
        "CALLCENTER_REDIS_URL": args.redis,
        "CALLCENTER_REDIS_PREFIX": "bench-pop",
    }
    settings = Settings(state_dir=state, redis_url=args.redis, redis_prefix="bench-pop")
    upgrade(settings.database_url)
    ctx = build_context(settings)
    clear(ctx)
    seed_demo(ctx)
    agents = add_desktop_agents(settings, args.desktops)
    port = free_port()
    server, router = start_processes(env, port)
    try:
        await measure(args, ctx, settings, port, agents)
    finally:
        for process in (router, server):
            process.terminate()
            process.wait(timeout=10)
        clear(ctx)
        ctx.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--desktops", type=int, default=200)
    parser.add_argument("-n", "--iterations", type=int, default=200)
    parser.add_argument(
        "--redis", default=os.environ.get("CALLCENTER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
