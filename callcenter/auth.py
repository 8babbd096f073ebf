"""Users, bearer tokens, and the role checks every route uses (passwords: passwords.py,
sign-in and its throttle: signin.py).

Tokens are stateless: ``base64url(json payload) . base64url(HMAC-SHA256)`` signed with the
deployment's secret, carrying the user id, role and expiry. HTTP Basic works too, so a script
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

from fastapi import Depends, Request
from sqlalchemy import select
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
    payload = {
        "sub": user.id,
        "usr": user.username,
        "role": str(user.role),
        "exp": int(time.time()) + ttl_seconds,
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


# Every API request resolves its user; a short-lived cache saves two queries per request.
# A disabled user or a changed role takes effect within PRINCIPAL_CACHE_SECONDS.
PRINCIPAL_CACHE_SECONDS = 5.0


def principal_for(ctx: AppContext, user_id: int) -> Principal:
    principal = _cached_principal(ctx, user_id)
    if principal is None:
        principal = _load_principal(ctx, user_id)
        cache: dict[int, tuple[float, Principal]] = ctx.extras.setdefault("principals", {})  # type: ignore[assignment]
        cache[user_id] = (time.monotonic() + PRINCIPAL_CACHE_SECONDS, principal)
    return principal


def _cached_principal(ctx: AppContext, user_id: int) -> Principal | None:
    cache: dict[int, tuple[float, Principal]] = ctx.extras.get("principals", {})  # type: ignore[assignment]
    cached = cache.get(user_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    return None


def _load_principal(ctx: AppContext, user_id: int) -> Principal:
    from cti.models import Agent  # cti owns agents; imported here to keep auth free of cycles

    with ctx.sessions() as session:
        user = session.get(User, user_id)
        if user is None or not user.active:
            raise Unauthorized("user no longer exists or is disabled")
        agent_id = session.scalar(select(Agent.id).where(Agent.user_id == user.id))
        return Principal(user.id, user.username, user.role, user.department_id, agent_id)


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
    ctx: AppContext, authorization: str | None, token: str | None = None, *, source: str
) -> Principal:
    """Resolve ``Authorization: Bearer …`` / ``Basic …`` (or a ``token`` query value).

    Blocking (SQL, Redis, argon2 for Basic): call it in a worker thread. ``source`` is the
    client's address, for the sign-in throttle of Basic credentials."""
    if token:
        payload = read_token(ctx.settings.secret_key, token)
        return principal_for(ctx, int(str(payload["sub"])))
    if not authorization:
        raise Unauthorized("authentication required: HTTP Basic or a bearer token")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        payload = read_token(ctx.settings.secret_key, value.strip())
        return principal_for(ctx, int(str(payload["sub"])))
    if scheme.lower() == "basic":
        try:
            username, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials") from None
        user = sign_in(ctx, username, password, source)
        return principal_for(ctx, user.id)
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
    """The user of a loaded page session, read from the database now (refused if disabled)."""
    return _load_principal(ctx, session.user_id)


async def current_user(request: Request, ctx: AppContext = Depends(get_ctx)) -> Principal:
    """The signed-in user. A bearer token of a user resolved in the last few seconds is checked
    right here (an HMAC, no I/O); a cache miss (a database read) and HTTP Basic (argon2, slow
    on purpose, throttled) run in a worker thread. Without an Authorization header, a page's
    session cookie (with its CSRF token on state-changing requests) signs the request in."""
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
        payload = read_token(ctx.settings.secret_key, value.strip())
        cached = _cached_principal(ctx, int(str(payload["sub"])))
        if cached is not None:
            return cached
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
