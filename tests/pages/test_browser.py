"""The pages in a real Chromium (Playwright, headless, Debian's /usr/bin/chromium), against
the real app on uvicorn, the router as it runs in production, and a real call: the engine
(pjsua2 slots) behind its Kamailio edge, a SIPp caller dialling the hotline and walking the
menu, SIPp softphones registered at the edge as 1001 (the agent) and 1012 (the lead's phone).

1001 signs in and goes ready; 13800138000 (张伟) calls and presses 1 for repair, keys the room;
the pop shows 张伟 while 1001's softphone still rings; the agent saves a repair ticket from the
pop; eng1 sees it on /tickets; the lead sees 1001 on the call on /lead and listens (the engine
dials the lead's phone, which answers); the agent hangs up from the desktop (the caller gets
the BYE). Refusals: other roles' pages, a POST without the CSRF token, a socket after signing
out. Screenshots of every page go to the test's tmp_path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.testkit.rtp import tone_pcap
from callcenter.testkit.scenarios import agent_scenario, caller_scenario
from callcenter.testkit.sipp import finished, kill_started, sipp, sipp_agent
from cti import services
from cti.models import Agent
from cti.router import Router
from cti.routing import Routing
from tests.cti.sipcases import Plan, morning_routing, register, start_behind_edge
from tests.engine.conftest import (  # noqa: F401 (fixtures used by name)
    EngineProcess,
    call_events,
    call_of,
    engine_config_dir,
    pcaps,
    prompt_cache,
    start_engine,
)
from tests.pages.conftest import wait_for
from ticketing.models import Ticket

pytestmark = [pytest.mark.browser, pytest.mark.sip, pytest.mark.usefixtures("no_sipp_left")]

# This test's own addresses (apart from the other SIP tests'): the edge and slots on
# 127.0.0.5:18700+, softphones on 127.0.0.6, the caller on 127.0.0.7.
PLAN = Plan(18700, 44400, 48700)

# Opens the agent socket from the page and reports whether the server accepted it.
OPENS_SOCKET = """() => new Promise((resolve) => {
  const ws = new WebSocket(location.origin.replace("http", "ws") + "/api/v1/agents/me/events");
  ws.onopen = () => { ws.close(); resolve({opened: true}); };
  ws.onclose = () => resolve({opened: false});
})"""


@pytest.fixture
def routing(ctx: AppContext) -> Routing:
    """Routing in real time (the engine's timers are real), read as 10:00 in Shanghai."""
    return morning_routing(ctx)


@pytest.fixture
def router(ctx: AppContext, routing: Routing) -> Iterator[Router]:
    """The routing service consuming the event stream, as ``callcenter router`` runs it."""
    running = Router(ctx, routing=routing, consumer="pages-router")
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    yield running
    stop.set()
    thread.join(timeout=10)


def sign_in(page: Any, base: str, username: str, password: str | None = None) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password or f"pw{username}")
    page.click("#login-submit")


