"""What the center's users read, in a real Chromium (marker ``browser``; run under the SIP
lock): times in the center's own clock (Asia/Shanghai), never UTC ISO text; departments and
shifts by their configured names in the page's language, never their codes; the files' own
checks and the SIP edge's refusals in Chinese on the zh-CN rules editor; and a screen pop
built without the customer records (the database down) says so on the agent desktop.
Screenshots go to ``<tmp_path>/screenshots/``."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from admin import config_versions
from callcenter.context import AppContext
from callcenter.db import transaction
from callcenter.models import ConfigVersion
from cti import screenpop
from cti.models import Agent
from tests.pages.conftest import signed_in_page, wait_for

pytestmark = pytest.mark.browser

# 19:37:35 UTC on 6 December is 03:37 on 7 December in Shanghai
STORED_AT = datetime(2026, 12, 6, 19, 37, 35, tzinfo=UTC)
LOCAL = "2026-12-07 03:37"


def _shots(tmp_path: Path) -> Path:
    shots = tmp_path / "screenshots"
    shots.mkdir(exist_ok=True)
    return shots


def _current(ctx: AppContext, name: str) -> dict[str, Any]:
    """The file's document as the editor opens it."""
    with ctx.sessions() as session:
        return config_versions.current(session, ctx, name=name)[1]


