"""The /qa page: signed in with the session cookie like every page (QA, leads and admins; the
others get the 403 page, signed-out users the sign-in redirect), rendered in zh-CN by default
and English on request, its script a static file under the strict CSP. In a real Chromium a QA
user signs in through the /login form, lands on /qa, finds a recording, plays it through a
replay link, seeks on the waveform (a ranged request, audited), reads the call's timeline and
saves a score, with no CSP violation reported."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.app import create_app
from callcenter.context import AppContext
from callcenter.models import AuditEntry
from metrics.http import CONSUMER_WANTED
from recordings import jobs
from tests.recordings.conftest import MadeCall, _free_port


def _sign_in(client: TestClient, username: str) -> str:
    """Signs in through the real login form; returns where the server sent the browser."""
    response = client.post(
        "/login",
        data={"username": username, "password": f"pw{username}"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return str(response.headers["location"])


@pytest.fixture
def client(ctx: AppContext) -> Iterator[TestClient]:
    ctx.services.set(CONSUMER_WANTED, False)
    with TestClient(create_app(ctx)) as test_client:
        yield test_client


def test_page_renders_in_chinese_and_english(client: TestClient) -> None:
    assert _sign_in(client, "qa1") == "/qa"
    page = client.get("/qa")
    assert page.status_code == 200
    assert "录音质检" in page.text and "问候语" in page.text and "投诉" in page.text
    assert "有什么事我可以帮您吗？" in page.text
    # the shared base: nav with the QA link, the language switch, the session's CSRF token
    assert 'href="/qa?lang=zh-CN"' in page.text and 'id="switch-language"' in page.text
    assert re.search(r'<meta name="csrf-token" content="[^"]{20,}">', page.text)
    # the script is a static file; nothing inline runs, nothing keeps a token in the tab
    assert '<script src="/static/pages/qa.js"></script>' in page.text
    assert "sessionStorage" not in page.text and "Bearer" not in page.text
    assert not re.search(r"<script(?![^>]*(src=|type=\"application/json\"))", page.text)
    assert " style=" not in page.text and " onclick=" not in page.text
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"])
    assert nonce and f'<style nonce="{nonce.group(1)}">' in page.text
    english = client.get("/qa", params={"lang": "en"})
    assert "Recordings and QA" in english.text and "Greeting" in english.text
    assert '"lang": "en"' in english.text
    script = client.get("/static/pages/qa.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert "CC.api" in script.text and "sessionStorage" not in script.text


@pytest.mark.parametrize(
    ("username", "status"),
    [("qa1", 200), ("lead1", 200), ("admin", 200), ("1001", 403), ("eng1", 403)],
)
def test_who_may_open_the_qa_page(client: TestClient, username: str, status: int) -> None:
    _sign_in(client, username)
    page = client.get("/qa")
    assert page.status_code == status, page.text
    if status == 403:
        assert "无权访问" in page.text and "您的角色不能打开此页面" in page.text
        assert 'href="/qa' not in page.text  # no nav link to a page the role may not open
    else:
        assert 'id="qa-data"' in page.text and 'href="/qa?lang=zh-CN"' in page.text


def test_signed_out_qa_page_redirects_to_login(client: TestClient) -> None:
    response = client.get("/qa", params={"lang": "en"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fqa%3Flang%3Den&lang=en"
    assert "qa-data" not in response.text


@pytest.fixture
def live_server(ctx: AppContext) -> Iterator[str]:
    ctx.services.set(CONSUMER_WANTED, False)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


SCORE_ITEMS = (
    "greeting",
    "identify_caller",
    "understanding",
    "accuracy",
    "resolution",
    "tone",
    "closing",
)


@pytest.mark.browser
def test_find_play_seek_and_score_in_chromium(
    ctx: AppContext, live_server: str, make_call: Callable[..., MadeCall], tmp_path: Path
) -> None:
    from playwright.sync_api import ConsoleMessage, Error, expect, sync_playwright

    made = make_call(agent="1004", caller="13600136000", tone_seconds=4, silence_seconds=4)
    jobs.process_recording(made.recording_id)
    console_errors: list[str] = []
    page_errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    def on_page_error(error: Error) -> None:
        page_errors.append(str(error))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", on_console)
            page.on("pageerror", on_page_error)
            page.goto(f"{live_server}/login")
            page.fill("#username", "qa1")
            page.fill("#password", "pwqa1")
            page.click("#login-submit")
            page.wait_for_url(f"{live_server}/qa")
            expect(page.locator("#current-user")).to_have_text("qa1")
            page.fill("#f-caller", "13600136000")
            page.click("#search-submit")
            row = page.locator(f"#result-rows tr[data-id='{made.recording_id}']")
            expect(row).to_contain_text("1004")
            expect(row).to_contain_text("报修")
            page.locator(f"button.play[data-id='{made.recording_id}']").click()
            expect(page.locator("#timeline li[data-type='agent_answered']")).to_contain_text(
                "坐席接听"
            )
            page.wait_for_function(
                "() => document.getElementById('player').duration > 7.5", timeout=15_000
            )
            src = page.evaluate("document.getElementById('player').src")
            assert src.startswith(f"{live_server}/api/v1/recordings/play/"), src
            # seek by clicking the waveform at three quarters
            box = page.locator("#waveform").bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
            page.wait_for_function(
                "() => Math.abs(document.getElementById('player').currentTime - 6.0) < 0.3"
                " && document.getElementById('player').readyState >= 2",
                timeout=15_000,
            )
            page.evaluate("document.getElementById('player').play()")
            page.wait_for_function(
                "() => document.getElementById('player').currentTime > 6.3", timeout=15_000
            )
            for code in SCORE_ITEMS:
                page.fill(f"#score-{code}", "5")
            page.fill("#score-comment", "礼貌用语规范")
            page.click("#score-submit")
            expect(page.locator("#score-total")).to_contain_text("100", timeout=10_000)
            assert page.evaluate("sessionStorage.length + localStorage.length") == 0
            page.screenshot(path=str(tmp_path / "qa-page.png"), full_page=True)
        finally:
            browser.close()
    csp = [text for text in console_errors if "Content Security Policy" in text]
    assert not csp, csp
    assert not page_errors, page_errors
    assert not console_errors, console_errors
    with ctx.sessions() as session:
        plays = list(
            session.scalars(
                select(AuditEntry.details).where(
                    AuditEntry.action == "recording.play",
                    AuditEntry.object_id == made.recording_id,
                )
            )
        )
        evaluations = list(
            session.scalars(
                select(AuditEntry.actor).where(AuditEntry.action == "evaluation.created")
            )
        )
    assert plays, "the player's requests were not audited"
    # the <audio> element fetched through HTTP Range (206), the Opus transcode by default
    assert all(play["ranged"] and play["format"] == "opus" for play in plays), plays
    assert evaluations == ["qa1"], evaluations