def test_a_real_call_pops_before_the_answer_then_ticket_and_lead_in_a_real_browser(
    ctx: AppContext,
    live_server: str,
    routing: Routing,
    router: Router,
    browser: Any,
    tmp_path: Path,
    start_engine: Callable[..., EngineProcess],  # noqa: F811
    pcaps: dict[str, Path],  # noqa: F811
    redis_client: redis.Redis,
) -> None:
    from playwright.sync_api import expect

    shots = tmp_path / "screenshots"
    shots.mkdir()
    agent_id = _agent_id(ctx, "1001")
    # the engine behind its edge; routing (ctx) dials the agents there
    start_behind_edge(
        start_engine,
        ctx,
        host=PLAN.host,
        edge_port=PLAN.base,
        slot_base_port=PLAN.slot_base_port,
        rtp_base_port=PLAN.rtp_base,
        lines=3,
        spares=2,
    )
    # 1001's softphone rings 5 s before it answers; 1012 is the lead's phone (answers at once)
    phones = []
    for n, (extension, answer_after_ms, tone) in enumerate(
        (("1001", 5000, pcaps["agent"]), ("1012", 100, None))
    ):
        port = PLAN.softphone_port(n)
        register(tmp_path, PLAN.edge, extension, f"pw{extension}",
                 ip=PLAN.agents_ip, contact_port=port, local_port=port + 1)  # fmt: skip
        scenario = agent_scenario(tmp_path / f"phone{extension}.xml", tone, answer_after_ms)
        phones.append(
            sipp_agent(
                scenario,
                local_port=port,
                media_port=PLAN.media(n),
                cwd=tmp_path,
                local_ip=PLAN.agents_ip,
                timeout_s=150,
            )
        )

    try:
        # ---- the agent signs in, lands on the desktop and goes ready
        agent = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1300})
        desk = agent.new_page()
        script_errors: list[str] = []
        desk.on("pageerror", lambda error: script_errors.append(str(error)))
        sign_in(desk, live_server, "1001")
        desk.wait_for_url("**/desktop")
        expect(desk.locator("body")).to_have_attribute("data-socket", "open", timeout=10_000)
        expect(desk.locator("#agent-state")).to_have_text("已登出")
        desk.get_by_role("button", name="就绪", exact=True).click()
        expect(desk.locator("#agent-state")).to_have_text("就绪", timeout=10_000)
        assert wait_for(lambda: routing.agent(agent_id)["state"] == "ready")
        expect(desk.locator("#my-queues")).to_contain_text("报修 (9)")
        expect(desk.get_by_role("button", name="小休", exact=True)).to_be_visible()
        desk.screenshot(path=str(shots / "desktop-ready.png"), full_page=True)
        assert desk.evaluate(OPENS_SOCKET) == {"opened": True}  # signed in: it opens

        # ---- 张伟 calls from an independent SIP client, presses 1 (repair), keys the room
        long_tone = pcaps["caller"].with_name("caller-60s.pcap")
        if not long_tone.exists():  # the caller talks for the whole test (no RTP timeout)
            tone_pcap(long_tone, 440.0, 60)
        steps: list[tuple[str, object]] = [("pause", 800), ("dtmf", "1"), ("pause", 1500)]
        # the room's digits rise in SIPp's pcap order (callcenter/testkit/rtp.py)
        steps += [("dtmf", d) for d in "3589#"]
        steps += [("audio", long_tone), ("wait_bye", 0)]
        caller = sipp(
            caller_scenario(tmp_path / "caller.xml", steps, caller="13800138000"),
            PLAN.edge,
            local_port=PLAN.caller_port(0),
            media_port=PLAN.media(5),
            cwd=tmp_path,
            local_ip=PLAN.callers_ip,
            timeout_s=150,
        )
        # the pop shows while 1001's softphone still rings (nobody answered)
        expect(desk.locator("#pop-name")).to_have_text("张伟", timeout=40_000)
        call_id = call_of(redis_client, "13800138000")
        assert call_id is not None
        assert routing.agent(agent_id)["state"] == "reserved"
        assert "agent_answered" not in [e.type for e in call_events(redis_client, call_id)]
        desk.screenshot(path=str(shots / "desktop-pop.png"), full_page=True)
        expect(desk.locator("#pop-units")).to_contain_text("3-2-1201")
        expect(desk.locator("#pop-fee")).to_contain_text("欠费")
        expect(desk.locator("#pop-menu")).to_contain_text("main [1]")
        expect(desk.locator("#pop-menu")).to_contain_text("repair_room [3589]")
        expect(desk.locator("#pop-digits")).to_have_text("room=3589")
        # then the softphone answers
        expect(desk.locator("#agent-state")).to_have_text("通话中", timeout=20_000)
        expect(desk.locator("#pop-ringing")).to_be_hidden()

        # ---- a repair ticket from the pop: pre-filled who / where / contact, the category
        form = desk.locator("#ticket-form")
        expect(form.locator("[name=reporter]")).to_have_value("张伟")
        expect(form.locator("[name=unit]")).to_have_value("3-2-1201")
        expect(form.locator("[name=contact]")).to_have_value("13800138000")
        expect(form.locator("[name=category]")).to_have_value("paid_home_repair")
        form.locator("[name=what]").fill("卫生间水管漏水")
        desk.click("#save-ticket")
        expect(desk.locator("#saved-ticket-department")).to_have_text("工程部", timeout=10_000)
        number = desk.locator("#saved-ticket-number").inner_text()
        with ctx.sessions() as session:
            saved = session.scalar(select(Ticket).where(Ticket.number == number))
            assert saved is not None
            assert (saved.call_id, saved.reporter, saved.what) == (
                call_id,
                "张伟",
                "卫生间水管漏水",
            )
        expect(desk.locator("#saved-ticket-due")).not_to_have_text("")
        desk.screenshot(path=str(shots / "desktop-ticket-saved.png"), full_page=True)

        # ---- the agent may not open the lead's console (another tab: the call goes on)
        tab = agent.new_page()
        refused = tab.goto(f"{live_server}/lead")
        assert refused is not None and refused.status == 403
        expect(tab.locator("#forbidden")).to_have_text("无权访问")
        tab.screenshot(path=str(shots / "agent-refused-lead.png"), full_page=True)
        tab.close()

        # ---- eng1 sees the ticket on /tickets
        engineering = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900})
        eng = engineering.new_page()
        sign_in(eng, live_server, "eng1")
        eng.wait_for_url("**/tickets")
        expect(eng.locator(f'tr[data-number="{number}"]')).to_contain_text("卫生间水管漏水")
        eng.screenshot(path=str(shots / "tickets-eng1.png"), full_page=True)
        eng.click(f"text={number}")
        expect(eng.locator("#ticket-status")).to_have_attribute("data-status", "dispatched")
        eng.screenshot(path=str(shots / "ticket-detail.png"), full_page=True)
        for page_path in ("/desktop", "/lead", "/wallboard"):
            response = eng.goto(f"{live_server}{page_path}")
            assert response is not None and response.status == 403, page_path
        # a POST made with the cookie but without the CSRF token is refused
        status = eng.evaluate(
            "async () => (await fetch('/api/v1/tickets/1/transitions', {method: 'POST',"
            " headers: {'Content-Type': 'application/json'}, body: JSON.stringify({to:"
            " 'assigned', assignee: 'x'})})).status"
        )
        assert status == 403

        # ---- the lead sees 1001 on the call and listens on the lead's phone (1012)
        leads = browser.new_context(locale="zh-CN", viewport={"width": 1500, "height": 1200})
        lead = leads.new_page()
        lead.on("pageerror", lambda error: script_errors.append(str(error)))
        sign_in(lead, live_server, "lead1")
        lead.wait_for_url("**/lead")
        row = lead.locator(f"#agent-{agent_id}")
        expect(row.locator(".state")).to_have_text("通话中")
        expect(row.locator(".call")).to_have_text(call_id)
        expect(row.locator(".queue")).to_have_text("报修")
        expect(row.locator(".since")).not_to_have_text("")
        # staffing against the minimum of the shifts in force (10:00: day and middle), in
        # this page's language only
        expect(lead.locator("#staffing-shifts")).to_have_text("早班、中班")
        expect(lead.locator("#staffing-online")).to_have_text("1")
        expect(lead.locator("#staffing-ready")).to_have_text("0")
        expect(lead.locator("#staffing-scheduled")).to_have_text("9")
        expect(lead.locator("#staffing-minimum")).to_have_text("8")
        expect(lead.locator("#alerts [data-kind=staffing]")).to_have_text(
            "在线坐席 1 人，低于本班最低要求 8 人"
        )
        expect(lead.locator("body")).to_have_attribute("data-socket", "open", timeout=10_000)
        lead.fill("#lead-extension", "1012")
        row.get_by_role("button", name="监听").click()
        expect(lead.locator("#lead-message")).to_contain_text("监听", timeout=10_000)
        joined = wait_for(
            lambda: [
                e for e in call_events(redis_client, call_id) if e.type == "supervisor_joined"
            ],
            timeout=15,
        )
        assert joined[0].data["mode"] == "listen"
        assert joined[0].data["uri"] == f"sip:1012@{PLAN.edge}"
        lead.screenshot(path=str(shots / "lead.png"), full_page=True)
        # a state change pushed over the lead's socket shows without reloading
        other = _agent_id(ctx, "1002")
        services.set_state(ctx, agent_id=other, state="ready", reason=None, actor="t")
        expect(lead.locator(f"#agent-{other} .state")).to_have_text("就绪", timeout=10_000)
        # move 1002 from the general queue to the complaint queue (a select of the queues)
        moved = lead.locator(f"#agent-{other}")
        moved.locator(".move-from").select_option("general")
        moved.locator(".move-to").select_option("complaint")
        moved.get_by_role("button", name="调整队列").click()
        expect(lead.locator("#lead-message")).to_contain_text("调整队列", timeout=10_000)
        assert routing.agent(other)["queues"] == {"callback": 5, "complaint": 6, "repair": 8}
        expect(moved.locator(".member-of")).to_contain_text("投诉 (6)")
        lead.goto(f"{live_server}/wallboard")
        expect(lead.locator("#general-waiting")).to_have_text("0", timeout=10_000)
        lead.screenshot(path=str(shots / "wallboard.png"), full_page=True)
        lead.goto(f"{live_server}/lead?lang=en")
        expect(lead.get_by_role("heading", name="Shift lead console")).to_be_visible()
        expect(lead.locator("#alerts [data-kind=staffing]")).to_have_text(
            "agents online: 2, below the shift minimum of 8"
        )
        lead.screenshot(path=str(shots / "lead-en.png"), full_page=True)
        lead.goto(f"{live_server}/tickets/reports/overdue")
        expect(lead.locator("#overdue-total")).to_have_text("0")
        lead.screenshot(path=str(shots / "overdue-report.png"), full_page=True)

        # ---- the agent hangs up from the desktop: the caller gets the BYE
        desk.get_by_role("button", name="挂断", exact=True).click()
        expect(desk.locator("#agent-state")).to_have_text("话后处理", timeout=15_000)
        finished(caller, 30)
        finished(phones[0], 30)

        # ---- signed out, the desktop's socket no longer opens
        desk.click("#logout")
        desk.wait_for_url("**/login")
        desk.screenshot(path=str(shots / "login.png"), full_page=True)
        assert desk.evaluate(OPENS_SOCKET) == {"opened": False}
        for context in (agent, engineering, leads):
            context.close()
    finally:
        kill_started()
    assert len(list(shots.glob("*.png"))) == 11
    assert script_errors == []


