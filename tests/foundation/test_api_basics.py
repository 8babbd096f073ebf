"""Users, roles, tokens, /healthz, /metrics and OpenAPI."""

from __future__ import annotations

import base64

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from callcenter.context import AppContext
from callcenter.models import Role, User
from cti.models import Agent, Customer, CustomerPhone, Department
from tests.conftest import auth


def basic(username: str, password: str) -> dict[str, str]:
    return {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }


def test_token_and_basic(client: TestClient) -> None:
    headers = auth(client, "1001")
    me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["role"] == "agent" and me.json()["agent_id"] is not None
    assert client.get("/api/v1/me", headers=basic("lead1", "pwlead1")).json()["role"] == "lead"
    form = client.post("/api/v1/auth/token", data={"username": "qa1", "password": "pwqa1"})
    assert form.status_code == 200 and form.json()["role"] == "qa"


def test_wrong_credentials_get_401(client: TestClient) -> None:
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/api/v1/me", headers=basic("1001", "wrong")).status_code == 401
    assert (
        client.get("/api/v1/me", headers={"Authorization": "Bearer forged.token"}).status_code
        == 401
    )
    bad = client.post("/api/v1/auth/token", json={"username": "1001", "password": "nope"})
    assert bad.status_code == 401
    assert bad.json()["error_id"] == "unauthorized"
    missing = client.post("/api/v1/auth/token", json={"username": "1001"})
    assert missing.status_code == 422


def test_tampered_token_is_refused(client: TestClient) -> None:
    token = auth(client, "1001")["Authorization"].removeprefix("Bearer ")
    body, signature = token.split(".")
    payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).replace(
        b'"agent"', b'"admin"'
    )
    forged = base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + "." + signature
    assert (
        client.get("/api/v1/users", headers={"Authorization": f"Bearer {forged}"}).status_code
        == 401
    )


def test_wrong_role_gets_403(client: TestClient) -> None:
    response = client.get("/api/v1/users", headers=auth(client, "1001"))
    assert response.status_code == 403
    assert response.json()["details"]["allowed"] == ["admin"]
    users = client.get("/api/v1/users", headers=auth(client, "admin"))
    assert users.status_code == 200
    assert {u["role"] for u in users.json()} == {"admin", "lead", "qa", "agent", "department"}


def test_every_api_route_requires_a_user(client: TestClient) -> None:
    open_routes = {"/api/v1/auth/token"}
    for route in client.app.routes:  # type: ignore[attr-defined]
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or {"GET"}
        if not path.startswith("/api/v1") or path in open_routes or "{" in path:
            continue
        for method in methods - {"HEAD", "OPTIONS"}:
            assert client.request(method, path).status_code == 401, f"{method} {path}"


def test_demo_data(ctx: AppContext) -> None:
    with ctx.sessions() as session:
        extensions = sorted(session.scalars(select(Agent.extension)))
        assert extensions == [str(n) for n in range(1001, 1013)]
        roles = {u.username: u.role for u in session.scalars(select(User))}
        assert (
            roles["lead1"] is Role.lead and roles["qa1"] is Role.qa and roles["admin"] is Role.admin
        )
        assert (session.scalar(select(func.count()).select_from(Customer)) or 0) >= 200
        phone = session.scalar(select(CustomerPhone).where(CustomerPhone.number == "13800138000"))
        assert phone is not None and phone.customer.member
        assert {d.code for d in session.scalars(select(Department))} >= {
            "engineering",
            "security",
            "environment",
            "finance",
            "cs_assistant",
        }


def test_healthz_and_metrics(client: TestClient) -> None:
    # /healthz is liveness only; /readyz is tested in test_up_readiness.py
    ok = client.get("/healthz")
    assert ok.status_code == 200 and ok.json() == {"status": "ok"}, ok.text
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    spec = client.get("/openapi.json").json()
    assert "/api/v1/auth/token" in spec["paths"]
