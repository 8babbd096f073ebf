"""Administration of people and agents: the API, the password policy, token revocation, the
edge's subscriber table following the agents table, and the audit log (docs/admin.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from starlette.websockets import WebSocketDisconnect

from callcenter.auth import sip_ha1
from callcenter.context import AppContext
from callcenter.models import AuditEntry
from cti.services import routing_for
from ivr.edge.paths import edge_paths
from tests.conftest import auth, token

REALM = "callcenter.local"
GOOD = "Harbour-Lantern-42"
GOOD_SIP = "Kettle-Orchard-77"


def agent_body(username: str = "ning", extension: str = "2001", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "username": username,
        "password": GOOD,
        "role": "agent",
        "display_name": "客服专员 宁静",
        "agent": {
            "extension": extension,
            "sip_password": GOOD_SIP,
            "queues": {"general": 6, "repair": 8},
            "team": "客服二组",
            "shift": "day",
        },
    }
    body.update(extra)
    return body


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def subscribers(ctx: AppContext) -> dict[str, str]:
    """extension -> HA1 as written for the edge's registrar."""
    path = edge_paths(ctx.settings).db_dir / "subscriber"
    rows = path.read_text().splitlines()[1:] if path.exists() else []
    return {row.split(":")[1]: row.split(":")[3] for row in rows}


def fields(response: Any) -> set[str]:
    return {p["field"] for p in response.json()["details"]["problems"]}


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return auth(client, "admin")