def _agent_id(ctx: AppContext, extension: str) -> int:
    with ctx.sessions() as session:
        found = session.scalar(select(Agent.id).where(Agent.extension == extension))
    assert found is not None
    return found


def test_lead_compares_two_plans_on_the_whatif_page(
    live_server: str, browser: Any, tmp_path: Path
) -> None:
    """The lead edits plan B on /lead/whatif (both start as the staffing in force), runs both
    on a small built-in day and sees A and B side by side and the per-hour charts; in English,
    copy A to B works in the page's script. Screenshots in both languages."""
    from playwright.sync_api import expect

    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = browser.new_context(locale="zh-CN", viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    sign_in(page, live_server, "lead1")
    page.wait_for_url("**/lead")
    page.get_by_role("link", name="排班模拟").click()
    page.wait_for_url("**/lead/whatif**")
    page.fill("#volume", "0.2")
    page.fill("[name=b_count_0]", "4")
    page.click("#whatif-run")
    summary = page.locator("#whatif-summary")
    expect(summary).to_be_visible(timeout=20_000)
    expect(summary.locator("th.plan-a")).to_have_text("方案 A")
    expect(summary.locator("th.plan-b")).to_have_text("方案 B")
    expect(summary.locator("td.plan-b[data-figure=agents]")).not_to_have_text(
        summary.locator("td.plan-a[data-figure=agents]").inner_text()
    )
    for plan in ("方案 A", "方案 B"):
        bars = page.locator(f"#chart-answer-rate rect.bar[data-series='{plan}']")
        assert bars.count() > 0
    assert page.locator("#whatif-hours tr[data-hour]").count() > 0
    expect(page.locator("[name=b_count_0]")).to_have_value("4")  # the form keeps the plans
    page.screenshot(path=str(shots / "whatif-zh.png"), full_page=True)

    page.goto(f"{live_server}/lead/whatif?lang=en")
    page.fill("#volume", "0.2")
    page.fill("[name=a_count_0]", "3")
    page.click("#copy-a")
    expect(page.locator("[name=b_count_0]")).to_have_value("3")
    page.fill("[name=b_count_1]", "5")
    page.click("#whatif-run")
    expect(page.locator("#whatif-summary th.plan-b")).to_have_text("Plan B", timeout=20_000)
    assert page.locator("#chart-service-level rect.bar[data-series='Plan B']").count() > 0
    page.screenshot(path=str(shots / "whatif-en.png"), full_page=True)
    context.close()
    assert script_errors == []
