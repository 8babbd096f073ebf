"""Fixtures for ticket tests: contexts on edited copies of the config files, on SQLite or
PostgreSQL, with the test Redis database installed as the jobs' runtime context."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from callcenter import runtime
from callcenter.app import create_app
from callcenter.context import AppContext, build_context
from callcenter.db import make_engine
from callcenter.demo import seed_demo
from callcenter.migrate import upgrade
from config.settings import DEFAULT_CONFIG_DIR, Settings
from tests.conftest import TEST_POSTGRES_URL, reset_postgres

MakeCtx = Callable[..., AppContext]


TICKET_TABLES = (
    "webhook_deliveries, callback_attempts, callbacks, work_orders, ticket_events, "
    "ticket_idempotency_keys, tickets, ticket_number_counters"
)


def _clear_postgres_tickets() -> bool:
    """Reuse an already migrated and seeded PostgreSQL database (seeding hashes passwords,
    which is slow): empty the ticket tables and say so; False when it must be rebuilt."""
    engine = make_engine(TEST_POSTGRES_URL)
    try:
        with engine.begin() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            users = conn.execute(text("SELECT count(*) FROM users")).scalar()
            if version is None or not users:
                return False
            conn.execute(text(f"TRUNCATE {TICKET_TABLES} RESTART IDENTITY CASCADE"))
            return True
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()


@pytest.fixture
def make_ctx(settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> Iterator[MakeCtx]:
    """make_ctx(**{"callbacks.toml": text}) → a context whose config files are the defaults
    with the given files replaced; ``postgres=True`` uses the PostgreSQL test database."""
    made: list[AppContext] = []

    def make(postgres: bool = False, **files: str) -> AppContext:
        directory = tmp_path / f"config{len(made)}"
        shutil.copytree(DEFAULT_CONFIG_DIR, directory)
        for name, content in files.items():
            (directory / name).write_text(content, encoding="utf-8")
        update: dict[str, object] = {"config_dir": directory}
        if postgres:
            seeded = _clear_postgres_tickets()
            if seeded:
                upgrade(TEST_POSTGRES_URL)  # a no-op unless a newer migration arrived
            else:
                reset_postgres(TEST_POSTGRES_URL)
                upgrade(TEST_POSTGRES_URL)
            update["database_url"] = TEST_POSTGRES_URL
        ctx = build_context(settings.model_copy(update=update))
        if postgres and not seeded:
            seed_demo(ctx)
        runtime.set_context(ctx)
        made.append(ctx)
        return ctx

    yield make
    runtime.set_context(None)
    for ctx in made:
        ctx.close()


@pytest.fixture
def client_for() -> Iterator[Callable[[AppContext], TestClient]]:
    clients: list[TestClient] = []

    def make(ctx: AppContext) -> TestClient:
        client = TestClient(create_app(ctx))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)
