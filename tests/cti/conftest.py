"""CTI fixtures: a config copy with an outbound trunk, a controllable clock, a router, and an
``EngineSide`` that speaks the engine's half of the Redis contract (events out, commands in)."""

from __future__ import annotations

import concurrent.futures
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import select
from starlette.testclient import WebSocketTestSession

from callcenter import runtime
from callcenter.context import AppContext, build_context
from callcenter.redis_keys import Keys
from callcenter.streams import CallEvent, Command, EventType
from config.settings import DEFAULT_CONFIG_DIR, Settings
from cti import services
from cti.models import Agent
from cti.router import Router
from cti.routing import Routing

ZONE = ZoneInfo("Asia/Shanghai")
# 10:00 in Shanghai: the day (08-20) and middle (09-21) shifts are on, night (20-08) is off.
MORNING = datetime(2026, 11, 30, 10, 0, tzinfo=ZONE).timestamp()

TRUNK = """
[trunks.telecom]
host = "127.0.0.1"
port = 5090

[transfer_targets.property_office]
name = { zh-CN = "物业办公室", en = "Property office" }
number = "02161230000"
trunk = "telecom"
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "queues_toml(text): replace queues.toml for this test")
    config.addinivalue_line(
        "markers", "sip_plan(plan): an end-to-end SIP test's ports and addresses (sipcases.Plan)"
    )


class TestClock:
    """Routing's clock in tests: starts at MORNING and moves only when a test advances it."""

    __test__ = False

    def __init__(self, start: float = MORNING) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def config_dir(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    directory = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, directory)
    telephony = directory / "telephony.toml"
    text = telephony.read_text(encoding="utf-8").replace("[trunks]\n", "")
    text = text.replace(
        'sip_domain = "callcenter.local"',
        'sip_domain = "callcenter.local"\noutbound_trunk = "telecom"',
    )
    telephony.write_text(text + TRUNK, encoding="utf-8")
    marker = request.node.get_closest_marker("queues_toml")
    if marker is not None:
        (directory / "queues.toml").write_text(marker.args[0], encoding="utf-8")
    return directory


@pytest.fixture
def settings(tmp_path: Path, seeded_sqlite_template: Path, config_dir: Path) -> Settings:
    from tests.conftest import TEST_REDIS_URL

    shutil.copy(seeded_sqlite_template, tmp_path / "callcenter.db")
    return Settings(
        environment="test", state_dir=tmp_path, redis_url=TEST_REDIS_URL, config_dir=config_dir
    )


@pytest.fixture
def clock() -> TestClock:
    return TestClock()


@pytest.fixture
def ctx(settings: Settings, redis_client: redis.Redis, clock: TestClock) -> Iterator[AppContext]:
    context = build_context(settings)
    runtime.set_context(context)
    services.use_routing(
        context,
        Routing(
            context.redis, context.keys, context.config, timezone=settings.timezone, clock=clock
        ),
    )
    yield context
    runtime.set_context(None)
    context.close()


@pytest.fixture
def routing(ctx: AppContext) -> Routing:
    return services.routing_for(ctx)


@pytest.fixture
def router(ctx: AppContext, routing: Routing) -> Router:
    return Router(ctx, routing=routing, consumer="test-router")


def agent_ids(ctx: AppContext) -> dict[str, int]:
    with ctx.sessions() as session:
        return {a.extension: a.id for a in session.scalars(select(Agent))}


@dataclass
class EngineSide:
    """The engine's half of the contract, over the real Redis: publish events, read commands."""

    client: redis.Redis
    keys: Keys
    seen: dict[str, str] = field(default_factory=dict)

    def publish(self, event_type: str, call_id: str, slot: str = "", **data: Any) -> None:
        event = CallEvent(type=event_type, call_id=call_id, slot=slot, node="node1", data=data)
        self.client.xadd(self.keys.events, event.to_fields())  # type: ignore[arg-type]

    def arrive(self, call_id: str, caller: str, *, slot: str | None = None) -> str:
        slot = slot or f"node1-{call_id}"
        self.client.set(self.keys.call_slot(call_id), slot)
        self.publish(
            EventType.call_arrived, call_id, slot, caller=caller, did="4008001234", direction="in"
        )
        return slot

    def queue(
        self,
        call_id: str,
        queue: str,
        *,
        caller: str = "13911112222",
        priority: int = 0,
        menu_path: list[str] | None = None,
        collected: dict[str, str] | None = None,
    ) -> str:
        slot = self.arrive(call_id, caller)
        self.publish(
            EventType.call_queued,
            call_id,
            slot,
            queue=queue,
            priority=priority,
            skills=[],
            collected=collected or {},
            menu_path=menu_path or ["main", queue],
        )
        return slot

    def commands(self, call_id: str, kind: str | None = None) -> list[Command]:
        slot = cast(str, self.client.get(self.keys.call_slot(call_id)))
        entries = cast(
            list[tuple[str, dict[str, str]]], self.client.xrange(self.keys.slot_commands(slot))
        )
        found = [Command.from_fields(f) for _id, f in entries]
        return [c for c in found if kind is None or c.type == kind]

    def engine_commands(self, kind: str | None = None) -> list[Command]:
        stream = self.keys.engine_commands  # commands for whichever engine node has an idle slot
        entries = cast(list[tuple[str, dict[str, str]]], self.client.xrange(stream))
        found = [Command.from_fields(f) for _id, f in entries]
        return [c for c in found if kind is None or c.type == kind]

    def offers(self, call_id: str) -> list[int]:
        """Agent ids this call was offered to, in order."""
        return [int(c.data["agent_id"]) for c in self.commands(call_id, "offer")]

    def routing_events(self, kind: str) -> list[CallEvent]:
        entries = cast(list[tuple[str, dict[str, str]]], self.client.xrange(self.keys.events))
        events = [CallEvent.from_fields(f) for _id, f in entries]
        return [e for e in events if e.type == kind and e.node == "routing"]


@pytest.fixture
def engine(ctx: AppContext) -> EngineSide:
    return EngineSide(ctx.redis, ctx.keys)


_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)


def until(ws: WebSocketTestSession, kind: str, *, seconds: float = 10.0) -> dict[str, Any]:
    """The next message of ``kind`` (others skipped), failing after ``seconds``."""
    deadline = datetime.now(UTC) + timedelta(seconds=seconds)
    while True:
        left = (deadline - datetime.now(UTC)).total_seconds()
        assert left > 0, f"no {kind!r} message within {seconds} s"
        message: dict[str, Any] = _pool.submit(ws.receive_json).result(timeout=left)
        if message["type"] == kind:
            return message


class Running:
    def __init__(self, ctx: AppContext, routing: Routing, name: str) -> None:
        self.router = Router(ctx, routing=routing, consumer=name)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.router.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
