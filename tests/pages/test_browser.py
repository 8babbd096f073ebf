"""The pages in a real Chromium (Playwright, headless, Debian's /usr/bin/chromium), against
the real app on uvicorn, the real routing service and Redis.

1001 signs in and goes ready; a call for 张伟 is queued the way the engine queues it (events on
the stream, the router offers it); the pop shows 张伟 while the phone still rings (nobody has
answered); the agent saves a repair ticket from the pop; eng1 sees it on /tickets; the lead
sees 1001 ringing and listens. Refusals: other roles' pages, a POST without the CSRF token, a
socket after signing out. Screenshots of every page go to the test's tmp_path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.streams import CallEvent, Command, EventType
from cti import services
from cti.models import Agent
from cti.router import Router
from tests.pages.conftest import wait_for
from ticketing.models import Ticket

pytestmark = pytest.mark.browser

# Opens the agent socket from the page and reports whether the server accepted it.
OPENS_SOCKET = """() => new Promise((resolve) => {
  const ws = new WebSocket(location.origin.replace("http", "ws") + "/api/v1/agents/me/events");
  ws.onopen = () => { ws.close(); resolve({opened: true}); };
  ws.onclose = () => resolve({opened: false});
})"""


@pytest.fixture
def router(ctx: AppContext) -> Iterator[Router]:
    """The routing service consuming the event stream, as ``callcenter router`` runs it."""
    running = Router(ctx, routing=services.routing_for(ctx), consumer="pages-router")
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    yield running
    stop.set()
    thread.join(timeout=10)


def queue_call(ctx: AppContext, call_id: str, caller: str, queue: str, room: str) -> str:
    """What the engine does for a caller who pressed 1 (repair) and keyed in the room: the
    slot claims the call, then call_arrived and call_queued on the event stream."""
    slot = f"node1-{call_id}"
    redis_client: Any = ctx.redis
    redis_client.set(ctx.keys.call_slot(call_id), slot)
    for kind, data in (
        (EventType.call_arrived, {"caller": caller, "did": "4008001234", "direction": "in"}),
        (
            EventType.call_queued,
            {
                "queue": queue,
                "priority": 0,
                "skills": [],
                "collected": {"room": room},
                "menu_path": ["main", "repair_room", queue],
            },
        ),
    ):
        event = CallEvent(type=kind, call_id=call_id, slot=slot, node="node1", data=data)
        redis_client.xadd(ctx.keys.events, event.to_fields())
    return slot


def slot_commands(ctx: AppContext, slot: str) -> list[Command]:
    redis_client: Any = ctx.redis
    entries = redis_client.xrange(ctx.keys.slot_commands(slot))
    return [Command.from_fields(fields) for _id, fields in entries]


def sign_in(page: Any, base: str, username: str, password: str | None = None) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password or f"pw{username}")
    page.click("#login-submit")


def test_desktop_pop_ticket_and_lead_in_a_real_browser(
    ctx: AppContext, live_server: str, router: Router, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with ctx.sessions() as session:
        agent_id = session.scalar(select(Agent.id).where(Agent.extension == "1001"))
    assert agent_id is not None
    routing = services.routing_for(ctx)

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

    # ---- a caller presses 1 for repair: the pop arrives while the phone rings
    slot = queue_call(ctx, "web-call-1", "13800138000", "repair", "321201")
    expect(desk.locator("#pop-name")).to_have_text("张伟", timeout=10_000)
    assert routing.agent(agent_id)["state"] == "reserved"  # ringing: nobody answered yet
    expect(desk.locator("#pop-ringing")).to_be_visible()
    expect(desk.locator("#pop-units")).to_contain_text("3-2-1201")
    expect(desk.locator("#pop-fee")).to_contain_text("欠费")
    expect(desk.locator("#pop-menu")).to_have_text("main → repair_room → repair")
    expect(desk.locator("#pop-digits")).to_have_text("room=321201")
    expect(desk.locator("#agent-state")).to_have_text("振铃中")
    desk.screenshot(path=str(shots / "desktop-pop.png"), full_page=True)

    # ---- a repair ticket from the pop: pre-filled who / where / contact, the repair category
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
            "web-call-1",
            "张伟",
            "卫生间水管漏水",
        )
    expect(desk.locator("#saved-ticket-due")).not_to_have_text("")
    desk.screenshot(path=str(shots / "desktop-ticket-saved.png"), full_page=True)

    # ---- the agent may not open the lead's console
    refused = desk.goto(f"{live_server}/lead")
    assert refused is not None and refused.status == 403
    expect(desk.locator("#forbidden")).to_have_text("无权访问")
    desk.screenshot(path=str(shots / "agent-refused-lead.png"), full_page=True)

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

    # ---- a POST made with the cookie but without the CSRF token is refused
    status = eng.evaluate(
        "async () => (await fetch('/api/v1/tickets/1/transitions', {method: 'POST',"
        " headers: {'Content-Type': 'application/json'}, body: JSON.stringify({to: 'assigned',"
        " assignee: 'x'})})).status"
    )
    assert status == 403

    # ---- the lead sees 1001 ringing on the call and listens
    leads = browser.new_context(locale="zh-CN", viewport={"width": 1500, "height": 1100})
    lead = leads.new_page()
    sign_in(lead, live_server, "lead1")
    lead.wait_for_url("**/lead")
    row = lead.locator(f"#agent-{agent_id}")
    expect(row.locator(".state")).to_have_text("振铃中")
    expect(row.locator(".call")).to_have_text("web-call-1")
    expect(row.locator(".queue")).to_have_text("报修")
    expect(row.locator(".since")).not_to_have_text("")
    expect(lead.locator("body")).to_have_attribute("data-socket", "open", timeout=10_000)
    lead.fill("#lead-extension", "1012")
    row.get_by_role("button", name="监听").click()
    expect(lead.locator("#lead-message")).to_contain_text("监听", timeout=10_000)
    listen = [c for c in slot_commands(ctx, slot) if c.type == "listen"]
    assert listen and listen[0].data["by"] == "lead1"
    lead.screenshot(path=str(shots / "lead.png"), full_page=True)
    # a state change pushed over the lead's socket shows without reloading
    routing_agent_1002 = _agent_id(ctx, "1002")
    services.set_state(ctx, agent_id=routing_agent_1002, state="ready", reason=None, actor="t")
    expect(lead.locator(f"#agent-{routing_agent_1002} .state")).to_have_text("就绪", timeout=10_000)
    # move 1002 between queues live
    moved = lead.locator(f"#agent-{routing_agent_1002}")
    moved.locator(".queues-edit").fill("general:6,complaint:4")
    moved.get_by_role("button", name="调整队列").click()
    expect(lead.locator("#lead-message")).to_contain_text("调整队列", timeout=10_000)
    assert routing.agent(routing_agent_1002)["queues"] == {"complaint": 4, "general": 6}
    lead.goto(f"{live_server}/wallboard")
    expect(lead.locator("#general-waiting")).to_have_text("0", timeout=10_000)
    lead.screenshot(path=str(shots / "wallboard.png"), full_page=True)
    lead.goto(f"{live_server}/lead?lang=en")
    expect(lead.get_by_role("heading", name="Shift lead console")).to_be_visible()
    lead.screenshot(path=str(shots / "lead-en.png"), full_page=True)

    # ---- signed out, the desktop's socket no longer opens
    desk.goto(f"{live_server}/desktop")
    desk.click("#logout")
    desk.wait_for_url("**/login")
    desk.screenshot(path=str(shots / "login.png"), full_page=True)
    assert desk.evaluate(OPENS_SOCKET) == {"opened": False}

    for context in (agent, engineering, leads):
        context.close()
    assert len(list(shots.glob("*.png"))) == 10
    assert script_errors == []


def _agent_id(ctx: AppContext, extension: str) -> int:
    with ctx.sessions() as session:
        found = session.scalar(select(Agent.id).where(Agent.extension == extension))
    assert found is not None
    return found
