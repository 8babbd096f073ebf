"""The admin pages (/admin): the role is enforced on the server, every change made with the
cookie needs the CSRF token, and in a real Chromium an admin creates an agent (problems shown
beside their fields first), breaks a file (every problem named, nothing stored), saves a good
version and rolls it back.

The plain HTTP tests run in-process; the browser test (marker ``browser``, run it under the SIP
lock) drives the pages against uvicorn and saves screenshots in both languages to
``<tmp_path>/screenshots/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from admin import config_versions
from callcenter.context import AppContext
from callcenter.models import ConfigVersion, User
from callcenter.sessions import CSRF_HEADER
from cti.models import Agent, AgentQueue, DepartmentContact
from tests.pages.conftest import csrf_of, sign_in, wait_for

ADMIN_PAGES = (
    "/admin",
    "/admin/people",
    "/admin/people/1",
    "/admin/departments",
    "/admin/config/queues",
)


def _stored_versions(ctx: AppContext) -> int:
    with ctx.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ConfigVersion)) or 0)


@pytest.mark.parametrize("username", ["1001", "lead1", "qa1", "eng1"])
def test_other_roles_get_the_403_page_in_both_languages(client: TestClient, username: str) -> None:
    sign_in(client, username)
    for path in ADMIN_PAGES:
        refused = client.get(path, follow_redirects=False)
        assert refused.status_code == 403, path
        assert "无权访问" in refused.text
        english = client.get(path + "?lang=en", follow_redirects=False)
        assert english.status_code == 403 and "Not allowed" in english.text
    assert "/admin" not in client.get("/").text  # no admin link in their navigation
    # the API behind the pages refuses them too
    token = csrf_of(client, "/")
    assert client.get("/api/v1/users").status_code == 403
    assert client.get("/api/v1/config/queues").status_code == 403
    put = client.put("/api/v1/config/queues", json={}, headers={CSRF_HEADER: token})
    assert put.status_code == 403


def test_signed_out_goes_to_sign_in_and_the_admin_lands_on_admin_home(client: TestClient) -> None:
    gone = client.get("/admin/people?role=agent", follow_redirects=False)
    assert gone.status_code == 303
    assert gone.headers["location"] == "/login?next=%2Fadmin%2Fpeople%3Frole%3Dagent"
    assert sign_in(client, "admin", lang="en") == "/admin?lang=en"
    for path in ADMIN_PAGES:
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'href="/admin?lang=zh-CN"' in page.text  # the nav shows the admin link
    assert client.get("/admin/config/nosuch").status_code == 404
    assert client.get("/admin/people/99999").status_code == 404


def test_changes_without_the_csrf_token_are_refused(client: TestClient, ctx: AppContext) -> None:
    sign_in(client, "admin")
    token = csrf_of(client, "/admin/people")
    body = {
        "username": "ning",
        "password": "Harbour-Lantern-42",
        "role": "lead",
        "display_name": "宁静",
    }
    for headers in ({}, {CSRF_HEADER: "not-the-token"}):
        refused = client.post("/api/v1/users", json=body, headers=headers)
        assert refused.status_code == 403 and refused.json()["error_id"] == "csrf-token-invalid"
        assert (
            client.patch("/api/v1/users/1", json={"active": False}, headers=headers).status_code
            == 403
        )
        put = client.put("/api/v1/config/queues", json={"queues": {}}, headers=headers)
        assert put.status_code == 403
        rollback = client.post("/api/v1/config/queues/versions/0/rollback", headers=headers)
        assert rollback.status_code == 403
        contact = client.post(
            "/api/v1/departments/engineering/contacts",
            json={"role": "manager", "name": "王经理"},
            headers=headers,
        )
        assert contact.status_code == 403
    with ctx.sessions() as session:
        assert session.scalar(select(User).where(User.username == "ning")) is None
        first = session.get(User, 1)
        assert first is not None and first.active
    assert _stored_versions(ctx) == 0
    # with the page's token the same request works
    created = client.post("/api/v1/users", json=body, headers={CSRF_HEADER: token})
    assert created.status_code == 201, created.text


# ---------------------------------------------------------------- in a real browser


@pytest.mark.browser
def test_admin_creates_an_agent_breaks_a_file_and_rolls_back(
    ctx: AppContext, live_server: str, admin_page: tuple[Any, list[str]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    shots = tmp_path / "screenshots"
    shots.mkdir()
    page, script_errors = admin_page
    expect(page.locator("#home-rules tr[data-file=queues] .version")).to_have_text("0")
    page.screenshot(path=str(shots / "admin-home.png"), full_page=True)

    # ---- people: a bad agent shows each problem beside its field; nothing is created
    page.click("#nav-people")
    page.wait_for_url("**/admin/people?lang=zh-CN")
    form = page.locator("#user-form")
    form.locator("#u-username").fill("ning")
    form.locator("#u-display-name").fill("客服专员 宁静")
    expect(form.locator("#u-role")).to_have_value("agent")
    form.locator("#u-password").fill("password123")  # a common password
    form.locator("#u-extension").fill("2001")
    form.locator("#u-sip-password").fill("Kettle-Orchard-77")
    form.locator("#u-team").fill("客服二组")
    form.locator("#u-shift").select_option("day")
    form.locator("#u-skill-general").fill("6")
    form.locator("#u-skill-repair").fill("11")  # skills are 1-10
    page.click("#u-submit")
    expect(form.locator('[data-error-for="password"]')).to_be_visible()
    expect(form.locator('[data-field="password"]')).to_have_class("field has-error")
    expect(form.locator('[data-error-for="agent.queues.repair"]')).to_contain_text("1-10")
    expect(page.locator("#admin-message")).to_contain_text("未保存")
    page.screenshot(path=str(shots / "admin-people-problems.png"), full_page=True)
    # a taken extension: the 409 shows at the extension
    form.locator("#u-password").fill("Harbour-Lantern-42")
    form.locator("#u-skill-repair").fill("8")
    form.locator("#u-extension").fill("1001")
    page.click("#u-submit")
    expect(form.locator('[data-error-for="agent.extension"]')).to_contain_text("1001")
    expect(form.locator('[data-error-for="password"]')).to_have_count(0)
    with ctx.sessions() as session:
        assert session.scalar(select(User).where(User.username == "ning")) is None
    # corrected: created, and the list shows the new agent
    form.locator("#u-extension").fill("2001")
    page.click("#u-submit")
    row = page.locator('#people tr[data-username="ning"]')
    expect(row.locator(".extension")).to_have_text("2001", timeout=10_000)
    expect(row.locator(".queues")).to_have_text("general:6, repair:8")
    expect(row.locator(".role")).to_have_text("坐席")
    expect(page.locator("#admin-message")).to_contain_text("已创建: ning")
    with ctx.sessions() as session:
        agent = session.scalar(select(Agent).where(Agent.extension == "2001"))
        assert agent is not None and agent.active and agent.shift_code == "day"
        skills = dict(
            session.execute(
                select(AgentQueue.queue_code, AgentQueue.skill_level).where(
                    AgentQueue.agent_id == agent.id
                )
            ).all()
        )
        assert skills == {"general": 6, "repair": 8}
    page.screenshot(path=str(shots / "admin-people-created.png"), full_page=True)
    # the user's page: a common password is refused beside the field; disable
    row.locator("a").click()
    page.fill("#p-password", "password123")
    page.click("#p-submit")
    expect(page.locator('#password-form [data-error-for="password"]')).to_be_visible()
    page.click("#toggle-active")
    expect(page.locator("#person-status")).to_have_attribute("data-active", "false")
    with ctx.sessions() as session:
        ning = session.scalar(select(User).where(User.username == "ning"))
        assert ning is not None and not ning.active
        assert session.scalar(select(Agent.active).where(Agent.extension == "2001")) is False
    # departments: a bad phone is shown at the phone, a good one is saved
    page.click("#nav-departments")
    contact = page.locator("#dept-engineering tr.contact").first
    contact.locator('[name="phone"]').fill("12ab")
    contact.locator("button.save-contact").click()
    expect(contact.locator('[data-error-for="phone"]')).to_be_visible()
    contact.locator('[name="phone"]').fill("13900000001")
    contact.locator("button.save-contact").click()
    expect(page.locator("#admin-message")).to_contain_text("已保存")
    contact_id = int(contact.get_attribute("data-contact") or 0)
    with ctx.sessions() as session:
        saved_contact = session.get(DepartmentContact, contact_id)
        assert saved_contact is not None and saved_contact.phone == "13900000001"
    page.screenshot(path=str(shots / "admin-departments.png"), full_page=True)
    page.goto(f"{live_server}/admin/people?role=agent&active=0&lang=en")  # disabled agents
    expect(page.locator('#people tr[data-username="ning"] .status')).to_have_text("Disabled")
    expect(page.locator("#people tbody tr")).to_have_count(1)
    page.screenshot(path=str(shots / "admin-people-en.png"), full_page=True)

    # ---- the rules: a bad queues document lists every problem by dotted key, stores nothing
    page.goto(f"{live_server}/admin/config/queues")
    ring = page.locator('#config-fields tr[data-field="queues.general.ring_timeout_seconds"] input')
    expect(ring).to_have_value("15")
    ring.fill("-3")
    page.locator('#config-fields tr[data-field="queues.complaint.strategy"] input').fill(
        "loudest_first"
    )
    page.click("#config-save")
    problems = page.locator("#problem-list li")
    expect(problems).to_have_count(2, timeout=10_000)
    keys = sorted(problems.locator("code.key").all_inner_texts())
    assert keys == ["queues.complaint.strategy", "queues.general.ring_timeout_seconds"]
    expect(page.locator('[data-error-for="queues.general.ring_timeout_seconds"]')).to_contain_text(
        "应大于或等于 3"
    )
    expect(page.locator('[data-error-for="queues.complaint.strategy"]')).to_be_visible()
    page.screenshot(path=str(shots / "admin-config-problems.png"), full_page=True)
    assert _stored_versions(ctx) == 0
    with ctx.sessions() as session:
        assert config_versions.current(session, ctx, name="queues")[0] == 0
    assert ctx.config.queues.queues["general"].ring_timeout_seconds == 15

    # ---- a good version: stored with who and the diff, in force in this API process
    page.locator('#config-fields tr[data-field="queues.complaint.strategy"] input').fill(
        "skill_then_longest_idle"
    )
    ring.fill("25")
    page.fill("#config-note", "节前调整")
    page.click("#config-save")
    expect(page.locator("#saved-notice")).to_contain_text("1", timeout=10_000)
    expect(page.locator("#current-version")).to_have_text("1")
    first = page.locator('#history tr[data-version="1"]')
    expect(first.locator(".author")).to_have_text("admin")
    expect(first.locator(".diff")).to_contain_text("queues.general.ring_timeout_seconds: 15 → 25")
    assert wait_for(lambda: ctx.config.queues.queues["general"].ring_timeout_seconds == 25)

    # ---- rollback to the file (version 0), from the English page
    page.goto(f"{live_server}/admin/config/queues?lang=en")
    page.locator('#history button.rollback[data-version="0"]').click()
    expect(page.locator("#current-version")).to_have_text("2", timeout=10_000)
    expect(page.locator('#history tr[data-version="2"]')).to_contain_text("rollback to version 0")
    expect(
        page.locator('#config-fields tr[data-field="queues.general.ring_timeout_seconds"] input')
    ).to_have_value("15")
    assert wait_for(lambda: ctx.config.queues.queues["general"].ring_timeout_seconds == 15)
    with ctx.sessions() as session:
        version, document = config_versions.current(session, ctx, name="queues")
    assert version == 2 and document == config_versions.file_document(ctx, "queues")
    page.screenshot(path=str(shots / "admin-config-history-en.png"), full_page=True)

    assert len(list(shots.glob("*.png"))) == 7
    assert script_errors == []