def test_admin_pages_show_times_in_the_centers_clock(
    ctx: AppContext, live_server: str, admin_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page, script_errors = admin_page
    document = _current(ctx, "queues")
    document["queues"]["general"]["ring_timeout_seconds"] = 25
    with transaction(ctx.sessions) as session:
        config_versions.store(
            session, ctx, actor="admin", name="queues", document=copy.deepcopy(document)
        )
        session.execute(update(ConfigVersion).values(at=STORED_AT))

    page.goto(f"{live_server}/admin/config/queues")
    row = page.locator('#history tr[data-version="1"]')
    expect(row.locator("td").nth(2)).to_have_text(LOCAL)
    page.screenshot(path=str(_shots(tmp_path) / "admin-config-history.png"), full_page=True)
    page.goto(f"{live_server}/admin")
    expect(page.locator('tr[data-file="queues"] td').nth(3)).to_have_text(LOCAL)
    for path in ("/admin", "/admin/config/queues", "/admin/config/queues?lang=en"):
        page.goto(live_server + path)
        text = page.locator("body").inner_text()
        assert "+00:00" not in text and "T19:37" not in text, path
    assert script_errors == []


def test_the_people_list_names_departments_and_shifts_in_the_pages_language(
    live_server: str, admin_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page, script_errors = admin_page
    for lang, department, shift in (
        ("zh-CN", "客服助理", "中班"),
        ("en", "Customer-service assistant", "Middle"),
    ):
        page.goto(f"{live_server}/admin/people?lang={lang}")
        expect(page.locator('tr[data-username="csa1"] td.department')).to_have_text(department)
        expect(page.locator('tr[data-username="1005"] td.shift')).to_have_text(shift)
        table = page.locator("#people").inner_text()
        for code in ("cs_assistant", "engineering", "\tday\t", "\tmid\t", "\tnight\t"):
            assert code not in table, (lang, code)
        page.screenshot(path=str(_shots(tmp_path) / f"admin-people-{lang}.png"), full_page=True)
    assert script_errors == []


def _save_json(page: Any, document: dict[str, Any]) -> None:
    page.click("#view-json")
    page.fill("#config-json", json.dumps(document, ensure_ascii=False))
    page.click("#config-save")


def test_the_files_checks_and_the_edges_refusals_are_in_chinese_on_the_editor(
    ctx: AppContext, live_server: str, admin_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page, script_errors = admin_page
    shifts, telephony = _current(ctx, "shifts"), _current(ctx, "telephony")
    shifts["shifts"]["day"]["end"] = shifts["shifts"]["day"]["start"]  # shift_empty
    shifts["shifts"]["night"]["overnight"] = False  # shift_wraps: 20:00-08:00
    telephony["trunks"] = {"carrier": {"host": "192.0.2.10", "outbound_prefix": "12a"}}
    expected = {
        ("shifts", "zh-CN"): {
            "shifts.day.end": "取值无效：班次的开始和结束时间不能相同",
            "shifts.night.overnight": "取值无效：班次结束（08:00）早于开始（20:00）；"
            "跨过午夜的班次请设 overnight = true",
        },
        ("shifts", "en"): {
            "shifts.day.end": "a shift cannot start and end at the same time",
            "shifts.night.overnight": "the shift ends (08:00) before it starts (20:00)",
        },
        ("telephony", "zh-CN"): {
            "trunks.carrier.outbound_prefix": "SIP 边缘无法采用：中继 carrier 的 "
            "outbound_prefix '12a' 只能包含数字",
        },
        ("telephony", "en"): {
            "trunks.carrier.outbound_prefix": "the SIP edge cannot use it: telephony.toml: "
            "trunks.carrier.outbound_prefix: '12a': digits only",
        },
    }
    documents = {"shifts": shifts, "telephony": telephony}
    for (file, lang), problems in expected.items():
        page.goto(f"{live_server}/admin/config/{file}?lang={lang}")
        _save_json(page, documents[file])
        expect(page.locator("#problem-list li")).to_have_count(len(problems), timeout=10_000)
        for key, message in problems.items():
            expect(page.locator(f'#problem-list li[data-key="{key}"]')).to_contain_text(message)
        listed = page.locator("#problem-list").inner_text()
        if lang == "zh-CN":
            for english in ("a shift cannot", "the shift ends", "digits only", "SIP edge"):
                assert english not in listed, english
        page.screenshot(path=str(_shots(tmp_path) / f"config-{file}-{lang}.png"), full_page=True)
    with ctx.sessions() as session:
        assert config_versions.current(session, ctx, name="shifts")[0] == 0
    assert script_errors == []


def _offer(call_id: str, record: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "offer",
        "call_id": call_id,
        "queue": {"code": "repair", "name": {"zh-CN": "报修", "en": "Repairs"}},
        "wait_seconds": 12.0,
        "menu_path": [],
        "digits": {},
        **record,
    }


def test_the_desktop_says_when_the_customer_records_could_not_be_read(
    ctx: AppContext, live_server: str, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with ctx.sessions() as session:
        agent_id = session.scalar(select(Agent.id).where(Agent.extension == "1001"))
    assert agent_id is not None
    channel = ctx.keys.agent_channel(agent_id)
    context, page, script_errors = signed_in_page(browser, live_server, "1001", "/desktop", 1300)
    for lang, notice, not_read in (
        ("zh-CN", "客户资料暂时无法读取（数据库未响应）", "未能读取"),
        ("en", "Customer records could not be read (the database did not answer)", "not read"),
    ):
        page.goto(f"{live_server}/desktop?lang={lang}")
        wait_for(lambda: page.locator("body[data-socket=open]").count())
        pop = _offer(f"call-down-{lang}", screenpop.unread("13800138000"))
        ctx.redis.publish(channel, json.dumps(pop, ensure_ascii=False))
        expect(page.locator("#pop-unavailable")).to_be_visible(timeout=10_000)
        expect(page.locator("#pop-unavailable")).to_contain_text(notice)
        expect(page.locator("#pop-caller")).to_have_text("13800138000")
        expect(page.locator("#pop-name")).to_have_text(not_read)
        expect(page.locator("#pop-open-tickets")).to_have_text(not_read)
        expect(page.locator("#new-customer")).to_be_hidden()  # the caller may well be known
        page.screenshot(path=str(_shots(tmp_path) / f"desktop-unread-{lang}.png"), full_page=True)

    # the next pop, with the records, has no notice; its recent calls in the center's clock
    with ctx.sessions() as session:
        record = screenpop.lookup(session, "13800138000")
    record["recent_calls"] = [
        {"arrived_at": STORED_AT.isoformat(), "queue": "repair", "outcome": "answered"}
    ]
    ctx.redis.publish(channel, json.dumps(_offer("call-up", record), ensure_ascii=False))
    expect(page.locator("#pop-name")).to_have_text("张伟", timeout=10_000)
    expect(page.locator("#pop-unavailable")).to_be_hidden()
    expect(page.locator("#pop-recent-calls")).to_contain_text(LOCAL + " · repair · answered")
    assert script_errors == []
    context.close()
