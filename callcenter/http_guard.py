"""What every HTTP answer carries and what none may show (ASGI middleware, outermost but one).

- A request id per request: ``X-Request-ID`` on the answer, ``request.state.request_id``.
- Security headers: a Content-Security-Policy with a fresh nonce per answer (pages mark their
  inline ``<script>``/``<style>`` with ``nonce="{{ request.state.csp_nonce }}"``; anything
  else inline is refused by the browser), no framing, no MIME sniffing, referrers only to
  ourselves; ``Cache-Control: no-store`` on API answers that did not choose otherwise.
- The last resort for an unhandled exception: the traceback goes to the log under the request
  id; the client gets a 500 naming that id and nothing of the exception's text (which may
  carry SQL, file paths or addresses).

A pure ASGI middleware, not ``BaseHTTPMiddleware``: it must not buffer the SSE streams.
"""

from __future__ import annotations

import logging
import secrets

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcenter.errors import error_body

logger = logging.getLogger("callcenter.http")

# FastAPI's interactive docs load Swagger UI / ReDoc from a CDN and start them with an inline
# script; they show no user data, so these two pages get a looser policy of their own.
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
DOCS_CSP = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def content_security_policy(nonce: str) -> str:
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        f"style-src 'self' 'nonce-{nonce}'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


def security_headers(path: str, nonce: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": DOCS_CSP
        if path in DOCS_PATHS
        else content_security_policy(nonce),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
        "Referrer-Policy": "same-origin",
    }


def internal_error(request_id: str) -> JSONResponse:
    message = (
        f"服务器内部错误（请求编号 {request_id}）/ internal error; the server log "
        f"has the details under request {request_id}"
    )
    body = error_body("internal-error", message, {"request_id": request_id})
    return JSONResponse(body, status_code=500)


class ResponseGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        nonce = secrets.token_urlsafe(16)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["csp_nonce"] = nonce
        path: str = scope["path"]
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in security_headers(path, nonce).items():
                    headers[name] = value
                headers["X-Request-ID"] = request_id
                if path.startswith("/api/") and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception:
            # The one broad catch, at the boundary: everything below raised something no
            # handler knew. Logged with the id the client sees, then answered blandly.
            logger.exception(
                "unhandled error in %s %s (request %s)", scope["method"], path, request_id
            )
            if started:
                return  # the answer is half sent; uvicorn closes the connection
            await internal_error(request_id)(scope, receive, guarded_send)