def test_admin_creates_an_agent_who_signs_in_and_may_register(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    created = client.post("/api/v1/users", json=agent_body(), headers=admin)
    assert created.status_code == 201, created.text
    user = created.json()
    assert user["id"] > 0 and user["role"] == "agent" and user["active"] is True
    assert user["agent"]["extension"] == "2001"
    assert user["agent"]["queues"] == {"general": 6, "repair": 8}
    assert user["agent"]["team"] == "客服二组" and user["agent"]["shift"] == "day"
    assert client.get(f"/api/v1/users/{user['id']}", headers=admin).json() == user

    me = client.get("/api/v1/me", headers=bearer(token(client, "ning", GOOD))).json()
    assert me["username"] == "ning" and me["agent_id"] == user["agent"]["id"]
    # The edge's registrar already has the new extension, with the SIP password's HA1.
    assert subscribers(ctx)["2001"] == sip_ha1("2001", REALM, GOOD_SIP)
    # The sign-in password is not the SIP password.
    assert subscribers(ctx)["2001"] != sip_ha1("2001", REALM, GOOD)


def test_department_staff_lead_qa_and_admin_are_created_too(
    client: TestClient, admin: dict[str, str]
) -> None:
    for username, role, extra in [
        ("gong", "department", {"department": "engineering"}),
        ("lead2", "lead", {}),
        ("qa2", "qa", {}),
        ("boss", "admin", {}),
    ]:
        body = {"username": username, "password": GOOD, "role": role, "display_name": username}
        response = client.post("/api/v1/users", json={**body, **extra}, headers=admin)
        assert response.status_code == 201, response.text
        assert response.json()["agent"] is None
        me = client.get("/api/v1/me", headers=bearer(token(client, username, GOOD))).json()
        assert me["role"] == role
    staff = client.get("/api/v1/users", params={"department": "engineering"}, headers=admin)
    assert {u["username"] for u in staff.json()} == {"eng1", "gong"}


def test_bad_input_lists_every_problem_with_its_field(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = agent_body(password="short")
    body["agent"].update(
        sip_password="2001-secret-x", queues={"general": 11, "nosuch": 3}, shift="dawn"
    )
    response = client.post("/api/v1/users", json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert fields(response) == {
        "password",
        "agent.sip_password",
        "agent.queues.general",
        "agent.queues.nosuch",
        "agent.shift",
    }
    assert response.json()["error_id"] == "invalid-input"

    for password, expected in [
        ("qwertyuiop", "commonly used"),
        ("pwqwertyuiop", "commonly used"),
        ("my-ning-password", "user name"),
        ("aaaaaaaaaaaa", "different characters"),
        (GOOD_SIP, "differ from the sign-in password"),
    ]:
        body = agent_body()
        if password == GOOD_SIP:
            body["password"] = GOOD_SIP
        else:
            body["password"] = password
        response = client.post("/api/v1/users", json=body, headers=admin)
        assert response.status_code == 422, (password, response.text)
        assert expected in response.text, (password, response.text)

    no_agent = {**agent_body(), "agent": None}
    assert fields(client.post("/api/v1/users", json=no_agent, headers=admin)) == {"agent"}
    staff = {"username": "x1", "password": GOOD, "role": "department", "display_name": "x"}
    assert fields(client.post("/api/v1/users", json=staff, headers=admin)) == {"department"}
    staff["department"] = "nosuch"
    assert "unknown department" in client.post("/api/v1/users", json=staff, headers=admin).text
    # Shape errors name the field too.
    shape = client.post("/api/v1/users", json={**agent_body(), "role": "king"}, headers=admin)
    assert shape.status_code == 422 and fields(shape) == {"role"}
    assert client.get("/api/v1/users", params={"q": "ning"}, headers=admin).json() == []


def test_taken_user_name_or_extension_is_a_conflict(
    client: TestClient, admin: dict[str, str]
) -> None:
    assert client.post("/api/v1/users", json=agent_body(), headers=admin).status_code == 201
    same_name = client.post("/api/v1/users", json=agent_body(extension="2002"), headers=admin)
    assert same_name.status_code == 409 and same_name.json()["details"]["field"] == "username"
    same_ext = client.post("/api/v1/users", json=agent_body("ning2", "1001"), headers=admin)
    assert same_ext.status_code == 409
    assert same_ext.json()["details"]["field"] == "agent.extension"
    ning2 = client.post("/api/v1/users", json=agent_body("ning2", "2002"), headers=admin).json()
    moved = client.patch(
        f"/api/v1/users/{ning2['id']}",
        json={"agent": {"extension": "2001", "sip_password": GOOD_SIP}},
        headers=admin,
    )
    assert moved.status_code == 409


def test_only_admins_manage_users(client: TestClient) -> None:
    lead = auth(client, "lead1")
    assert client.get("/api/v1/users", headers=lead).status_code == 403
    assert client.post("/api/v1/users", json=agent_body(), headers=lead).status_code == 403
    assert client.patch("/api/v1/users/1", json={"active": False}, headers=lead).status_code == 403


def test_disabling_stops_tokens_at_once_and_enabling_lets_the_user_sign_in_again(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    user = client.post("/api/v1/users", json=agent_body(), headers=admin).json()
    old = bearer(token(client, "ning", GOOD))
    assert client.get("/api/v1/me", headers=old).status_code == 200
    assert "2001" in subscribers(ctx)

    disabled = client.patch(f"/api/v1/users/{user['id']}", json={"active": False}, headers=admin)
    assert disabled.status_code == 200 and disabled.json()["active"] is False
    assert disabled.json()["agent"]["active"] is False
    # At once: the very next request with the same token is refused.
    refused = client.get("/api/v1/me", headers=old)
    assert refused.status_code == 401 and "disabled" in refused.json()["message"]
    assert client.get("/api/v1/me", headers=basic("ning", GOOD)).status_code == 401
    assert (
        client.post("/api/v1/auth/token", json={"username": "ning", "password": GOOD}).status_code
        == 401
    )
    assert "2001" not in subscribers(ctx)

    enabled = client.patch(f"/api/v1/users/{user['id']}", json={"active": True}, headers=admin)
    assert enabled.status_code == 200 and enabled.json()["agent"]["active"] is True
    assert client.get("/api/v1/me", headers=old).status_code == 401  # issued before the disable
    assert client.get("/api/v1/me", headers=bearer(token(client, "ning", GOOD))).status_code == 200
    assert subscribers(ctx)["2001"] == sip_ha1("2001", REALM, GOOD_SIP)


def test_disabling_a_logged_in_agent_takes_them_out_of_routing(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    headers = auth(client, "1001")
    assert client.post("/api/v1/agents/me/login", headers=headers).status_code == 200
    agent_id = client.get("/api/v1/me", headers=headers).json()["agent_id"]
    user_id = client.get("/api/v1/me", headers=headers).json()["id"]
    assert routing_for(ctx).agent(agent_id)["state"] != "logged_out"
    response = client.patch(f"/api/v1/users/{user_id}", json={"active": False}, headers=admin)
    assert response.status_code == 200
    assert routing_for(ctx).agent(agent_id)["state"] == "logged_out"


def test_password_reset_revokes_tokens_issued_before_it(
    client: TestClient, admin: dict[str, str]
) -> None:
    user = client.post("/api/v1/users", json=agent_body(), headers=admin).json()
    old = bearer(token(client, "ning", GOOD))
    new_password = "Copper-Meadow-19"
    reset = client.patch(
        f"/api/v1/users/{user['id']}", json={"password": new_password}, headers=admin
    )
    assert reset.status_code == 200 and reset.json()["credentials_changed_at"] is not None
    refused = client.get("/api/v1/me", headers=old)
    assert refused.status_code == 401 and "sign in again" in refused.json()["message"]
    assert (
        client.post("/api/v1/auth/token", json={"username": "ning", "password": GOOD}).status_code
        == 401
    )
    fresh = bearer(token(client, "ning", new_password))
    assert client.get("/api/v1/me", headers=fresh).status_code == 200
    weak = client.patch(f"/api/v1/users/{user['id']}", json={"password": "pwning"}, headers=admin)
    assert weak.status_code == 422 and fields(weak) == {"password"}


def test_users_change_their_own_password(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/api/v1/users", json=agent_body(), headers=admin)
    mine = bearer(token(client, "ning", GOOD))
    wrong = client.post(
        "/api/v1/me/password",
        json={"current_password": "nope", "new_password": "Copper-Meadow-19"},
        headers=mine,
    )
    assert wrong.status_code == 401
    weak = client.post(
        "/api/v1/me/password",
        json={"current_password": GOOD, "new_password": "password123"},
        headers=mine,
    )
    assert weak.status_code == 422 and fields(weak) == {"new_password"}
    changed = client.post(
        "/api/v1/me/password",
        json={"current_password": GOOD, "new_password": "Copper-Meadow-19"},
        headers=mine,
    )
    assert changed.status_code == 204
    assert client.get("/api/v1/me", headers=mine).status_code == 401
    assert client.get("/api/v1/me", headers=basic("ning", "Copper-Meadow-19")).status_code == 200


def test_patch_changes_names_role_queues_team_shift_and_sip_password(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    user = client.post("/api/v1/users", json=agent_body(), headers=admin).json()
    url = f"/api/v1/users/{user['id']}"
    changed = client.patch(
        url,
        json={
            "display_name": "客服专员 宁静(夜)",
            "language": "en",
            "agent": {"queues": {"fees": 9}, "team": None, "shift": "night"},
        },
        headers=admin,
    ).json()
    assert changed["display_name"] == "客服专员 宁静(夜)" and changed["language"] == "en"
    assert changed["agent"]["queues"] == {"fees": 9}
    assert changed["agent"]["team"] is None and changed["agent"]["shift"] == "night"

    new_sip = "Lantern-Harbour-88"
    client.patch(url, json={"agent": {"sip_password": new_sip}}, headers=admin)
    assert subscribers(ctx)["2001"] == sip_ha1("2001", REALM, new_sip)
    renumbered = client.patch(url, json={"agent": {"extension": "2009"}}, headers=admin)
    assert renumbered.status_code == 422 and fields(renumbered) == {"agent.sip_password"}
    renumbered = client.patch(
        url, json={"agent": {"extension": "2009", "sip_password": new_sip}}, headers=admin
    )
    assert renumbered.status_code == 200
    assert "2001" not in subscribers(ctx)
    assert subscribers(ctx)["2009"] == sip_ha1("2009", REALM, new_sip)

    # No longer an agent: the extension leaves the registrar; back to agent: it returns.
    lead = client.patch(url, json={"role": "lead"}, headers=admin).json()
    assert lead["role"] == "lead" and lead["agent"]["active"] is False
    assert "2009" not in subscribers(ctx)
    back = client.patch(url, json={"role": "agent"}, headers=admin).json()
    assert back["agent"]["active"] is True and "2009" in subscribers(ctx)
    staff = client.patch(url, json={"role": "department"}, headers=admin)
    assert staff.status_code == 422 and fields(staff) == {"department"}
    staff = client.patch(url, json={"role": "department", "department": "finance"}, headers=admin)
    assert staff.json()["department"] == "finance"
    assert client.patch(url, json={"role": "qa"}, headers=admin).json()["department"] is None
    assert client.patch(url, json={"bogus": 1}, headers=admin).status_code == 422
    assert client.patch("/api/v1/users/99999", json={}, headers=admin).status_code == 404


def test_every_change_is_audited_with_before_and_after_but_never_a_password(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    user = client.post("/api/v1/users", json=agent_body(), headers=admin).json()
    url = f"/api/v1/users/{user['id']}"
    client.patch(url, json={"display_name": "宁静"}, headers=admin)
    client.patch(url, json={"password": "Copper-Meadow-19"}, headers=admin)
    client.patch(url, json={"agent": {"sip_password": "Lantern-Harbour-88"}}, headers=admin)
    client.patch(url, json={"active": False}, headers=admin)
    client.patch(url, json={"active": True}, headers=admin)
    log = client.get(
        "/api/v1/audit", params={"object_type": "user", "object_id": user["id"]}, headers=admin
    ).json()
    actions = [e["action"] for e in reversed(log)]
    assert actions == [
        "user.create",
        "user.update",
        "user.password_reset",
        "user.sip_password_reset",
        "user.disable",
        "user.enable",
    ]
    assert all(e["actor"] == "admin" for e in log)
    create, rename = log[-1]["details"], log[-2]["details"]
    assert create["before"] is None and create["after"]["agent"]["extension"] == "2001"
    assert rename["before"]["display_name"] == "客服专员 宁静"
    assert rename["after"]["display_name"] == "宁静"
    assert log[0]["details"]["before"]["active"] is False
    assert log[0]["details"]["after"]["active"] is True
    assert log[-3]["details"]["password_changed"] is True
    with ctx.sessions() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.object_type == "user")).all()
        text = json.dumps([r.details for r in rows], ensure_ascii=False)
    for secret in (GOOD, GOOD_SIP, "Copper-Meadow-19", "Lantern-Harbour-88", "argon2", "ha1"):
        assert secret not in text


def test_list_filters(client: TestClient, admin: dict[str, str]) -> None:
    user = client.post("/api/v1/users", json=agent_body(), headers=admin).json()
    client.patch(f"/api/v1/users/{user['id']}", json={"active": False}, headers=admin)
    agents = client.get("/api/v1/users", params={"role": "agent"}, headers=admin).json()
    assert len(agents) == 13 and all(u["role"] == "agent" for u in agents)
    inactive = client.get("/api/v1/users", params={"active": "false"}, headers=admin).json()
    assert [u["username"] for u in inactive] == ["ning"]
    found = client.get("/api/v1/users", params={"q": "宁"}, headers=admin).json()
    assert [u["username"] for u in found] == ["ning"]


def test_token_without_issue_time_is_refused_once_credentials_changed(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    """Tokens from before this change carry no ``iat``: refused after a password change."""
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    user = client.post("/api/v1/users", json=agent_body(), headers=admin).json()
    body = b64(json.dumps({"sub": user["id"], "exp": 4102444800}).encode())
    sig = b64(hmac.new(ctx.settings.secret_key.encode(), body.encode(), hashlib.sha256).digest())
    legacy = bearer(f"{body}.{sig}")
    assert client.get("/api/v1/me", headers=legacy).status_code == 200
    reset = {"password": "Copper-Meadow-19"}
    client.patch(f"/api/v1/users/{user['id']}", json=reset, headers=admin)
    assert client.get("/api/v1/me", headers=legacy).status_code == 401


def test_create_disable_and_conflicts_on_sqlite_and_postgresql(
    database_url: str, tmp_path: Path, redis_client: object
) -> None:
    """The services and migration 0005 on both databases (time-zone-aware change instant)."""
    from admin import users
    from admin.schemas import UserCreate, UserUpdate
    from callcenter.auth import check_user_current, issue_token, principal_for, read_token
    from callcenter.context import build_context
    from callcenter.errors import Conflict, Unauthorized
    from callcenter.migrate import upgrade
    from config.settings import Settings
    from tests.conftest import TEST_REDIS_URL

    upgrade(database_url)
    settings = Settings(
        environment="test", state_dir=tmp_path, database_url=database_url, redis_url=TEST_REDIS_URL
    )
    context = build_context(settings)
    try:
        created = users.create(context, actor="cli", data=UserCreate.model_validate(agent_body()))
        with pytest.raises(Conflict):
            users.create(context, actor="cli", data=UserCreate.model_validate(agent_body()))
        with context.sessions() as session:
            user = users.get_user(session, user_id=created.id)
        issued = read_token(settings.secret_key, issue_token(settings.secret_key, user, 60))
        assert principal_for(context, created.id, float(str(issued["iat"]))).username == "ning"
        users.update(
            context, actor="cli", user_id=created.id, data=UserUpdate(password="Copper-Meadow-19")
        )
        with context.sessions() as session:
            user = users.get_user(session, user_id=created.id)
        assert user.credentials_changed_at is not None
        assert user.credentials_changed_at.utcoffset() is not None
        with pytest.raises(Unauthorized):
            check_user_current(user, float(str(issued["iat"])))
        check_user_current(user, user.credentials_changed_at.timestamp())
        assert subscribers(context)["2001"] == sip_ha1("2001", REALM, GOOD_SIP)
    finally:
        context.close()


def test_the_last_active_admin_cannot_be_disabled_or_demoted(
    client: TestClient, admin: dict[str, str]
) -> None:
    me = client.get("/api/v1/me", headers=admin).json()
    url = f"/api/v1/users/{me['id']}"
    refused = client.patch(url, json={"active": False}, headers=admin)
    assert refused.status_code == 409 and refused.json()["details"]["field"] == "active"
    refused = client.patch(url, json={"role": "lead"}, headers=admin)
    assert refused.status_code == 409 and refused.json()["details"]["field"] == "role"
    body = {"username": "boss", "password": GOOD, "role": "admin", "display_name": "boss"}
    assert client.post("/api/v1/users", json=body, headers=admin).status_code == 201
    assert client.patch(url, json={"active": False}, headers=admin).status_code == 200


def test_disabling_closes_the_users_open_socket_at_once(
    client: TestClient, ctx: AppContext, admin: dict[str, str]
) -> None:
    user = client.post("/api/v1/users", json=agent_body(), headers=admin).json()
    old = bearer(token(client, "ning", GOOD))
    with client.websocket_connect("/api/v1/agents/me/events", headers=old) as ws:
        assert ws.receive_json()["type"] == "state"
        disabled = client.patch(
            f"/api/v1/users/{user['id']}", json={"active": False}, headers=admin
        )
        assert disabled.status_code == 200
        # The next thing on the socket is its close (4401), not silence until the client leaves.
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 4401
