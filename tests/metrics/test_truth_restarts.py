"""Truth across faults: a day's calls through the real processes, with real restarts mid-day.

The router (``callcenter router``) and the API (``callcenter api``, whose metrics consumer keeps
the live figures) run as their own processes on a private Redis with the append-only file on,
as in production; the call-record consumer (the engine's, SQL ``calls``/``call_events``) runs
in this process and this test plays the engine's half of the contract (EngineSide: call_queued,
answered, abandoned, call_ended). Mid-day the API is killed (SIGKILL) while calls go on, then
the router, then Redis itself; after each restart:

- live (the API's ``/metrics`` counters) = report (the API's ``/api/v1/reports/total``) =
  recount (this test's own count from the SQL call events): nothing lost, nothing twice;
- every call was offered once (agents answer their first offer) and none is left behind.

The Redis restart is issue 15's: calls queued and agents ready (two calls offered and not yet
answered, three waiting) when Redis is SIGKILLed; after it comes back from its AOF the waiting
calls are still there, the offers in flight are answered, and each call is offered exactly once.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from callcenter import runtime
from callcenter.context import AppContext, build_context
from callcenter.supervision import die_with_parent
from callcenter.testkit.config import queues_toml
from config.settings import DEFAULT_CONFIG_DIR, Settings
from cti import services
from cti.models import Agent, AgentQueue, AgentStateChange, CallEvent
from ivr.records import CallRecordConsumer
from tests.cti.conftest import EngineSide
from tests.metrics.conftest import free_port
from tests.private_redis import PrivateRedis

QUEUE = "general"
SHORT = 1  # short_abandon_seconds: an abandon after 0.3 s is short, after 1.5 s it is not
COUNTS = ("offered", "answered", "abandoned", "short_abandoned")


def wait(check: Callable[[], Any], what: str, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Process:
    """``python -m callcenter.cli <command>`` with the test's settings, logged to a file."""

    def __init__(self, command: str, env: dict[str, str], log: Path) -> None:
        self.command, self.env, self.log = command, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "callcenter.cli", self.command],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: die_with_parent(signal.SIGTERM),
            )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class Day:
    """The processes of the day and the test's views of them."""

    def __init__(self, tmp_path: Path, seeded: Path) -> None:
        config = tmp_path / "config"
        shutil.copytree(DEFAULT_CONFIG_DIR, config)
        (config / "queues.toml").write_text(
            queues_toml(
                file={"short_abandon_seconds": SHORT},
                general={
                    "wrap_up_seconds": 1,
                    "off_shift_agents_may_answer": True,  # whatever the hour the test runs
                    "no_agents": "wait",
                    "callback_offer": None,
                },
            ),
            encoding="utf-8",
        )
        shutil.copy(seeded, tmp_path / "callcenter.db")
        (tmp_path / "redis").mkdir()
        self.redis = PrivateRedis(tmp_path / "redis")
        self.redis.start()
        self.http_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
        env.update(
            CALLCENTER_ENVIRONMENT="development",  # the API runs its metrics consumer
            CALLCENTER_SETTINGS_FILE=str(tmp_path / "no-callcenter.toml"),
            CALLCENTER_STATE_DIR=str(tmp_path),
            CALLCENTER_CONFIG_DIR=str(config),
            CALLCENTER_REDIS_URL=self.redis.url,
            CALLCENTER_HTTP__HOST="127.0.0.1",
            CALLCENTER_HTTP__PORT=str(self.http_port),
            CALLCENTER_HTTP__ACCESS_LOG="false",
        )
        self.api = Process("api", env, tmp_path / "api.log")
        self.router = Process("router", env, tmp_path / "router.log")
        settings = Settings(
            environment="test", state_dir=tmp_path, redis_url=self.redis.url, config_dir=config
        )
        self.ctx: AppContext = build_context(settings)
        runtime.set_context(self.ctx)
        self.engine = EngineSide(self.ctx.redis, self.ctx.keys)
        self.records = CallRecordConsumer(self.ctx)
        self.records_thread = _thread(self.records.run)
        self.api.start()
        self.router.start()
        self.started = datetime.now(UTC) - timedelta(minutes=1)
        self.wait_api()
        wait(lambda: self.ctx.redis.exists(self.ctx.keys.process_heartbeat("router")), "router")
        self.calls: list[str] = []
        self.abandoned: set[str] = set()

    def close(self) -> None:
        self.records.stopping = True
        self.api.stop()
        self.router.stop()
        self.records_thread.join(timeout=5)
        runtime.set_context(None)
        self.ctx.close()
        if self.redis.proc is not None:
            self.redis.kill()

    # ------------------------------------------------------------ the API process

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}")
        basic = base64.b64encode(b"lead1:pwlead1").decode()
        request.add_header("Authorization", f"Basic {basic}")
        with urllib.request.urlopen(request, timeout=5) as response:
            return bytes(response.read())

    def wait_api(self) -> None:
        def lease() -> bool:
            try:
                return b"metrics: no consumer" not in self._readyz()
            except OSError:
                return False

        wait(lease, "the API and its metrics consumer's lease", 30)

    def _readyz(self) -> bytes:
        try:
            return self.get("/readyz")
        except urllib.error.HTTPError as exc:
            body = exc.read()
            exc.close()
            return bytes(body)

    def live(self) -> dict[str, int]:
        families = {
            f.name: f for f in text_string_to_metric_families(self.get("/metrics").decode())
        }
        figures = {}
        for name in COUNTS:
            family = families[f"callcenter_calls_{name}"]
            figures[name] = int(
                sum(
                    s.value
                    for s in family.samples
                    if s.name.endswith("_total") and s.labels.get("queue") == QUEUE
                )
            )
        return figures

    def report(self) -> dict[str, int]:
        start = self.started.isoformat().replace("+00:00", "Z")
        end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
        body = json.loads(self.get(f"/api/v1/reports/total?group=queue&from={start}&to={end}"))
        rows = [r for r in body["rows"] if r["queue"] == QUEUE]
        return {name: int(sum(r[name] for r in rows)) for name in COUNTS}

    def recount(self) -> dict[str, int]:
        """From the SQL timeline alone, with this test's own rules (docs/metrics.md)."""
        with self.ctx.sessions() as session:
            rows = session.execute(
                select(CallEvent.call_id, CallEvent.type, CallEvent.at).order_by(
                    CallEvent.call_id, CallEvent.at, CallEvent.id
                )
            ).all()
        by_call: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
        for call_id, kind, at in rows:
            by_call[call_id].append((kind, at))
        counts = dict.fromkeys(COUNTS, 0)
        for events in by_call.values():
            queued = [at for kind, at in events if kind == "call_queued"]
            if not queued:
                continue
            counts["offered"] += 1
            kinds = [kind for kind, _ in events]
            if "agent_answered" in kinds:
                counts["answered"] += 1
            elif "abandoned" in kinds:
                left = next(at for kind, at in events if kind == "abandoned")
                short = (left - queued[0]).total_seconds() < SHORT
                counts["short_abandoned" if short else "abandoned"] += 1
        return counts

    def check_truth(self, where: str) -> None:
        """live = report = recount, once every consumer caught up (polled: a count that is
        wrong, lost or doubled, never converges)."""
        seen: list[Any] = []

        def agree() -> bool:
            figures = (self.live(), self.report(), self.recount())
            seen[:] = figures
            expected_offered = len(self.calls)
            return figures[0] == figures[1] == figures[2] and (
                figures[2]["offered"] == expected_offered
            )

        try:
            wait(agree, f"live = report = recount {where}", 20)
        except AssertionError:
            raise AssertionError(
                f"{where}: live {seen[0]} / report {seen[1]} / recount {seen[2]}; "
                f"{len(self.calls)} calls placed"
            ) from None
        # the router's SQL state log: one row per agent state change, none lost, none twice
        stream: list[tuple[str, dict[str, str]]] = self.ctx.redis.xrange(  # type: ignore[assignment]
            self.ctx.keys.agent_events
        )
        changes = [i for i, f in stream if f.get("type") == "agent_state_changed"]

        def logged() -> list[str]:
            with self.ctx.sessions() as session:
                return list(session.scalars(select(AgentStateChange.stream_id)))

        try:
            wait(lambda: sorted(logged()) == sorted(changes), f"the state log {where}", 10)
        except AssertionError:
            rows = logged()
            raise AssertionError(
                f"{where}: {len(changes)} state changes, {len(rows)} rows "
                f"({len(set(rows))} distinct)"
            ) from None

    # ------------------------------------------------------------ the engine's half

    def queue(self, *names: str) -> None:
        for name in names:
            self.engine.queue(name, QUEUE)
            self.calls.append(name)

    def abandon(self, call_id: str, waited: float) -> None:
        self.engine.publish("caller_hung_up", call_id, state="queued")
        self.engine.publish("abandoned", call_id, queue=QUEUE, waited=waited)
        outcome = "short_abandoned" if waited < SHORT else "abandoned"
        self.engine.publish("call_ended", call_id, outcome=outcome, reason="caller_hung_up")
        self.abandoned.add(call_id)

    def serve(self, calls: list[str], seconds: float = 25.0) -> None:
        """Answer each call's offer (the agent it was offered to) and end the call; until
        every call of ``calls`` ended."""
        answered: dict[str, float] = {}
        ended: set[str] = set()
        deadline = time.monotonic() + seconds
        while len(ended) < len(calls):
            assert time.monotonic() < deadline, (
                f"calls not served: {sorted(set(calls) - ended)}; "
                f"offers {[(c, self.engine.offers(c)) for c in calls]}"
            )
            for call_id in calls:
                if call_id in ended:
                    continue
                if call_id not in answered:
                    offers = self.engine.offers(call_id)
                    if offers:
                        self.engine.publish("agent_answered", call_id, agent_id=offers[-1])
                        answered[call_id] = time.monotonic()
                elif time.monotonic() - answered[call_id] > 0.2:
                    self.engine.publish(
                        "call_ended", call_id, outcome="answered", reason="caller_hung_up"
                    )
                    ended.add(call_id)
            time.sleep(0.05)

    def offered_once(self) -> None:
        twice = {c: o for c in self.calls if len(o := self.engine.offers(c)) > 1}
        assert not twice, f"offered more than once: {twice}"
        never = [c for c in self.calls if c not in self.abandoned and not self.engine.offers(c)]
        assert not never, f"never offered: {never}"

    def waiting(self) -> list[str]:
        key = self.ctx.keys.routing(f"queue:{QUEUE}:waiting")
        return [str(c) for c in self.ctx.redis.zrange(key, 0, -1)]


