"""The /qa page: rendered in zh-CN by default and English on request; in a real Chromium it
finds a recording, plays it through a replay link, seeks on the waveform (a ranged request,
audited), shows the call's timeline and saves a score."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.app import create_app
from callcenter.context import AppContext
from callcenter.models import AuditEntry
from pages import qa as qa_page
from recordings import jobs
from tests.recordings.conftest import MadeCall, _free_port


def _app(ctx: AppContext) -> FastAPI:
    """The app with the QA page mounted as callcenter.app.PAGE_ROUTERS will mount it."""
    app = create_app(ctx)
    app.include_router(qa_page.router)
    return app


def test_page_renders_in_chinese_and_english(ctx: AppContext) -> None:
    with TestClient(_app(ctx)) as client:
        page = client.get("/qa")
        assert page.status_code == 200
        assert "录音质检" in page.text and "问候语" in page.text and "投诉" in page.text
        assert "有什么事我可以帮您吗？" in page.text
        english = client.get("/qa", params={"lang": "en"})
        assert "Recordings and QA" in english.text and "Greeting" in english.text


@pytest.fixture
def live_server(ctx: AppContext) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(_app(ctx), host="127.0.0.1", port=port, log_level="warning")
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


@pytest.mark.browser
def test_find_play_seek_and_score_in_chromium(
    ctx: AppContext, live_server: str, make_call: Callable[..., MadeCall]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    made = make_call(agent="1004", caller="13600136000", tone_seconds=4, silence_seconds=4)
    jobs.process_recording(made.recording_id)
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
            page = browser.new_page()
            page.goto(f"{live_server}/qa")
            page.wait_for_url("**/login**")
            page.fill("#username", "qa1")
            page.fill("#password", "pwqa1")
            page.click("#login-submit")
            page.wait_for_url("**/qa**")
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
                "document.getElementById('player').duration > 7.5", timeout=15_000
            )
            # seek by clicking the waveform at three quarters
            box = page.locator("#waveform").bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2)
            page.wait_for_function(
                "Math.abs(document.getElementById('player').currentTime - 6.0) < 0.3"
                " && document.getElementById('player').readyState >= 2",
                timeout=15_000,
            )
            page.evaluate("document.getElementById('player').play()")
            page.wait_for_function(
                "document.getElementById('player').currentTime > 6.3", timeout=15_000
            )
            for code in (
                "greeting",
                "identify_caller",
                "understanding",
                "accuracy",
                "resolution",
                "tone",
                "closing",
            ):
                page.fill(f"#score-{code}", "5")
            page.click("#score-submit")
            expect(page.locator("#score-total")).to_contain_text("100", timeout=10_000)
        finally:
            browser.close()
    with ctx.sessions() as session:
        plays = [
            details
            for details in session.scalars(
                select(AuditEntry.details).where(
                    AuditEntry.action == "recording.play",
                    AuditEntry.object_id == made.recording_id,
                )
            )
        ]
    assert plays, "the player's requests were not audited"
    # the <audio> element fetched through HTTP Range (206), the Opus transcode by default
    assert all(play["ranged"] and play["format"] == "opus" for play in plays), plays
