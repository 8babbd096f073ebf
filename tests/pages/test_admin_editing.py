"""The admin pages in a real Chromium (marker ``browser``; run under the SIP lock): the rules
editor names each problem by its dotted key in the page's language (never pydantic's English
on the Chinese page) and stores nothing; department contacts are added and removed with the
page's buttons; an agent's extension, queues and skill levels, team, shift and SIP password
are changed on the person page. Every change is checked where it is stored (SQL)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from admin import config_versions
from callcenter.auth import sip_ha1
from callcenter.context import AppContext
from callcenter.models import AuditEntry, ConfigVersion, User
from cti.models import Agent, AgentQueue, Department, DepartmentContact, Team

pytestmark = pytest.mark.browser


def _stored_versions(ctx: AppContext) -> int:
    with ctx.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ConfigVersion)) or 0)


def test_config_problems_are_in_the_pages_language_beside_their_keys(
    ctx: AppContext, live_server: str, admin_page: tuple[Any, list[str]]
) -> None:
    from playwright.sync_api import expect

    page, script_errors = admin_page
    page.goto(f"{live_server}/admin/config/queues")
    with ctx.sessions() as session:
        _version, document = config_versions.current(session, ctx, name="queues")
    queues = document["queues"]
    queues["general"]["ring_timeout_seconds"] = -3  # greater_than_equal
    queues["general"]["wrap_up_seconds"] = "abc"  # int_parsing
    queues["complaint"]["strategy"] = "loudest_first"  # literal_error
    queues["repair"]["colour"] = "red"  # extra_forbidden
    del queues["fees"]["name"]  # missing
    page.click("#view-json")
    page.fill("#config-json", json.dumps(document, ensure_ascii=False))
    page.click("#config-save")

    problems = page.locator("#problem-list li")
    expect(problems).to_have_count(5, timeout=10_000)
    expected = {
        "queues.general.ring_timeout_seconds": "应大于或等于 3（实际为 -3）",
        "queues.general.wrap_up_seconds": "应为整数（实际为 'abc'）",
        "queues.complaint.strategy": "应为以下之一：'longest_idle', 'round_robin'",
        "queues.repair.colour": "不认识的键（此处不允许）",
        "queues.fees.name": "缺少必填项",
    }
    for key, message in expected.items():
        item = page.locator(f'#problem-list li[data-key="{key}"]')
        expect(item.locator("code.key")).to_have_text(key)
        expect(item).to_contain_text(message)
    banner = page.locator("#admin-message")
    expect(banner).to_have_text("queues.toml 有 5 处问题，未保存任何内容")
    editor_text = page.locator("#editor").inner_text()
    assert "Input should" not in editor_text and "Input should" not in banner.inner_text()
    assert "unknown key" not in editor_text and "required key" not in editor_text
    assert _stored_versions(ctx) == 0
    with ctx.sessions() as session:
        assert config_versions.current(session, ctx, name="queues")[0] == 0
    assert ctx.config.queues.queues["general"].ring_timeout_seconds == 15

    # in the fields view a problem shows beside its field, in the page's language
    for lang, message, banner_text in (
        ("zh-CN", "应大于或等于 3（实际为 -3）", "queues.toml 有 1 处问题，未保存任何内容"),
        (
            "en",
            "should be greater than or equal to 3 (got -3)",
            "queues.toml: 1 problem(s); nothing was stored",
        ),
    ):
        page.goto(f"{live_server}/admin/config/queues?lang={lang}")
        key = "queues.general.ring_timeout_seconds"
        page.locator(f'#config-fields tr[data-field="{key}"] input').fill("-3")
        page.click("#config-save")
        expect(page.locator(f'[data-error-for="{key}"]')).to_have_text(message, timeout=10_000)
        expect(page.locator("#admin-message")).to_have_text(banner_text)
    assert _stored_versions(ctx) == 0
    assert script_errors == []


def test_department_contacts_are_added_and_removed_with_the_buttons(
    ctx: AppContext, live_server: str, admin_page: tuple[Any, list[str]]
) -> None:
    from playwright.sync_api import expect

    page, script_errors = admin_page
    page.goto(f"{live_server}/admin/departments")
    card = page.locator("#dept-security")
    with ctx.sessions() as session:
        dept_id = session.scalar(select(Department.id).where(Department.code == "security"))
        before = session.scalar(
            select(func.count())
            .select_from(DepartmentContact)
            .where(DepartmentContact.department_id == dept_id)
        )
        sec1 = session.scalar(select(User.id).where(User.username == "sec1"))
    expect(card.locator("tr.contact")).to_have_count(int(before or 0))

    new = card.locator("tr.new-contact")
    new.locator('[name="role"]').select_option("escalation")
    new.locator('[name="name"]').fill("")
    new.locator('[name="phone"]').fill("139-abc")
    new.locator("button.add-contact").click()
    expect(new.locator('[data-error-for="phone"]')).to_be_visible()  # nothing added
    new.locator('[name="name"]').fill("夜间值班 赵强")
    new.locator('[name="phone"]').fill("13900000077")
    new.locator('[name="user_id"]').select_option(str(sec1))
    new.locator('[name="rank"]').fill("3")
    new.locator("button.add-contact").click()
    expect(page.locator("#admin-message")).to_contain_text("夜间值班 赵强", timeout=10_000)
    added = page.locator(
        "#dept-security tr.contact", has=page.locator('input[value="夜间值班 赵强"]')
    )
    expect(added).to_have_count(1)
    contact_id = int(added.get_attribute("data-contact") or 0)
    with ctx.sessions() as session:
        row = session.get(DepartmentContact, contact_id)
        assert row is not None and row.department_id == dept_id
        assert (row.role, row.name, row.phone, row.user_id, row.rank) == (
            "escalation",
            "夜间值班 赵强",
            "13900000077",
            sec1,
            3,
        )

    added.locator("button.remove-contact").click()
    expect(page.locator("#admin-message")).to_have_text("已删除")
    expect(page.locator(f'tr[data-contact="{contact_id}"]')).to_have_count(0)
    with ctx.sessions() as session:
        assert session.get(DepartmentContact, contact_id) is None
        actions = list(
            session.scalars(
                select(AuditEntry.action)
                .where(AuditEntry.object_type == "department", AuditEntry.object_id == "security")
                .order_by(AuditEntry.id)
            )
        )
    assert actions[-2:] == ["department.contact_add", "department.contact_remove"]
    page.reload()
    expect(page.locator("#dept-security tr.contact")).to_have_count(int(before or 0))
    assert script_errors == []


def test_an_agents_settings_are_edited_on_the_person_page(
    ctx: AppContext, live_server: str, admin_page: tuple[Any, list[str]]
) -> None:
    from playwright.sync_api import expect

    page, script_errors = admin_page
    with ctx.sessions() as session:
        agent = session.scalar(select(Agent).where(Agent.extension == "1005"))
        assert agent is not None
        user_id, agent_id, old_ha1 = agent.user_id, agent.id, agent.sip_ha1
    page.goto(f"{live_server}/admin/people/{user_id}")
    expect(page.locator("#u-extension")).to_have_value("1005")
    expect(page.locator("#u-shift")).to_have_value("mid")
    expect(page.locator("#u-skill-complaint")).to_have_value("6")

    # a new extension without the SIP password is refused beside the SIP password
    page.fill("#u-extension", "2105")
    page.click("#u-submit")
    expect(page.locator('[data-error-for="agent.sip_password"]')).to_be_visible()
    with ctx.sessions() as session:
        assert session.scalar(select(Agent.extension).where(Agent.id == agent_id)) == "1005"

    page.fill("#u-sip-password", "Kettle-Orchard-77")
    page.fill("#u-skill-general", "9")
    page.fill("#u-skill-repair", "")  # leaves the repair queue
    page.fill("#u-skill-complaint", "4")
    page.fill("#u-skill-fees", "2")  # joins the fees queue
    page.fill("#u-team", "夜班攻坚组")
    page.select_option("#u-shift", "night")
    page.click("#u-submit")
    page.wait_for_url(f"**/admin/people/{user_id}?lang=zh-CN&done=saved", timeout=10_000)
    expect(page.locator("#admin-message")).to_contain_text("已保存")
    # the reloaded page shows what was stored
    expect(page.locator("#u-extension")).to_have_value("2105")
    expect(page.locator("#u-team")).to_have_value("夜班攻坚组")
    expect(page.locator("#u-shift")).to_have_value("night")
    expect(page.locator("#u-skill-repair")).to_have_value("")
    expect(page.locator("#u-skill-fees")).to_have_value("2")
    with ctx.sessions() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None and agent.extension == "2105" and agent.shift_code == "night"
        team = session.get(Team, agent.team_id) if agent.team_id else None
        assert team is not None and team.name == "夜班攻坚组"
        realm = ctx.config.telephony.sip_domain
        assert agent.sip_ha1 == sip_ha1("2105", realm, "Kettle-Orchard-77") != old_ha1
        skills = dict(
            session.execute(
                select(AgentQueue.queue_code, AgentQueue.skill_level).where(
                    AgentQueue.agent_id == agent_id
                )
            ).all()
        )
    assert skills == {"general": 9, "complaint": 4, "fees": 2}

    # only a new SIP password (the extension kept), then no team and no shift
    page.goto(f"{live_server}/admin/people/{user_id}")
    page.fill("#u-sip-password", "Lantern-Harbour-58")
    page.fill("#u-team", "")
    page.select_option("#u-shift", "")
    page.click("#u-submit")
    page.wait_for_url(f"**/admin/people/{user_id}?lang=zh-CN&done=saved", timeout=10_000)
    with ctx.sessions() as session:
        agent = session.get(Agent, agent_id)
        assert agent is not None and agent.extension == "2105"
        assert agent.sip_ha1 == sip_ha1(
            "2105", ctx.config.telephony.sip_domain, "Lantern-Harbour-58"
        )
        assert agent.team_id is None and agent.shift_code is None
    assert script_errors == []
