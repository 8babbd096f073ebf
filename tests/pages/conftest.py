"""Pages fixtures: a seeded SQLite copy, the test Redis, routing on a fixed morning clock (the
day shift is on, so demo agents may go ready whatever the hour the tests run), an in-process
client, and sign-in through the real ``POST /login`` form."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from callcenter import runtime
from callcenter.app import create_app
from callcenter.context import AppContext, build_context
from config.settings import Settings
from cti import services
from cti.models import Department
from cti.routing import Routing
from metrics.http import CONSUMER_WANTED
from ticketing.models import Ticket

CHROMIUM = "/usr/bin/chromium"

# 10:00 in Shanghai: the day (08-20) and middle (09-21) shifts are on.
MORNING = datetime(2026, 11, 30, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


class FixedClock:
    """Routing's clock in these tests: a fixed morning that moves only when told."""

    def __init__(self, start: float = MORNING) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ctx(settings: Settings, redis_client: redis.Redis) -> Iterator[AppContext]:
    context = build_context(settings)
    runtime.set_context(context)
    services.use_routing(
        context,
        Routing(
            context.redis,
            context.keys,
            context.config,
            timezone=settings.timezone,
            clock=FixedClock(),
        ),
    )
    yield context
    runtime.set_context(None)
    context.close()


@pytest.fixture
def client(ctx: AppContext) -> Iterator[TestClient]:
    ctx.services.set(CONSUMER_WANTED, False)
    with TestClient(create_app(ctx)) as test_client:
        yield test_client


def sign_in(client: TestClient, username: str, password: str | None = None, **form: str) -> str:
    """Signs in with the login form; returns where the server redirected."""
    response = client.post(
        "/login",
        data={"username": username, "password": password or f"pw{username}", **form},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


def csrf_of(client: TestClient, page: str = "/") -> str:
    """The session's CSRF token as a page embeds it."""
    html = client.get(page).text
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def insert_tickets(ctx: AppContext, count: int, *, department: str = "engineering") -> None:
    """``count`` dispatched tickets in one bulk insert (numbers GD20261130-P00001…), for paging."""
    now = datetime(2026, 11, 30, 2, 0, tzinfo=ZoneInfo("UTC"))
    with ctx.sessions.begin() as session:
        dept_id = session.scalar(select(Department.id).where(Department.code == department))
        session.execute(
            insert(Ticket),
            [
                {
                    "number": f"GD20261130-P{i:05d}",
                    "category": "paid_home_repair",
                    "department_id": dept_id,
                    "track": "general",
                    "status": "dispatched",
                    "reporter": f"业主{i}",
                    "unit": f"{i % 9 + 1}-1-{i:04d}",
                    "what": "水龙头漏水" if i % 2 else "门锁损坏",
                    "when_text": "今天上午",
                    "contact": f"139{i:08d}",
                    "description": "",
                    "channel": "api",
                    "sla_class": "3h",
                    "overdue": i % 10 == 0,
                    "escalation_level": 0,
                    "created_by": "bulk",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(1, count + 1)
            ],
        )


# ---------------------------------------------------------------- browser tests (marker browser)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def live_server(ctx: AppContext) -> Iterator[str]:
    ctx.services.set(CONSUMER_WANTED, False)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=15)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield chromium
        finally:
            chromium.close()


def signed_in_page(
    browser: Any, live_server: str, username: str, landing: str, height: int = 1200
) -> tuple[Any, Any, list[str]]:
    """A zh-CN Chromium context and page signed in as ``username`` through the sign-in form
    (on ``landing``), and the list the page's script errors are added to."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": height})
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.goto(f"{live_server}/login")
    page.fill("#username", username)
    page.fill("#password", f"pw{username}")
    page.click("#login-submit")
    page.wait_for_url(f"{live_server}{landing}")
    return context, page, script_errors


@pytest.fixture
def admin_page(live_server: str, browser: Any) -> Iterator[tuple[Any, list[str]]]:
    """A zh-CN Chromium page signed in as the admin (on /admin), and the script errors seen."""
    context, page, script_errors = signed_in_page(browser, live_server, "admin", "/admin")
    yield page, script_errors
    context.close()
