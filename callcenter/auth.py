"""Users, bearer tokens, and the role checks every route uses (passwords: passwords.py,
sign-in and its throttle: signin.py).

Tokens are ``base64url(json payload) . base64url(HMAC-SHA256)`` signed with the deployment's
secret, carrying the user id, role, issue time and expiry. Each request reads the user's row:
a disabled user, or a token issued before the user's last credentials change, is refused at
once (``check_user_current``). HTTP Basic works too, so a script
can call the API without fetching a token first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Depends, Request
from sqlalchemy import column, select, table
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from callcenter import sessions
from callcenter.context import AppContext
from callcenter.errors import Forbidden, Unauthorized
from callcenter.models import Role, User
from callcenter.passwords import hash_password as hash_password  # re-exported
from callcenter.passwords import sip_ha1 as sip_ha1  # re-exported
from callcenter.passwords import verify_password as verify_password  # re-exported
from callcenter.signin import sign_in


@dataclass(frozen=True)
class Principal:
    """The signed-in user as routes see it."""

    user_id: int
    username: str
    role: Role
    department_id: int | None = None
    agent_id: int | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(secret: str, user: User, ttl_seconds: int) -> str:
    now = time.time()
    payload = {
        "sub": user.id,
        "usr": user.username,
        "role": str(user.role),
        # Full precision: compared with users.credentials_changed_at (check_user_current).
        "iat": now,
        "exp": int(now) + ttl_seconds,
    }
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())
    return f"{body}.{signature}"


def read_token(secret: str, token: str) -> dict[str, object]:
    try:
        body, signature = token.split(".", 1)
        expected = _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            raise Unauthorized("invalid token signature")
        payload: dict[str, object] = json.loads(_unb64(body))
    except (ValueError, binascii.Error, json.JSONDecodeError):
        raise Unauthorized("malformed token") from None
    if int(str(payload.get("exp", 0))) < time.time():
        raise Unauthorized("token expired")
    return payload


def authenticate(ctx: AppContext, username: str, password: str, *, source: str) -> User:
    """The active user with this name and password: ``signin.sign_in`` (throttled per account
    and per ``source`` address, one argon2 verification whatever the user). Blocking: call it
    in a worker thread."""
    return sign_in(ctx, username, password, source)


def check_user_current(user: User, issued_at: float | None) -> None:
    """Refuse a credential (bearer token, page session) that no longer speaks for ``user``.

    ``issued_at`` is when the credential was issued (seconds since the epoch, fractions kept),
    or None for one that does not say. A disabled user is refused at once; so is a credential
    issued before the user's last password change, disable or role change
    (``users.credentials_changed_at``). Page sessions call this too.
    """
    if not user.active:
        raise Unauthorized("此账号已停用 / this user is disabled")
    changed = user.credentials_changed_at
    if changed is not None and (issued_at is None or issued_at < changed.timestamp()):
        raise Unauthorized(
            "凭据已变更, 请重新登录 / credentials changed since this was issued: sign in again"
        )


def credentials_changed_now() -> datetime:
    """The instant to store in ``credentials_changed_at``: now, floored to the millisecond, so
    a token issued in the same millisecond right after the change still counts as newer."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# The two columns of cti's ``agents`` table (``cti.models.Agent``) a principal needs: named
# here, not imported, since the kernel imports no domain (tests/foundation/test_layers.py);
# tests/cti/test_auth_agents_table.py checks they match the model.
_AGENTS = table("agents", column("id"), column("user_id"))


def principal_for(ctx: AppContext, user_id: int, issued_at: float | None = None) -> Principal:
    """The principal of a bearer token's user: one primary-key read (joined with the agent
    row) per request, so a disabled user or a changed password takes effect at once."""
    return _load_principal(ctx, user_id, issued_at, check_issued=True)


