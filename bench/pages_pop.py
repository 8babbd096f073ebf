"""Call queued → screen pop visible in the agent's page, measured in the browser, with 40
desktops open.

``callcenter api`` and ``callcenter router`` run as their own processes (as in production) on
loopback; headless Chromium (Debian's /usr/bin/chromium) opens 40 ``/desktop`` pages, each
signed in through ``/login`` as its own agent, each pressing 就绪. Each round queues one call
per agent (13800138000, the demo customer, on the event stream as the engine does), spaced
``--gap`` ms apart; every page records, with a MutationObserver, the wall-clock moment the
pop's name appears (``performance.timeOrigin + performance.now()``); the latency is that
moment minus the moment the call was queued (same machine, same clock). Between rounds the
callers hang up and the agents are ready again. Baselines in the same run: the time for the
router to publish the offer on the agent's Redis channel (watched by the benchmark) and the
page's own WebSocket ping round trip (the floor of any push to it).
Goal: p99 < 300 ms. Drives Chromium: run under the shared lock.

  flock /tmp/sip.lock .venv/bin/python bench/pages_pop.py --desktops 40 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _agents import add_bench_agents  # noqa: E402
from _measure import free_port, percentile  # noqa: E402

from callcenter.context import AppContext, build_context  # noqa: E402
from callcenter.demo import seed_demo  # noqa: E402
from callcenter.migrate import upgrade  # noqa: E402
from callcenter.streams import CallEvent, EventType  # noqa: E402
from config.settings import Settings  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
PREFIX = "bench-pages-pop"
CALLER = "13800138000"

# Installed in each page: when the pop's name changes, note the moment and the call id.
OBSERVE = """() => {
  window.__pops = [];
  const name = document.getElementById("pop-name");
  new MutationObserver(() => {
    const at = performance.timeOrigin + performance.now();
    window.__pops.push({call: document.getElementById("pop").dataset.callId, at});
  }).observe(name, {childList: true, characterData: true, subtree: true});
}"""
# The page's own socket round trip (ping → pong), the floor of any push to it.
PING = """() => new Promise((resolve) => {
  const ws = new WebSocket(location.origin.replace("http", "ws") + "/api/v1/agents/me/events");
  ws.onmessage = (event) => {
    const body = JSON.parse(event.data);
    if (body.type === "state") { window.__t = performance.now(); ws.send("ping"); }
    if (body.type === "pong") { resolve(performance.now() - window.__t); ws.close(); }
  };
})"""


class OfferWatch:
    """Notes when each offer is published on an agent's channel (what the API relays)."""

    def __init__(self, ctx: AppContext) -> None:
        self.seen: dict[str, float] = {}
        self.pubsub = ctx.redis.pubsub()
        self.pubsub.psubscribe(ctx.keys.agent_channel(0).replace(":0:", ":*:"))
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            message = self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
            if message and message["type"] == "pmessage":
                body = json.loads(message["data"])
                if body.get("type") == "offer":
                    self.seen.setdefault(body["call_id"], time.time() * 1000)

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=5)
        self.pubsub.close()


def add_agents(ctx: AppContext, count: int) -> list[str]:
    """``count`` agents (bench3000…) with 1001's password, in the general queue, no shift."""
    names = []
    with ctx.sessions.begin() as session:
        for user, _agent in add_bench_agents(session, count):
            names.append(user.username)
    return names


def publish(ctx: AppContext, kind: str, call_id: str, **data: Any) -> None:
    slot = f"node1-{call_id}"
    event = CallEvent(type=kind, call_id=call_id, slot=slot, node="node1", data=data)
    redis_client: Any = ctx.redis
    redis_client.xadd(ctx.keys.events, event.to_fields())


def queue_call(ctx: AppContext, call_id: str) -> float:
    """Arrival and queueing as the engine publishes them; returns the epoch ms of queueing."""
    redis_client: Any = ctx.redis
    redis_client.set(ctx.keys.call_slot(call_id), f"node1-{call_id}")
    publish(ctx, EventType.call_arrived, call_id, caller=CALLER, did="4008001234", direction="in")
    queued_at = time.time() * 1000
    publish(
        ctx,
        EventType.call_queued,
        call_id,
        queue="general",
        priority=0,
        skills=[],
        collected={},
        menu_path=["main", "general"],
    )
    return queued_at


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desktops", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gap", type=float, default=100.0, help="ms between calls")
    return parser.parse_args()


def clear(ctx: AppContext) -> None:
    for key in ctx.redis.scan_iter(f"{PREFIX}:*", count=1000):
        ctx.redis.delete(key)


def process_env(state: Path, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "CALLCENTER_ENVIRONMENT": "test",
        "CALLCENTER_STATE_DIR": str(state),
        "CALLCENTER_REDIS_URL": REDIS_URL,
        "CALLCENTER_REDIS_PREFIX": PREFIX,
        "CALLCENTER_HTTP__PORT": str(port),
        "CALLCENTER_HTTP__ACCESS_LOG": "false",
    }


