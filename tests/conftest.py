"""Shared fixtures: real Redis on a dedicated database, real SQLite and PostgreSQL.

Environment (set by scripts/dev.sh test; defaults suit this repository's CI machine):
  CALLCENTER_TEST_REDIS_URL     default redis://127.0.0.1:6379/15 (flushed around each test)
  CALLCENTER_TEST_POSTGRES_URL  default postgresql://callcenter:callcenter@127.0.0.1:5432/callcenter_test
  CALLCENTER_TEST_WORKER_REDIS_BASE  default 6390: worker gwN's own Redis listens on base+N

In parallel (``pytest -n 2 --dist loadgroup``, as scripts/dev.sh runs it) the first worker
uses these; every other worker gets a Redis server of its own (Redis pub/sub channels are
shared by all databases of a server, and the center's processes talk over them) and a
PostgreSQL database of its own, next to the configured one. Tests that place SIP calls or
drive a browser listen on fixed loopback ports: they all run on one worker, in order
(``xdist_group("sip")``), while the rest spread over the others.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import make_url, text

from callcenter import runtime
from callcenter.app import create_app
from callcenter.context import AppContext, build_context
from callcenter.db import make_engine
from callcenter.demo import seed_demo
from callcenter.migrate import upgrade
from callcenter.testkit.sipp import kill_started
from config.settings import Settings

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw0", "gw1", … under xdist
WORKER_INDEX = int(WORKER.removeprefix("gw") or 0)


def _worker_redis(index: int) -> str:
    """A private ``redis-server`` for worker ``index`` (stopped when the worker exits)."""
    port = int(os.environ.get("CALLCENTER_TEST_WORKER_REDIS_BASE", "6390")) + index
    server = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    atexit.register(server.terminate)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            # the server answering must be this one, not another suite's on the same port
            if client.info("server")["process_id"] == server.pid:
                break
        except redis.ConnectionError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{WORKER}: redis-server on port {port} did not start (taken?)")
        time.sleep(0.05)
    client.close()
    return f"redis://127.0.0.1:{port}/15"


def _worker_postgres(url: str, index: int) -> str:
    """The configured database's twin for worker ``index``, created when missing."""
    base = make_url(url)
    name = f"{base.database}_gw{index}"
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = text("SELECT 1 FROM pg_database WHERE datname = :n")
        if conn.execute(exists, {"n": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


TEST_REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_POSTGRES_URL = os.environ.get(
    "CALLCENTER_TEST_POSTGRES_URL",
    "postgresql://callcenter:callcenter@127.0.0.1:5432/callcenter_test",
)
if WORKER_INDEX > 0:
    TEST_REDIS_URL = _worker_redis(WORKER_INDEX)
    TEST_POSTGRES_URL = _worker_postgres(TEST_POSTGRES_URL, WORKER_INDEX)


def pytest_itemcollected(item: pytest.Item) -> None:
    # here, not in pytest_collection_modifyitems: xdist's own one reads the group first
    if item.get_closest_marker("sip") or item.get_closest_marker("browser"):
        item.add_marker(pytest.mark.xdist_group("sip"))


def reset_postgres(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def no_sipp_left() -> Iterator[None]:
    """A failed test leaves no SIPp holding its port for the next test (a module that starts
    SIPp peers uses it with ``pytestmark = pytest.mark.usefixtures("no_sipp_left")``)."""
    yield
    kill_started()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind (use in data-model tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
    else:
        reset_postgres(TEST_POSTGRES_URL)
        yield TEST_POSTGRES_URL
        reset_postgres(TEST_POSTGRES_URL)


@pytest.fixture(scope="session")
def seeded_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated and demo-seeded once per session (argon2 hashing is slow); copied per test."""
    directory = tmp_path_factory.mktemp("template")
    settings = Settings(environment="test", state_dir=directory, redis_url=TEST_REDIS_URL)
    upgrade(settings.database_url)
    ctx = build_context(settings)
    seed_demo(ctx)
    ctx.close()
    return directory / "callcenter.db"


@pytest.fixture
def settings(tmp_path: Path, seeded_sqlite_template: Path) -> Settings:
    shutil.copy(seeded_sqlite_template, tmp_path / "callcenter.db")
    return Settings(environment="test", state_dir=tmp_path, redis_url=TEST_REDIS_URL)


@pytest.fixture
def ctx(settings: Settings, redis_client: redis.Redis) -> Iterator[AppContext]:
    """A full context on a seeded SQLite copy and the test Redis database."""
    context = build_context(settings)
    runtime.set_context(context)
    yield context
    runtime.set_context(None)
    context.close()


@pytest.fixture
def client(ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx)) as test_client:
        yield test_client


def token(client: TestClient, username: str, password: str | None = None) -> str:
    response = client.post(
        "/api/v1/auth/token", json={"username": username, "password": password or f"pw{username}"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def auth(client: TestClient, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(client, username)}"}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``--dist loadgroup`` every SIP test's id must carry the group xdist schedules by:
    a pytest or xdist upgrade that loses it would spread them over workers sharing ports."""
    if getattr(config.option, "loadgroup", False):  # set in xdist workers only
        lost = [
            i.nodeid for i in items if i.get_closest_marker("xdist_group") and "@" not in i.nodeid
        ]
        if lost:
            raise pytest.UsageError(f"xdist did not group {len(lost)} SIP tests, e.g. {lost[0]}")
