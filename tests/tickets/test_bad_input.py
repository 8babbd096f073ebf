"""Refused requests name what is wrong and leave the database exactly as it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from callcenter.context import AppContext
from tests.conftest import auth
from tests.tickets.helpers import counts, payload, snapshot


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"category": "alien_invasion"}, "category"),
        ({"sla": "agreed", "due_at": "2020-01-01T08:00:00+08:00"}, "due_at"),
        ({"sla": "agreed"}, "due_at"),
        ({"sla": "5m"}, "sla"),
        ({"track": "whenever"}, "track"),
        ({"contact": ""}, "contact"),
        ({"call_id": "x" * 65}, "call_id"),
        ({"complaint_kind": "angry"}, "complaint_kind"),
    ],
)
def test_bad_creation_is_refused_and_stores_nothing(
    ctx: AppContext, client: TestClient, changes: dict[str, Any], field: str
) -> None:
    before = counts(ctx)
    response = client.post("/api/v1/tickets", headers=auth(client, "1001"), json=payload(**changes))
    assert response.status_code == 422, response.text
    body = response.json()
    assert field in body["message"]
    assert counts(ctx) == before


def test_missing_clarity_is_named(ctx: AppContext, client: TestClient) -> None:
    body = payload()
    del body["unit"]
    response = client.post("/api/v1/tickets", headers=auth(client, "1001"), json=body)
    assert response.status_code == 422
    assert "unit" in response.json()["message"]
    assert counts(ctx)["tickets"] == 0


def test_agreed_deadline_in_the_future_is_kept(client: TestClient) -> None:
    due = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    response = client.post(
        "/api/v1/tickets", headers=auth(client, "1001"), json=payload(due_at=due.isoformat())
    )
    assert response.status_code == 201, response.text
    assert response.json()["sla"] == "agreed"
    assert datetime.fromisoformat(response.json()["due_at"]) == due


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"to": "resolved", "done": "x", "materials": "y", "minutes_spent": 1}, 409, "assigned"),
        ({"to": "archived"}, 409, "assigned"),
        ({"to": "flying"}, 422, "to"),
        ({"to": "assigned"}, 422, "assignee"),
        ({"to": "assigned", "assignee": "   "}, 422, "assignee"),
        ({"to": "assigned", "assignee": "x", "colour": "red"}, 422, "colour"),
    ],
)
def test_bad_transition_is_refused_and_changes_nothing(
    ctx: AppContext, client: TestClient, body: dict[str, Any], status: int, named: str
) -> None:
    desk = auth(client, "1001")
    ticket = client.post("/api/v1/tickets", headers=desk, json=payload()).json()
    before, rows = counts(ctx), snapshot(ctx)
    response = client.post(f"/api/v1/tickets/{ticket['id']}/transitions", headers=desk, json=body)
    assert response.status_code == status, response.text
    assert named in response.json()["message"]
    if status == 409:
        assert response.json()["details"]["allowed"] == ["assigned"]
    assert counts(ctx) == before and snapshot(ctx) == rows


def test_work_order_fields_are_required(ctx: AppContext, client: TestClient) -> None:
    desk, eng = auth(client, "1001"), auth(client, "eng1")
    ticket_id = client.post("/api/v1/tickets", headers=desk, json=payload()).json()["id"]
    for body in ({"to": "assigned", "assignee": "王师傅"}, {"to": "on_site"}):
        assert (
            client.post(
                f"/api/v1/tickets/{ticket_id}/transitions", headers=eng, json=body
            ).status_code
            == 200
        )
    before, rows = counts(ctx), snapshot(ctx)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"to": "resolved", "materials": "无", "minutes_spent": 5}, "done"),
        ({"to": "resolved", "done": "修好", "minutes_spent": 5}, "materials"),
        ({"to": "resolved", "done": "修好", "materials": "无"}, "minutes_spent"),
        (
            {"to": "resolved", "done": "修好", "materials": "无", "minutes_spent": -3},
            "minutes_spent",
        ),
    ]
    for body, field in cases:
        response = client.post(f"/api/v1/tickets/{ticket_id}/transitions", headers=eng, json=body)
        assert response.status_code == 422, response.text
        assert response.json()["message"].startswith(field)
    assert counts(ctx) == before and snapshot(ctx) == rows


def test_archive_needs_the_callback_and_unsatisfied_needs_a_reason(
    ctx: AppContext, client: TestClient
) -> None:
    desk, eng = auth(client, "1001"), auth(client, "eng1")
    ticket_id = client.post("/api/v1/tickets", headers=desk, json=payload()).json()["id"]
    for body in (
        {"to": "assigned", "assignee": "王师傅"},
        {"to": "on_site"},
        {"to": "resolved", "done": "修好", "materials": "无", "minutes_spent": 5},
        {"to": "returned_to_supervisor"},
        {"to": "returned_to_front_desk"},
    ):
        assert (
            client.post(
                f"/api/v1/tickets/{ticket_id}/transitions", headers=eng, json=body
            ).status_code
            == 200
        )
    before, rows = counts(ctx), snapshot(ctx)
    # 张伟 is a member: the callback is compulsory before archiving
    archived = client.post(
        f"/api/v1/tickets/{ticket_id}/transitions", headers=desk, json={"to": "archived"}
    )
    assert archived.status_code == 409
    assert archived.json()["details"]["allowed"] == ["callback"]
    assert "callback" in archived.json()["message"]
    unsatisfied = client.post(
        f"/api/v1/tickets/{ticket_id}/transitions",
        headers=desk,
        json={"to": "callback", "result": "unsatisfied"},
    )
    assert unsatisfied.status_code == 422 and unsatisfied.json()["message"].startswith("reason")
    wrong = client.post(
        f"/api/v1/tickets/{ticket_id}/transitions",
        headers=desk,
        json={"to": "callback", "result": "meh"},
    )
    assert wrong.status_code == 422 and wrong.json()["message"].startswith("result")
    assert counts(ctx) == before and snapshot(ctx) == rows


def test_unknown_ticket_and_qa_cannot_change(client: TestClient) -> None:
    desk = auth(client, "1001")
    assert client.get("/api/v1/tickets/999", headers=desk).status_code == 404
    ticket_id = client.post("/api/v1/tickets", headers=desk, json=payload()).json()["id"]
    qa = auth(client, "qa1")
    assert client.get(f"/api/v1/tickets/{ticket_id}", headers=qa).status_code == 200
    response = client.post(
        f"/api/v1/tickets/{ticket_id}/transitions",
        headers=qa,
        json={"to": "assigned", "assignee": "x"},
    )
    assert response.status_code == 403
