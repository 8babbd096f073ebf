"""The ticket pages: filters and keyset paging, department staff limited to their department,
the detail with the steps this user may take, posted with the CSRF token."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from callcenter.context import AppContext
from tests.pages.conftest import csrf_of, insert_tickets, sign_in

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
