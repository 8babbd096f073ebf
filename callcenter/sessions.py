"""Server-side sign-in sessions for the pages: a random id in an HttpOnly cookie, the record in
Redis with an expiry, a per-session CSRF token, and the same-origin checks of sockets and SSE.

Programs keep bearer tokens and HTTP Basic; a browser page signs in once at ``POST /login``
and every later request (pages, ``/api/v1`` calls made by the page's script, the desktop's
WebSocket, the wallboard's SSE) is recognised by the cookie. Redis holds the record under a
SHA-256 digest of the cookie value, so reading Redis does not hand out live sessions.

Each record keeps the user id, the CSRF token and the session's creation time (so a
revocation of "everything issued before T" can also end sessions).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from callcenter.context import AppContext
from callcenter.errors import Forbidden

COOKIE = "cc_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfRefused(Forbidden):
    error_id = "csrf-token-invalid"


class OriginRefused(Forbidden):
    error_id = "origin-refused"


@dataclass(frozen=True)
class PageSession:
    session_id: str
    user_id: int
    csrf_token: str
    created_at: float


def _key(ctx: AppContext, session_id: str) -> str:
    digest = hashlib.sha256(session_id.encode()).hexdigest()
    return ctx.keys.page_session(digest)


def ttl_seconds(ctx: AppContext) -> int:
    return ctx.settings.token_ttl_seconds


def start(ctx: AppContext, user_id: int) -> PageSession:
    """A fresh session (new id and CSRF token) for a user who just proved their password."""
    session = PageSession(
        session_id=secrets.token_urlsafe(32),
        user_id=user_id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=time.time(),
    )
    redis_client: Any = ctx.redis
    key = _key(ctx, session.session_id)
    with redis_client.pipeline(transaction=True) as pipe:
        pipe.hset(
            key,
            mapping={
                "user_id": session.user_id,
                "csrf": session.csrf_token,
                "created_at": f"{session.created_at:.6f}",
            },
        )
        pipe.expire(key, ttl_seconds(ctx))
        pipe.execute()
    return session


def load(ctx: AppContext, session_id: str) -> PageSession | None:
    """The live session for a cookie value, or None (unknown, expired or ended)."""
    if not session_id or len(session_id) > 128:
        return None
    redis_client: Any = ctx.redis
    fields: dict[str, str] = redis_client.hgetall(_key(ctx, session_id))
    if not fields or "user_id" not in fields:
        return None
    return PageSession(
        session_id=session_id,
        user_id=int(fields["user_id"]),
        csrf_token=fields.get("csrf", ""),
        created_at=float(fields.get("created_at", "0")),
    )


def end(ctx: AppContext, session_id: str) -> None:
    redis_client: Any = ctx.redis
    redis_client.delete(_key(ctx, session_id))


def check_csrf(session: PageSession, method: str, presented: str | None) -> None:
    """A state-changing request made with the cookie must carry the session's token."""
    if method.upper() in SAFE_METHODS:
        return
    if not presented or not hmac.compare_digest(presented, session.csrf_token):
        raise CsrfRefused(
            "CSRF token missing or wrong: send the page's token in the X-CSRF-Token header "
            "or the csrf_token form field / 缺少或错误的 CSRF 令牌"
        )


def cookie_secure(ctx: AppContext, scheme: str) -> bool:
    return ctx.settings.http.secure_cookies or scheme in {"https", "wss"}


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.netloc or "").lower()


def check_same_origin(headers: Mapping[str, str], *, require_origin: bool) -> None:
    """Cookie-authenticated sockets and streams must come from our own pages: the Origin's
    host:port equals the Host the browser addressed. Browsers always send Origin with a
    WebSocket; a same-origin EventSource may omit it, and then ``Sec-Fetch-Site`` (when sent)
    must say same-origin."""
    host = (headers.get("host") or "").lower()
    origin = headers.get("origin")
    if origin is None or origin == "null":
        if require_origin:
            raise OriginRefused("a page's socket must carry its Origin / 缺少 Origin")
        site = headers.get("sec-fetch-site")
        if site is not None and site not in {"same-origin", "none"}:
            raise OriginRefused(f"cross-site request refused (Sec-Fetch-Site: {site})")
        return
    if not host or _host_of(origin) != host:
        raise OriginRefused(
            f"origin {origin!r} is not this site ({host!r}) / 来源不是本站",
            details={"origin": origin, "host": host},
        )
