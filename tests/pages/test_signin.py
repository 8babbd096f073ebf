"""Page sign-in: the session cookie, landing pages per role, safe ``next=``, CSRF, logout, the
role checks of every page, and the cookie on the sockets and the wallboard stream."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from starlette.websockets import WebSocketDisconnect

from callcenter.context import AppContext
from callcenter.models import User
from callcenter.sessions import COOKIE
from pages.access import safe_next
from tests.pages.conftest import csrf_of, sign_in

ORIGIN = {"Origin": "http://testserver"}


def socket_refused(client: TestClient, path: str, headers: dict[str, str]) -> int:
    """The close code of a socket the server refuses."""
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        client.websocket_connect(path, headers=headers),
    ):
        pass
    return refused.value.code


@pytest.mark.parametrize(
    ("username", "home"),
    [
        ("1001", "/desktop"),
        ("lead1", "/lead"),
        ("eng1", "/tickets"),
        ("qa1", "/qa"),
        ("admin", "/admin"),
    ],
)
def test_each_role_lands_on_its_page(client: TestClient, username: str, home: str) -> None:
    assert sign_in(client, username) == home
    assert client.get(home).status_code == 200


def test_cookie_is_httponly_lax_and_fresh_at_each_sign_in(
    client: TestClient, ctx: AppContext
) -> None:
    response = client.post(
        "/login", data={"username": "1001", "password": "pw1001"}, follow_redirects=False
    )
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    assert "HttpOnly" in header and "SameSite=lax" in header and "Path=/" in header
    assert "Secure" not in header  # plain http in this test; https or the setting adds it
    first = client.cookies[COOKIE]
    sign_in(client, "1001")
    second = client.cookies[COOKIE]
    assert first != second
    # the session signed in over stays ended: its cookie no longer opens a page
    stale = TestClient(client.app, cookies={COOKIE: first})
    assert stale.get("/desktop", follow_redirects=False).status_code == 303
    # the record lives in Redis with an expiry and the creation time, not under the raw id
    keys = list(ctx.redis.scan_iter(f"{ctx.keys.prefix}:session:*"))
    assert len(keys) == 1 and second not in str(keys[0])
    record = ctx.redis.hgetall(keys[0])
    assert set(record) == {"user_id", "csrf", "created_at"}
    assert 0 < int(ctx.redis.ttl(keys[0])) <= ctx.settings.token_ttl_seconds


def test_secure_cookie_when_configured(ctx: AppContext, client: TestClient) -> None:
    ctx.settings.http.secure_cookies = True
    response = client.post(
        "/login", data={"username": "1001", "password": "pw1001"}, follow_redirects=False
    )
    assert "Secure" in response.headers["set-cookie"]


def test_wrong_password_shows_the_form_again(client: TestClient) -> None:
    response = client.post("/login", data={"username": "1001", "password": "nope"})
    assert response.status_code == 401
    assert "用户名或密码错误" in response.text and COOKIE not in client.cookies


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "/\\evil.example",
        "/\\/evil.example",
        "http://evil.example/",
        "https:evil.example",
        "javascript:alert(1)",
        "/\tevil",
        "/ok\r\nSet-Cookie: x=1",
        "evil",
        "",
    ],
)
def test_next_goes_only_to_local_paths(client: TestClient, target: str) -> None:
    assert safe_next(target) is None
    page = client.get("/login", params={"next": target})
    assert 'name="next" value=""' in page.text
    assert sign_in(client, "1001", next=target) == "/desktop"


def test_next_to_a_local_page_is_kept(client: TestClient) -> None:
    assert sign_in(client, "eng1", next="/tickets?status=dispatched") == (
        "/tickets?status=dispatched"
    )
    assert client.get("/login?next=/\\evil.example").text.count("evil") == 0


def test_signed_out_pages_redirect_to_login(client: TestClient) -> None:
    for page in ("/desktop", "/lead", "/tickets", "/wallboard", "/tickets/GD1"):
        response = client.get(page, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=%2F")


@pytest.mark.parametrize(
    ("username", "refused"),
    [
        ("1001", ["/lead", "/wallboard"]),
        ("eng1", ["/desktop", "/lead", "/wallboard"]),
        ("qa1", ["/desktop", "/lead"]),
        ("lead1", []),
    ],
)
def test_each_role_is_refused_the_pages_it_may_not_see(
    client: TestClient, username: str, refused: list[str]
) -> None:
    sign_in(client, username)
    for page in refused:
        response = client.get(page)
        assert response.status_code == 403, page
        assert "无权访问" in response.text and "您的角色不能打开此页面" in response.text
        english = client.get(page, params={"lang": "en"})
        assert english.status_code == 403 and "Not allowed" in english.text
    for page in {"/desktop", "/lead", "/tickets", "/wallboard"} - set(refused):
        if username == "qa1" and page == "/desktop":
            continue
        assert client.get(page).status_code == 200, page


def test_state_changes_need_the_csrf_token(client: TestClient) -> None:
    sign_in(client, "1001")
    token = csrf_of(client, "/desktop")
    refused = client.post("/api/v1/agents/me/login")
    assert refused.status_code == 403 and refused.json()["error_id"] == "csrf-token-invalid"
    wrong = client.post("/api/v1/agents/me/login", headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    assert client.get("/api/v1/agents/me").status_code == 200  # reading needs no token
    accepted = client.post("/api/v1/agents/me/login", headers={"X-CSRF-Token": token})
    assert accepted.status_code == 200 and accepted.json()["state"] == "not_ready"
    # a page form without the token: 403 page, and the session stays
    logout = client.post("/logout")
    assert logout.status_code == 403 and "CSRF" in logout.text
    assert client.get("/desktop").status_code == 200


def test_logout_ends_the_session(client: TestClient) -> None:
    sign_in(client, "1001")
    cookie = client.cookies[COOKIE]
    token = csrf_of(client, "/desktop")
    response = client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    old = TestClient(client.app, cookies={COOKIE: cookie})
    assert old.get("/desktop", follow_redirects=False).status_code == 303
    assert old.get("/api/v1/me").status_code == 401
    assert socket_refused(old, "/api/v1/agents/me/events", ORIGIN) == 4401


def test_a_disabled_user_is_refused_at_once(client: TestClient, ctx: AppContext) -> None:
    sign_in(client, "1002")
    assert client.get("/desktop").status_code == 200
    with ctx.sessions.begin() as session:
        session.execute(update(User).where(User.username == "1002").values(active=False))
    assert client.get("/desktop", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").status_code == 401


def test_sockets_take_the_cookie_only_from_this_origin(client: TestClient) -> None:
    sign_in(client, "1001")
    with client.websocket_connect("/api/v1/agents/me/events", headers=ORIGIN) as ws:
        assert ws.receive_json()["type"] == "state"
    for headers in ({"Origin": "http://evil.example"}, {}, {"Origin": "null"}):
        assert socket_refused(client, "/api/v1/agents/me/events", headers) == 4403, headers
    sign_in(client, "lead1")
    with client.websocket_connect("/api/v1/leads/events", headers=ORIGIN) as ws:
        assert ws.receive_json()["type"] == "staffing"
    assert socket_refused(client, "/api/v1/leads/events", {"Origin": "http://evil.example"}) == 4403
    sign_in(client, "1001")
    assert socket_refused(client, "/api/v1/leads/events", ORIGIN) == 4403


def test_wallboard_stream_refuses_a_cross_site_cookie(client: TestClient) -> None:
    sign_in(client, "lead1")
    cross = client.get("/api/v1/wallboard/stream", headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and cross.json()["error_id"] == "origin-refused"
    site = client.get("/api/v1/wallboard/stream", headers={"Sec-Fetch-Site": "cross-site"})
    assert site.status_code == 403
