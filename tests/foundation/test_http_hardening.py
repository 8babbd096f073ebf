"""What every HTTP answer carries and hides: security headers (a CSP whose inline scripts run
by nonce only), no exception text in errors, no query strings in the access log."""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from callcenter.app import create_app
from callcenter.auth import issue_token
from callcenter.context import AppContext, build_context
from callcenter.models import User
from config.settings import Settings
from tests.conftest import TEST_REDIS_URL, auth
from tests.foundation.test_up import free_port

ROOT = Path(__file__).resolve().parents[2]


def assert_security_headers(response: httpx.Response) -> str:
    """The headers every answer carries; returns the CSP."""
    csp = response.headers.get("content-security-policy", "")
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("default-src") == ["'self'"], csp
    assert directives.get("frame-ancestors") == ["'none'"], csp
    assert directives.get("object-src") == ["'none'"], csp
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("x-frame-options") == "DENY"
    assert response.headers.get("referrer-policy") == "same-origin"
    assert re.fullmatch(r"[0-9a-f]{16,32}", response.headers.get("x-request-id", ""))
    return csp


def test_security_headers_on_pages_api_and_errors(client: TestClient) -> None:
    for path in ("/login", "/wallboard", "/", "/openapi.json", "/healthz", "/no-such-page"):
        assert_security_headers(client.get(path))
    assert_security_headers(client.get("/api/v1/me"))  # 401
    me = client.get("/api/v1/me", headers=auth(client, "lead1"))
    assert me.status_code == 200
    assert_security_headers(me)
    token = client.post("/api/v1/auth/token", json={"username": "qa1", "password": "pwqa1"})
    assert token.headers.get("cache-control") == "no-store"  # a bearer token is never cached


@pytest.mark.parametrize("path", ["/login", "/wallboard"])
def test_inline_scripts_and_styles_run_by_nonce_only(client: TestClient, path: str) -> None:
    first, second = client.get(path), client.get(path)
    csp = assert_security_headers(first)
    nonce = re.search(r"script-src 'self' 'nonce-([A-Za-z0-9_-]{16,})'", csp)
    assert nonce, csp
    assert f"style-src 'self' 'nonce-{nonce.group(1)}'" in csp
    assert "unsafe-inline" not in csp
    # Inline code needs the nonce; files from 'self' (src=) and JSON data blocks (never run)
    # do not.
    tags = [
        (name, attributes)
        for name, attributes in re.findall(r"<(script|style)\b([^>]*)>", first.text)
        if "src=" not in attributes and "application/json" not in attributes
    ]
    assert tags, "the page has inline scripts and styles to check"
    for name, attributes in tags:
        assert f'nonce="{nonce.group(1)}"' in attributes, f"<{name}{attributes}> has no nonce"
    assert not re.search(r"\son[a-z]+\s*=", first.text), "inline event handlers are blocked"
    assert not re.search(r"\sstyle\s*=", first.text), "inline style attributes are blocked"
    assert nonce.group(1) not in second.headers["content-security-policy"]  # one per answer


