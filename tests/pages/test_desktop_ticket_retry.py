"""The agent desktop's ticket form across a cut, in a real Chromium (marker ``browser``; run
under the SIP lock): the first POST reaches the server and registers the ticket, but its answer
is lost and the browser gets 503 ``database-unavailable`` instead (what a commit cut by a
database restart looks like to a client). The page says it is retrying, in zh-CN and English,
sends the same Idempotency-Key again after Retry-After, and shows the one ticket stored.
Screenshots go to ``<tmp_path>/screenshots/``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from callcenter.context import AppContext
from tests.pages.conftest import signed_in_page
from ticketing.models import Ticket

pytestmark = pytest.mark.browser

DOWN = json.dumps(
    {
        "error_id": "database-unavailable",
        "message": "数据库暂时无法访问，请稍后重试 / the database is not answering",
        "details": {"retry_after": 1},
    }
)


def _tickets(ctx: AppContext) -> int:
    with ctx.sessions() as session:
        return session.scalar(select(func.count()).select_from(Ticket)) or 0


def test_a_ticket_whose_answer_was_cut_is_retried_with_its_key_and_stored_once(
    ctx: AppContext, live_server: str, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    shots = tmp_path / "screenshots"
    shots.mkdir()
    context, page, script_errors = signed_in_page(browser, live_server, "1001", "/desktop", 1300)
    keys: list[str | None] = []

    def cut_the_first_answer(route: Any, request: Any) -> None:
        if request.method != "POST":
            route.continue_()
            return
        keys.append(request.headers.get("idempotency-key"))
        if len(keys) % 2 == 1:
            route.fetch()  # the server registers the ticket and commits ...
            route.fulfill(  # ... but the browser is told the database did not answer
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body=DOWN,
            )
        else:
            route.continue_()

    page.route("**/api/v1/tickets", cut_the_first_answer)
    for round_, (lang, retrying) in enumerate(
        (("zh-CN", "数据库暂时无法访问，1 秒后自动重试保存"), ("en", "trying again in 1 s"))
    ):
        page.goto(f"{live_server}/desktop?lang={lang}")
        form = page.locator("#ticket-form")
        form.locator("[name=reporter]").fill("张伟")
        form.locator("[name=unit]").fill("3-2-1201")
        form.locator("[name=what]").fill(f"楼道水管漏水 {lang}")  # another ticket, another key
        form.locator("[name=when]").fill("今天上午9点")
        form.locator("[name=contact]").fill("13800138000")
        page.click("#save-ticket")
        expect(page.locator("#ticket-result")).to_contain_text(retrying, timeout=5_000)
        expect(page.locator("#save-ticket")).to_be_disabled()
        page.screenshot(path=str(shots / f"desktop-ticket-retrying-{lang}.png"), full_page=True)
        expect(page.locator("#saved-ticket-number")).to_be_visible(timeout=10_000)
        expect(page.locator("#save-ticket")).to_be_enabled()
        page.screenshot(path=str(shots / f"desktop-ticket-saved-{lang}.png"), full_page=True)
        first, retry = keys[2 * round_ : 2 * round_ + 2]
        assert first is not None and re.fullmatch(r"desk-[0-9a-f]{32}", first)
        assert retry == first
        assert _tickets(ctx) == round_ + 1  # the retry found the ticket: not stored twice

    assert keys[0] != keys[2]
    with ctx.sessions() as session:
        numbers = session.scalars(select(Ticket.number).order_by(Ticket.id)).all()
    assert page.locator("#saved-ticket-number").inner_text() == numbers[-1]
    assert script_errors == []
    context.close()