class Desktop:
    """An agent's desktop socket as the page keeps it (common.js): reconnects after a drop."""

    def __init__(self, port: int, extension: str) -> None:
        self.url = f"ws://127.0.0.1:{port}/api/v1/agents/me/events"
        basic = base64.b64encode(f"{extension}:pw{extension}".encode()).decode()
        self.headers = {"Authorization": f"Basic {basic}"}
        self.messages: list[dict[str, Any]] = []
        self.connections = 0
        self.stopping = False
        self.thread = _thread(self._run)

    def _run(self) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        while not self.stopping:
            try:
                with connect(self.url, additional_headers=self.headers, open_timeout=5) as ws:
                    self.connections += 1
                    while not self.stopping:
                        try:
                            self.messages.append(json.loads(ws.recv(timeout=0.2)))
                        except TimeoutError:
                            continue
            except (OSError, WebSocketException):
                time.sleep(0.2)

    def told_of(self, call_id: str) -> bool:
        """An offer of the call, or (after a reconnect) the snapshot of the agent reserved
        for it."""
        return any(
            m.get("call_id") == call_id
            and (m["type"] == "offer" or (m.get("snapshot") and m.get("state") == "reserved"))
            for m in self.messages
        )


def _thread(target: Callable[[], None]) -> Any:
    import threading

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def day(tmp_path: Path, seeded_sqlite_template: Path) -> Iterator[Day]:
    the_day = Day(tmp_path, seeded_sqlite_template)
    try:
        yield the_day
    finally:
        the_day.close()