def wait_started(ctx: AppContext, base: str) -> None:
    def api_up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code in (200, 503)
        except httpx.HTTPError:
            return False

    wait(api_up, 30, "the API")
    wait(lambda: ctx.redis.exists(ctx.keys.process_heartbeat("router")), 30, "the router")


def open_desktops(browser: Browser, base: str, usernames: list[str]) -> list[Page]:
    """One signed-in ``/desktop`` page per agent, ready, watching its pop."""
    pages = []
    for username in usernames:
        context = browser.new_context()
        context.request.post(f"{base}/login", form={"username": username, "password": "pw1001"})
        page = context.new_page()
        page.goto(f"{base}/desktop")
        page.wait_for_selector("body[data-socket=open]")
        page.click("#btn-ready")
        page.wait_for_selector("#agent-state[data-state=ready]")
        page.evaluate(OBSERVE)
        pages.append(page)
    return pages


def pop_round(
    ctx: AppContext, pages: list[Page], round_number: int, gap: float, sent: dict[str, float]
) -> None:
    """One call per page, ``gap`` ms apart, until every pop showed; then the callers hang up
    and every agent is ready again."""
    calls = [f"pop-{round_number}-{i}" for i in range(len(pages))]
    for call_id in calls:
        sent[call_id] = queue_call(ctx, call_id)
        time.sleep(gap / 1000)

    def popped() -> int:
        return sum(len(page.evaluate("() => window.__pops")) for page in pages)

    wait(lambda: popped() >= len(sent), 60, "every pop")
    for call_id in calls:
        publish(ctx, EventType.caller_hung_up, call_id)

    def all_ready() -> bool:
        states = [
            ctx.redis.hget(ctx.keys.routing(f"agent:{agent_id}"), "state")
            for agent_id in range(1, 13 + len(pages))
        ]
        return sum(1 for s in states if s == "ready") >= len(pages)

    wait(all_ready, 30, "agents ready again")


def pop_latencies(pages: list[Page], sent: dict[str, float]) -> list[float]:
    """Each page's pop moments minus the moment its call was queued (ms)."""
    latencies = []
    for page in pages:
        for pop in page.evaluate("() => window.__pops"):
            if pop["call"] in sent:
                latencies.append(pop["at"] - sent[pop["call"]])
    return latencies


@dataclass
class Figures:
    desktops: int
    latencies: list[float]  # queued -> pop visible in the page
    published: list[float]  # queued -> offer published on the agent's channel
    floors: list[float]  # the page's socket ping round trips


def measure_in_browser(
    ctx: AppContext, base: str, usernames: list[str], args: argparse.Namespace
) -> Figures:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu"],
        )
        pages = open_desktops(browser, base, usernames)
        floors = [float(pages[i].evaluate(PING)) for i in range(min(10, len(pages)))]
        offers = OfferWatch(ctx)
        sent: dict[str, float] = {}
        for round_number in range(args.rounds):
            pop_round(ctx, pages, round_number, args.gap, sent)
        offers.stop()
        published = [offers.seen[c] - sent[c] for c in sent if c in offers.seen]
        latencies = pop_latencies(pages, sent)
        browser.close()
    return Figures(len(pages), latencies, published, floors)


def print_figures(figures: Figures, args: argparse.Namespace) -> None:
    latencies, published, floors = figures.latencies, figures.published, figures.floors
    print(
        f"pages pop benchmark: {figures.desktops} desktops, {args.rounds} rounds, "
        f"{len(latencies)} pops, a call every {args.gap:.0f} ms"
    )
    print(
        f"call queued -> pop visible in the page: p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms"
    )
    print(
        f"  of which queued -> offer published on the agent's Redis channel (router): "
        f"p50 {percentile(published, 0.5):.1f} ms, p99 {percentile(published, 0.99):.1f} ms"
    )
    print(
        f"baseline, the page's socket ping round trip: p50 {percentile(floors, 0.5):.1f} ms, "
        f"max {max(floors):.1f} ms"
    )
    print("goal: p99 < 300 ms")


def main() -> None:
    args = parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-pages-pop-"))
    settings = Settings(
        environment="test", state_dir=state, redis_url=REDIS_URL, redis_prefix=PREFIX
    )
    upgrade(settings.database_url)
    ctx = build_context(settings)
    clear(ctx)
    seed_demo(ctx)
    usernames = add_agents(ctx, args.desktops)
    port = free_port()
    env = process_env(state, port)
    log = (state / "processes.log").open("wb")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", name], env=env, stdout=log, stderr=log
        )
        for name in ("api", "router")
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_started(ctx, base)
        print_figures(measure_in_browser(ctx, base, usernames, args), args)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        clear(ctx)
        ctx.close()


if __name__ == "__main__":
    main()