def test_unhandled_error_answers_500_naming_the_request_only(
    ctx: AppContext, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    headers = auth(client, "admin")
    with ctx.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_log"))  # the database changes underneath
    with caplog.at_level(logging.ERROR, logger="callcenter.http"):
        response = client.get("/api/v1/audit", headers=headers)
    assert response.status_code == 500
    body = response.json()
    request_id = response.headers["x-request-id"]
    assert body == {
        "error_id": "internal-error",
        "message": f"服务器内部错误（请求编号 {request_id}）/ internal error; the server log "
        f"has the details under request {request_id}",
        "details": {"request_id": request_id},
    }
    assert "audit_log" not in response.text and "OperationalError" not in response.text
    assert_security_headers(response)
    logged = "\n".join(r.getMessage() + "\n" + (r.exc_text or "") for r in caplog.records)
    assert request_id in logged and "no such table: audit_log" in logged


def test_redis_failure_text_stays_in_the_server(settings: Settings) -> None:
    broken = build_context(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    with broken.sessions() as session:
        lead = session.scalar(select(User).where(User.username == "lead1"))
        assert lead is not None
        token = issue_token(settings.secret_key, lead, 60)
    with TestClient(create_app(broken)) as client:
        wallboard = client.get("/api/v1/wallboard", headers={"Authorization": f"Bearer {token}"})
        signin = client.post("/api/v1/auth/token", json={"username": "qa1", "password": "pwqa1"})
    broken.close()
    assert (
        wallboard.status_code == 503 and wallboard.json()["error_id"] == "metrics.live-unavailable"
    )
    assert signin.status_code == 503 and signin.json()["error_id"] == "unavailable"
    for response in (wallboard, signin):
        assert "Connection refused" not in response.text and "Errno" not in response.text


@pytest.fixture
def api_process(tmp_path: Path, settings: Settings) -> Iterator[tuple[str, Path]]:
    """``callcenter api`` as deployed, on a copy of the seeded database; yields (url, log)."""
    state = tmp_path / "api-state"
    state.mkdir()
    shutil.copy(settings.state_dir / "callcenter.db", state / "callcenter.db")
    port = free_port()
    env = {
        **os.environ,
        "CALLCENTER_ENVIRONMENT": "test",
        "CALLCENTER_STATE_DIR": str(state),
        "CALLCENTER_REDIS_URL": TEST_REDIS_URL,
        "CALLCENTER_HTTP__PORT": str(port),
    }
    log_path = tmp_path / "api.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "api"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                httpx.get(f"{url}/openapi.json", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        yield url, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_query_strings_stay_out_of_the_access_log(
    api_process: tuple[str, Path], redis_client: object
) -> None:
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    url, log_path = api_process
    secret = "secret-token-value-7f3a"
    assert httpx.get(f"{url}/openapi.json?token={secret}").status_code == 200
    assert httpx.get(f"{url}/api/v1/me?token={secret}&x=1").status_code == 401
    assert httpx.get(f"{url}/login?next=/wallboard&token={secret}").status_code == 200
    ws_url = url.replace("http://", "ws://") + f"/api/v1/agents/me/events?token={secret}"
    try:
        with connect(ws_url, open_timeout=5) as socket:
            socket.recv(timeout=5)
    except (InvalidStatus, WebSocketException, TimeoutError):
        pass  # refused: a forged token
    deadline = time.monotonic() + 10
    while "GET /login" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    logged = log_path.read_text()
    assert '"GET /openapi.json HTTP/1.1" 200' in logged, logged
    assert '"GET /api/v1/me HTTP/1.1" 401' in logged, logged
    assert "/api/v1/agents/me/events" in logged, logged  # the socket was logged, without its query
    assert secret not in logged, logged
    assert "token=" not in logged, logged


class _Server:
    def __init__(self, ctx: AppContext) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(ctx), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.mark.browser
def test_pages_work_under_the_csp_in_chromium(ctx: AppContext) -> None:
    """Signing in and the live wallboard still work in a real browser, which reports no CSP
    violation (an inline script without the nonce would be refused and reported)."""
    from playwright.sync_api import expect, sync_playwright

    with _Server(ctx) as base, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu"],
        )
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"{base}/wallboard")
            page.wait_for_url("**/login**")
            page.fill("#username", "lead1")
            page.fill("#password", "pwlead1")
            page.click("#login-submit")
            page.wait_for_url("**/wallboard**")
            expect(page.locator("#general-waiting")).to_have_text("0", timeout=10_000)
            page.evaluate(
                "() => { const s = document.createElement('script');"
                " s.textContent = 'window.injected = 1'; document.body.appendChild(s); }"
            )
            page.wait_for_timeout(200)
            assert page.evaluate("() => window.injected") is None  # no nonce: refused
        finally:
            browser.close()
    violations = [m for m in console if "Content Security Policy" in m]
    assert len(violations) == 1 and "script" in violations[0], console