def extension_of(ctx: AppContext, agent_id: int) -> str:
    with ctx.sessions() as session:
        return str(session.scalar(select(Agent.extension).where(Agent.id == agent_id)))


def general_agents(ctx: AppContext, count: int) -> list[int]:
    with ctx.sessions() as session:
        rows = session.scalars(
            select(AgentQueue.agent_id)
            .where(AgentQueue.queue_code == QUEUE)
            .order_by(AgentQueue.agent_id)
        ).all()
    return list(rows)[:count]


def test_restarts_mid_day_lose_nothing_and_count_nothing_twice(day: Day) -> None:
    ctx = day.ctx
    agents = general_agents(ctx, 3)
    for agent in agents:
        services.login(ctx, agent_id=agent, actor="test")
        services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="test")

    # Morning: four calls for three agents (the fourth offered after a wrap-up), one short
    # abandon while all are busy.
    day.queue("m1", "m2", "m3", "m4", "m5")
    wait(lambda: sum(bool(day.engine.offers(c)) for c in ("m1", "m2", "m3")) == 3, "offers")
    day.abandon("m5", 0.3)
    day.serve(["m1", "m2", "m3", "m4"])
    day.check_truth("before any restart")

    # The API (and its metrics consumer) killed while calls go on; restarted.
    day.api.kill()
    day.queue("a1", "a2")
    day.serve(["a1", "a2"])
    day.api.start()
    day.wait_api()
    day.check_truth("after the API's restart")

    # The router killed: calls queued meanwhile wait (one gives up) and are offered after.
    day.router.kill()
    day.queue("r1", "r2")
    time.sleep(SHORT + 0.2)
    day.abandon("r2", SHORT + 0.2)
    assert not day.engine.offers("r1")
    day.router.start()
    day.serve(["r1"])
    day.check_truth("after the router's restart")
    day.offered_once()

    # Redis SIGKILLed with calls queued and agents ready: two offers in flight, three waiting.
    services.set_state(ctx, agent_id=agents[2], state="not_ready", reason="break", actor="test")
    wait(
        lambda: all(services.routing_for(ctx).agent(a)["state"] == "ready" for a in agents[:2]),
        "two agents ready",
    )
    day.queue("x1", "x2", "x3", "x4", "x5")
    wait(lambda: day.engine.offers("x1") and day.engine.offers("x2"), "two offers")
    wait(lambda: day.waiting() == ["x3", "x4", "x5"], "three waiting")
    routing_before = {c: services.routing_for(ctx).call(c).get("state") for c in day.calls}
    desktop = Desktop(day.http_port, extension_of(ctx, agents[2]))
    wait(lambda: desktop.messages, "the desktop's snapshot")
    day.redis.kill()
    day.redis.start()
    # the routing state came back from the AOF as it was
    assert day.waiting() == ["x3", "x4", "x5"]
    assert {c: services.routing_for(ctx).call(c).get("state") for c in day.calls} == (
        routing_before
    )
    services.set_state(ctx, agent_id=agents[2], state="ready", reason=None, actor="test")
    try:  # the agent who went ready after the restart hears of the longest-waiting call
        wait(lambda: desktop.told_of("x3"), "the desktop told of its offer", 15)
    finally:
        desktop.stopping = True
    day.serve(["x1", "x2", "x3", "x4", "x5"])
    day.offered_once()
    assert day.waiting() == []
    day.check_truth("after Redis's restart")
    states = services.routing_for(ctx).agent_states(agents)
    wait(
        lambda: set(services.routing_for(ctx).agent_states(agents).values()) == {"ready"},
        f"agents ready again (now {states})",
    )