def _load_principal(
    ctx: AppContext, user_id: int, issued_at: float | None, *, check_issued: bool
) -> Principal:
    with ctx.sessions() as session:
        row = session.execute(
            select(User, _AGENTS.c.id)
            .outerjoin(_AGENTS, _AGENTS.c.user_id == User.id)
            .where(User.id == user_id)
        ).first()
        if row is None:
            raise Unauthorized("user no longer exists or is disabled")
        user, agent_id = row
        if check_issued:
            check_user_current(user, issued_at)
        elif not user.active:
            raise Unauthorized("user no longer exists or is disabled")
        return Principal(user.id, user.username, user.role, user.department_id, agent_id)


def _issued_at(payload: dict[str, object]) -> float | None:
    value = payload.get("iat")
    return float(value) if isinstance(value, int | float) else None


# The dependencies below are ``async``: FastAPI runs a plain ``def`` dependency in a worker
# thread, a hop that costs more than these do. What may block (the database, argon2) is
# handed to a worker thread explicitly.


async def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def client_address(connection: HTTPConnection) -> str:
    """The client's address as the server saw it (uvicorn resolves X-Forwarded-For only from
    its trusted proxies, ``forwarded_allow_ips``): the per-address sign-in throttle's key."""
    return connection.client.host if connection.client else "unknown"


def credentials_from_header(
    ctx: AppContext, authorization: str | None, *, source: str
) -> Principal:
    """Resolve ``Authorization: Bearer …`` / ``Basic …``.

    Blocking (SQL, Redis, argon2 for Basic): call it in a worker thread. ``source`` is the
    client's address, for the sign-in throttle of Basic credentials."""
    if not authorization:
        raise Unauthorized("authentication required: HTTP Basic or a bearer token")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        payload = read_token(ctx.settings.secret_key, value.strip())
        return principal_for(ctx, int(str(payload["sub"])), _issued_at(payload))
    if scheme.lower() == "basic":
        try:
            username, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
        user = sign_in(ctx, username, password, source)
        # The password was just checked: it is current by definition.
        return _load_principal(ctx, user.id, None, check_issued=False)
    raise Unauthorized(f"unsupported authorization scheme {scheme!r}")


def principal_for_session(
    ctx: AppContext, session_id: str, *, method: str = "GET", csrf: str | None = None
) -> Principal:
    """The user of a page session (the cookie of ``POST /login``): the user row is read on
    every request (no cache), so a disabled user is refused at once; a state-changing request
    must carry the session's CSRF token."""
    session = sessions.load(ctx, session_id)
    if session is None:
        raise Unauthorized("signed out or session expired / 登录已失效，请重新登录")
    sessions.check_csrf(session, method, csrf)
    return session_principal(ctx, session)


def session_principal(ctx: AppContext, session: sessions.PageSession) -> Principal:
    """The user of a loaded page session, read from the database now: refused if disabled, or
    if the session began before the user's last credentials change (``check_user_current``)."""
    return _load_principal(ctx, session.user_id, session.created_at, check_issued=True)


async def current_user(request: Request, ctx: AppContext = Depends(get_ctx)) -> Principal:
    """The signed-in user. A bad or expired bearer token is refused right here (an HMAC, no
    I/O); the user's row (one primary-key read) and HTTP Basic (argon2, slow on purpose,
    throttled) are read in a worker thread. Without an Authorization header, a page's session
    cookie (with its CSRF token on state-changing requests) signs the request in."""
    authorization = request.headers.get("authorization")
    session_id = request.cookies.get(sessions.COOKIE)
    if not authorization and session_id:
        return await run_in_threadpool(
            principal_for_session,
            ctx,
            session_id,
            method=request.method,
            csrf=request.headers.get(sessions.CSRF_HEADER),
        )
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        read_token(ctx.settings.secret_key, value.strip())
    return await run_in_threadpool(
        credentials_from_header, ctx, authorization, source=client_address(request)
    )


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets only the given roles through (admins always pass)."""

    async def check(principal: Principal = Depends(current_user)) -> Principal:
        if principal.role is not Role.admin and principal.role not in roles:
            allowed = ", ".join(sorted(str(r) for r in roles))
            raise Forbidden(
                f"role {principal.role} may not do this; allowed: {allowed}",
                details={"role": str(principal.role), "allowed": sorted(str(r) for r in roles)},
            )
        return principal

    return check
