"""Departments' contacts (who tickets and escalations reach) edited through the API, audited."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from callcenter.context import AppContext
from cti.models import Department
from tests.conftest import auth
from ticketing import dispatch as ticketing


def test_contacts_are_listed_added_changed_removed_and_audited(
    client: TestClient, ctx: AppContext
) -> None:
    admin = auth(client, "admin")
    departments = client.get("/api/v1/departments", headers=admin).json()
    engineering = next(d for d in departments if d["code"] == "engineering")
    assert {c["role"] for c in engineering["contacts"]} == {"supervisor", "manager"}

    added = client.post(
        "/api/v1/departments/engineering/contacts",
        json={"role": "supervisor", "name": "工程部 夜班主管", "phone": "13912345678", "rank": 1},
        headers=admin,
    )
    assert added.status_code == 201, added.text
    contact = added.json()
    url = f"/api/v1/departments/engineering/contacts/{contact['id']}"
    changed = client.patch(url, json={"phone": "13987654321"}, headers=admin)
    assert changed.status_code == 200 and changed.json()["phone"] == "13987654321"

    # What escalations and dispatch read (ticketing caches it; a fresh read sees the change).
    ticketing._reference.clear()
    with ctx.sessions() as session:
        dept_id = session.scalar(select(Department.id).where(Department.code == "engineering"))
        phones = [c["phone"] for c in ticketing.contacts_for(session, dept_id, "supervisor")]
    assert "13987654321" in phones

    assert client.delete(url, headers=admin).status_code == 204
    assert client.patch(url, json={"phone": "13900000000"}, headers=admin).status_code == 404
    log = client.get(
        "/api/v1/audit", params={"object_type": "department", "object_id": "engineering"},
        headers=admin,
    ).json()  # fmt: skip
    assert [e["action"] for e in reversed(log)] == [
        "department.contact_add",
        "department.contact_update",
        "department.contact_remove",
    ]
    assert log[1]["details"]["before"]["phone"] == "13912345678"
    assert log[1]["details"]["after"]["phone"] == "13987654321"
    assert log[0]["details"]["after"] is None


def test_bad_contacts_are_refused_naming_the_field(client: TestClient) -> None:
    admin = auth(client, "admin")
    url = "/api/v1/departments/engineering/contacts"
    bad_role = client.post(url, json={"role": "boss", "name": "x"}, headers=admin)
    assert bad_role.status_code == 422
    assert [p["field"] for p in bad_role.json()["details"]["problems"]] == ["role"]
    bad_phone = client.post(
        url, json={"role": "manager", "name": "x", "phone": "call me"}, headers=admin
    )
    assert bad_phone.status_code == 422
    assert [p["field"] for p in bad_phone.json()["details"]["problems"]] == ["phone"]
    no_user = client.post(url, json={"role": "manager", "name": "x", "user_id": 999}, headers=admin)
    assert [p["field"] for p in no_user.json()["details"]["problems"]] == ["user_id"]
    unknown = client.post(
        "/api/v1/departments/nosuch/contacts", json={"role": "manager", "name": "x"}, headers=admin
    )
    assert unknown.status_code == 404
    lead = auth(client, "lead1")
    assert client.get("/api/v1/departments", headers=lead).status_code == 403