def test_the_lease_of_a_dead_consumer_on_this_host_is_taken_over_at_once(ctx: AppContext) -> None:
    """An API restarted after a crash does not leave live figures frozen for the lease's TTL;
    a live holder, or one on another host, keeps it."""
    import socket

    from metrics.consumer import MetricsConsumer

    key = ctx.keys.metrics("lease")
    host = socket.gethostname()
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "30"])
    consumer = MetricsConsumer(ctx)
    try:
        ctx.redis.set(key, f"{host}:{alive.pid}:1", ex=10)
        assert not consumer.hold_lease()
        ctx.redis.set(key, f"elsewhere:{dead.pid}:1", ex=10)
        assert not consumer.hold_lease()
        ctx.redis.set(key, f"{host}:{dead.pid}:1", ex=10)
        assert consumer.hold_lease()
        assert ctx.redis.get(key) == consumer.name
    finally:
        alive.kill()
        alive.wait()


def test_the_metrics_consumer_recreates_its_group_when_redis_lost_it(ctx: AppContext) -> None:
    """Redis back without its data (no AOF): the consumer recreates its group and counts the
    calls that come after, instead of failing every second."""
    from metrics.consumer import MetricsConsumer
    from metrics.reader import LiveReader
    from tests.metrics.conftest import Events

    consumer = MetricsConsumer(ctx, block_ms=20)
    consumer.start()
    try:
        wait(lambda: ctx.redis.exists(ctx.keys.metrics("lease")), "the lease")
        ctx.redis.delete(ctx.keys.events, ctx.keys.agent_events)  # the streams and groups lost
        Events(ctx).call("call_queued", "after-loss", datetime.now(UTC), queue=QUEUE)
        wait(
            lambda: LiveReader(ctx).snapshot()["queues"][QUEUE]["waiting"] == 1,
            "the call counted",
            10,
        )
    finally:
        consumer.stop()
