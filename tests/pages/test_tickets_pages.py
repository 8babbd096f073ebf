"""The ticket pages: filters and keyset paging, department staff limited to their department,
the detail with the steps this user may take, posted with the CSRF token."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.context import AppContext
from cti.models import Agent
from pages import overdue
from tests.pages.conftest import csrf_of, insert_tickets, sign_in
from ticketing.models import SatisfactionCallback, Ticket

NUMBER = re.compile(r'<tr data-number="([^"]+)"')


def _create(client: TestClient, category: str, what: str) -> str:
    token = client.post(
        "/api/v1/auth/token", json={"username": "1001", "password": "pw1001"}
    ).json()["access_token"]
    body = {
        "category": category,
        "description": "",
        "track": "general",
        "reporter": "张伟",
        "unit": "3-2-1201",
        "what": what,
        "when": "今天",
        "contact": "13800138000",
    }
    response = client.post(
        "/api/v1/tickets", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["number"])


def test_list_pages_by_keyset_and_filters(client: TestClient, ctx: AppContext) -> None:
    insert_tickets(ctx, 120)
    sign_in(client, "lead1")
    first = client.get("/tickets")
    numbers = NUMBER.findall(first.text)
    assert len(numbers) == 50 and numbers[0] == "GD20261130-P00120"
    assert 'id="ticket-total">120<' in first.text
    next_url = re.search(r'href="([^"]+)" id="next-page"', first.text)
    assert next_url
    second = client.get(next_url.group(1).replace("&amp;", "&"))
    assert NUMBER.findall(second.text)[0] == "GD20261130-P00070"
    third_link = re.search(r'href="([^"]+)" id="next-page"', second.text)
    assert third_link
    third = client.get(third_link.group(1).replace("&amp;", "&"))
    assert len(NUMBER.findall(third.text)) == 20 and 'id="next-page"' not in third.text
    overdue = NUMBER.findall(client.get("/tickets", params={"overdue": "1"}).text)
    assert len(overdue) == 12 and all(int(n[-5:]) % 10 == 0 for n in overdue)
    assert NUMBER.findall(client.get("/tickets", params={"number": "GD20261130-P00007"}).text) == [
        "GD20261130-P00007"
    ]
    assert NUMBER.findall(client.get("/tickets", params={"phone": "13900000042"}).text) == [
        "GD20261130-P00042"
    ]
    locks = NUMBER.findall(client.get("/tickets", params={"text": "门锁"}).text)
    assert len(locks) == 50 and all(int(n[-5:]) % 2 == 0 for n in locks)
    assert NUMBER.findall(client.get("/tickets", params={"department": "finance"}).text) == []
    assert "没有符合条件的工单" in client.get("/tickets", params={"text": "100%_"}).text


def test_department_staff_see_only_their_department(client: TestClient, ctx: AppContext) -> None:
    engineering = _create(client, "paid_home_repair", "卫生间漏水")
    finance = _create(client, "fees", "物业费咨询")
    sign_in(client, "eng1")
    listed = NUMBER.findall(client.get("/tickets", params={"department": "finance"}).text)
    assert listed == [engineering]  # the department filter cannot widen their view
    assert client.get(f"/tickets/{engineering}").status_code == 200
    refused = client.get(f"/tickets/{finance}")
    assert refused.status_code == 403 and "该工单不属于本部门" in refused.text
    assert client.get("/tickets/GD19990101-0001").status_code == 404


def test_transition_buttons_follow_the_role_and_need_csrf(
    client: TestClient, ctx: AppContext
) -> None:
    number = _create(client, "paid_home_repair", "卫生间漏水")
    sign_in(client, "qa1")
    assert 'id="no-steps"' in client.get(f"/tickets/{number}").text
    sign_in(client, "eng1")
    page = client.get(f"/tickets/{number}")
    assert 'data-to="assigned"' in page.text and 'name="assignee"' in page.text
    refused = client.post(f"/tickets/{number}/transitions", data={"to": "assigned"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    token = csrf_of(client, f"/tickets/{number}")
    missing = client.post(
        f"/tickets/{number}/transitions", data={"to": "assigned", "csrf_token": token}
    )
    assert missing.status_code == 422 and "assignee" in missing.text
    done = client.post(
        f"/tickets/{number}/transitions",
        data={"to": "assigned", "assignee": "王师傅", "csrf_token": token},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"/tickets/{number}"
    detail = client.get(f"/tickets/{number}").text
    assert 'data-status="assigned"' in detail and "王师傅" in detail
    assert 'data-to="on_site"' in detail


def _set_overdue(ctx: AppContext, moments: dict[str, datetime]) -> None:
    """Mark tickets (by number) overdue since the given moments."""
    with ctx.sessions.begin() as session:
        for number, moment in moments.items():
            ticket = session.scalar(select(Ticket).where(Ticket.number == number))
            assert ticket is not None
            ticket.overdue, ticket.overdue_at = True, moment.astimezone(UTC)
            ticket.due_at = (moment - timedelta(hours=1)).astimezone(UTC)


def test_overdue_report_per_period_and_department(client: TestClient, ctx: AppContext) -> None:
    sh = ZoneInfo("Asia/Shanghai")
    repair = _create(client, "paid_home_repair", "卫生间漏水")
    late_repair = _create(client, "paid_home_repair", "门锁坏了")
    fees = _create(client, "fees", "物业费咨询")
    never = _create(client, "paid_home_repair", "按时完成")
    _set_overdue(
        ctx,
        {
            repair: datetime(2026, 11, 30, 23, 30, tzinfo=sh),  # Monday, late evening
            late_repair: datetime(2026, 12, 2, 9, 0, tzinfo=sh),  # Wednesday
            fees: datetime(2026, 12, 2, 0, 10, tzinfo=sh),  # just after midnight (UTC: the 1st)
        },
    )
    sign_in(client, "lead1")
    url = "/tickets/reports/overdue"
    page = client.get(url, params={"since": "2026-11-30", "until": "2026-12-03"})
    assert page.status_code == 200, page.text
    rows = dict(
        re.findall(r'<tr data-period="([^"]+)"[^>]*>.*?<td class="total">(\d+)<', page.text, re.S)
    )
    # by the center's calendar day (the fee ticket falls on the 2nd in Shanghai)
    assert rows == {"2026-11-30": "1", "2026-12-01": "0", "2026-12-02": "2", "2026-12-03": "0"}
    assert 'id="overdue-total">3<' in page.text
    assert set(NUMBER.findall(page.text)) == {repair, late_repair, fees} and never not in page.text
    assert 'data-department="engineering"' in page.text and 'data-department="finance"' in page.text
    weekly = client.get(
        url, params={"since": "2026-11-30", "until": "2026-12-03", "period": "week"}
    )
    assert re.findall(r'<tr data-period="([^"]+)"', weekly.text) == ["2026-11-30"]
    assert "周（周一）" in weekly.text
    english = client.get(url, params={"since": "2026-12-01", "until": "2026-12-01", "lang": "en"})
    assert "Overdue report" in english.text and "No overdue work in this period" in english.text
    # bad input: named, in the page's language
    bad = client.get(url, params={"since": "2026-13-01"})
    assert bad.status_code == 422 and "since must be a date YYYY-MM-DD" in bad.text
    assert "查询条件有误" in bad.text
    backwards = client.get(url, params={"since": "2026-12-03", "until": "2026-12-01"})
    assert backwards.status_code == 422 and "after until" in backwards.text
    assert client.get(url, params={"period": "year"}).status_code == 422
    # department staff see their own department's figures only; agents not at all
    sign_in(client, "eng1")
    own = client.get(url, params={"since": "2026-11-30", "until": "2026-12-03"})
    assert set(NUMBER.findall(own.text)) == {repair, late_repair}
    assert 'data-department="finance"' not in own.text and 'id="overdue-total">2<' in own.text
    assert 'id="overdue-by-period"' in client.get("/tickets").text
    sign_in(client, "1001")
    assert client.get(url).status_code == 403
    assert 'id="overdue-by-period"' not in client.get("/tickets").text


def test_overdue_periods_are_the_centers_days_weeks_and_months() -> None:
    today = date(2026, 12, 6)
    window = overdue.parse_window("", "", "", today)
    assert (window.since, window.until, window.period) == (date(2026, 11, 30), today, "day")
    assert overdue.periods_between(
        overdue.parse_window("2026-11-25", "2026-12-06", "week", today)
    ) == [
        "2026-11-23",
        "2026-11-30",
    ]
    assert overdue.periods_between(
        overdue.parse_window("2026-11-25", "2027-01-02", "month", today)
    ) == [
        "2026-11",
        "2026-12",
        "2027-01",
    ]
    for since, until, period, message in (
        ("2026-1-1", "", "day", "since must be a date"),
        ("", "tomorrow", "day", "until must be a date"),
        ("2025-01-01", "2026-12-06", "day", "at most 366 days"),
        ("", "", "hour", "period must be one of day, week, month"),
    ):
        with pytest.raises(overdue.BadPeriod, match=message):
            overdue.parse_window(since, until, period, today)


def test_callbacks_assigned_on_the_ticket_page_show_on_that_agents_desktop(
    client: TestClient, ctx: AppContext
) -> None:
    number = _create(client, "paid_home_repair", "卫生间漏水")
    now = datetime.now(UTC)
    with ctx.sessions.begin() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None
        callback = SatisfactionCallback(
            ticket_id=ticket.id,
            number="13800138000",
            mode="agent",
            scheduled_for=now,
            deadline=now + timedelta(days=3),
            status="scheduled",
            attempts=0,
        )
        session.add(callback)
        session.flush()
        callback_id = callback.id
        agent_1001 = session.scalar(select(Agent.id).where(Agent.extension == "1001"))
    sign_in(client, "1001")
    assert f'data-callback="{callback_id}"' not in client.get("/desktop").text  # not yet mine
    assert "callback-assign" not in client.get(f"/tickets/{number}").text  # agents do not assign
    token = csrf_of(client, f"/tickets/{number}")
    form_url = f"/tickets/{number}/callbacks/{callback_id}/assignee"
    assert client.post(form_url, data={"agent_id": "1", "csrf_token": token}).status_code == 403
    sign_in(client, "lead1")
    page = client.get(f"/tickets/{number}").text
    assert 'class="row callback-assign"' in page and ">1001 客服专员" in page
    assert 'data-status="scheduled">待回访<' in page
    assert client.post(form_url, data={"agent_id": str(agent_1001)}).status_code == 403  # no CSRF
    token = csrf_of(client, f"/tickets/{number}")
    bad = client.post(form_url, data={"agent_id": "abc", "csrf_token": token})
    assert bad.status_code == 422 and "agent_id" in bad.text
    wrong_ticket = client.post(
        f"/tickets/{_create(client, 'fees', '缴费')}/callbacks/{callback_id}/assignee",
        data={"agent_id": str(agent_1001), "csrf_token": token},
    )
    assert wrong_ticket.status_code == 404
    done = client.post(
        form_url, data={"agent_id": str(agent_1001), "csrf_token": token}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == f"/tickets/{number}"
    assert re.search(
        rf'<option value="{agent_1001}" selected>', client.get(f"/tickets/{number}").text
    )
    # on 1001's desktop with the result form, not on 1002's
    sign_in(client, "1001")
    desk = client.get("/desktop").text
    assert f'<form class="callback-form row" data-callback="{callback_id}">' in desk
    assert "分配给我的回访" in desk and "卫生间漏水" in desk and 'name="result"' in desk
    sign_in(client, "1002")
    assert f'data-callback="{callback_id}"' not in client.get("/desktop").text
