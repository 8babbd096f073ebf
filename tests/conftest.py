"""Shared fixtures: real Redis on a dedicated database, real SQLite and PostgreSQL.

Environment (set by scripts/dev.sh test; defaults suit this repository's CI machine):
  CALLCENTER_TEST_REDIS_URL     default redis://127.0.0.1:6379/15 (flushed around each test)
  CALLCENTER_TEST_POSTGRES_URL  default postgresql://callcenter:callcenter@127.0.0.1:5432/callcenter_test
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text

from callcenter import runtime
from callcenter.app import create_app
from callcenter.context import AppContext, build_context
from callcenter.db import make_engine
from callcenter.demo import seed_demo
from callcenter.migrate import upgrade
from config.settings import Settings

TEST_REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_POSTGRES_URL = os.environ.get(
    "CALLCENTER_TEST_POSTGRES_URL",
    "postgresql://callcenter:callcenter@127.0.0.1:5432/callcenter_test",
)


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
