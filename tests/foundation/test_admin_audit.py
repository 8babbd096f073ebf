"""Every administrative change is in the audit log with ``before`` and ``after`` (read through
``GET /api/v1/audit``): users created, changed, disabled and re-enabled, passwords reset by an
admin or changed by their owner (shown as ``password_changed``, never the password), teams
created, departments' contacts added, changed and removed, config versions stored and rolled
back, and a lead's live queue move."""

from __future__ import annotations

import copy
import json
from typing import Any

from fastapi.testclient import TestClient

from callcenter.context import AppContext
from tests.conftest import auth, token
from tests.foundation.test_admin_users import GOOD, agent_body


def _entries(client: TestClient, admin: dict[str, str], object_type: str, object_id: str) -> Any:
    found = client.get(
        "/api/v1/audit",
        params={"object_type": object_type, "object_id": object_id},
        headers=admin,
    )
    assert found.status_code == 200, found.text
    return list(reversed(found.json()))  # oldest first


def _before_after(entry: dict[str, Any]) -> tuple[Any, Any]:
    details = entry["details"]
    assert "before" in details and "after" in details, entry
    return details["before"], details["after"]


def test_every_admin_change_is_audited_with_before_and_after(
    client: TestClient, ctx: AppContext
) -> None:
    admin = auth(client, "admin")
    created = client.post("/api/v1/users", json=agent_body(), headers=admin).json()
    uid = str(created["id"])
    url = f"/api/v1/users/{created['id']}"
    assert client.patch(url, json={"display_name": "宁 静"}, headers=admin).status_code == 200
    assert (
        client.patch(url, json={"password": "Copper-Meadow-19"}, headers=admin).status_code == 200
    )
    own = {"current_password": "Copper-Meadow-19", "new_password": "Silver-Orchid-31"}
    ning = {"Authorization": f"Bearer {token(client, 'ning', 'Copper-Meadow-19')}"}
    assert client.post("/api/v1/me/password", json=own, headers=ning).status_code == 204
    assert client.patch(url, json={"active": False}, headers=admin).status_code == 200
    assert client.patch(url, json={"active": True}, headers=admin).status_code == 200

    entries = _entries(client, admin, "user", uid)
    assert [e["action"] for e in entries] == [
        "user.create",
        "user.update",
        "user.password_reset",
        "user.password_change",
        "user.disable",
        "user.enable",
    ]
    create, rename, reset, change, disable, enable = entries
    before, after = _before_after(create)
    assert before is None and after["agent"]["extension"] == "2001"
    before, after = _before_after(rename)
    assert (before["display_name"], after["display_name"]) == (created["display_name"], "宁 静")
    for entry in (reset, change):
        before, after = _before_after(entry)
        assert before == after and entry["details"]["password_changed"] is True
    assert [_before_after(e)[1]["active"] for e in (disable, enable)] == [False, True]
    assert [_before_after(e)[0]["active"] for e in (disable, enable)] == [True, False]
    text = json.dumps(entries)
    for secret in (GOOD, "Copper-Meadow-19", "Silver-Orchid-31", "argon2"):
        assert secret not in text

    team = client.get("/api/v1/audit", params={"object_type": "team"}, headers=admin).json()
    assert team and _before_after(team[0]) == (None, {"name": "客服二组"})

    # departments' contacts
    base = "/api/v1/departments/security/contacts"
    contact = client.post(base, json={"role": "manager", "name": "王经理"}, headers=admin).json()
    changed = client.patch(f"{base}/{contact['id']}", json={"phone": "13900000001"}, headers=admin)
    assert changed.status_code == 200
    assert client.delete(f"{base}/{contact['id']}", headers=admin).status_code == 204
    add, update, remove = _entries(client, admin, "department", "security")[-3:]
    assert _before_after(add)[0] is None and _before_after(add)[1]["name"] == "王经理"
    assert [e["phone"] for e in _before_after(update)] == [None, "13900000001"]
    assert _before_after(remove)[1] is None and _before_after(remove)[0]["name"] == "王经理"

    # config versions: the changed keys before and after
    document = client.get("/api/v1/config/queues", headers=admin).json()["document"]
    slower = copy.deepcopy(document)
    slower["queues"]["general"]["ring_timeout_seconds"] = 25
    assert client.put("/api/v1/config/queues", json=slower, headers=admin).status_code == 201
    back = client.post("/api/v1/config/queues/versions/0/rollback", headers=admin)
    assert back.status_code == 201
    update_entry, rollback_entry = _entries(client, admin, "config", "queues")
    assert update_entry["action"] == "config.update"
    assert rollback_entry["action"] == "config.rollback"
    key = "queues.general.ring_timeout_seconds"
    assert _before_after(update_entry) == ({key: 15}, {key: 25})
    assert _before_after(rollback_entry) == ({key: 25}, {key: 15})

    # a lead moves an agent between queues live: the skills before and after
    lead = auth(client, "lead1")
    agent_id = created["agent"]["id"]
    moved = client.put(
        f"/api/v1/agents/{agent_id}/queues", json={"queues": {"complaint": 7}}, headers=lead
    )
    assert moved.status_code == 200, moved.text
    move = _entries(client, admin, "agent", str(agent_id))[-1]
    assert move["action"] == "agent.move_queues"
    assert _before_after(move) == ({"general": 6, "repair": 8}, {"complaint": 7})
