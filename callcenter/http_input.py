"""Refuses NUL characters anywhere in a request's input, naming where, before a route runs.

PostgreSQL cannot store or even compare a text value with a NUL (0x00) byte: a NUL in a query
parameter, a path segment or a JSON string reached the driver and the client got a 500.
SQLite stores it silently, which is worse. No field of this API has a use for it, so one
check at the edge covers every route: a 422 naming the field, in the usual error shape.

JSON and form bodies are read here to be checked and then handed on unchanged; requests with
other bodies (none in this API) pass as they are.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callcenter.errors import error_body

NUL = "\x00"


def nul_in(value: Any, where: str) -> str | None:
    """The dotted path of the first string (or key) holding a NUL inside a JSON value."""
    if isinstance(value, str):
        return where if NUL in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if NUL in str(key):
                return here.replace(NUL, "\\x00")
            found = nul_in(item, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_in(item, f"{where}.{index}" if where else str(index))
            if found is not None:
                return found
    return None


def _nul_in_query(query_string: bytes) -> str | None:
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if NUL in name or NUL in value:
            return f"query.{name.replace(NUL, chr(92) + 'x00')}"
    return None


def _nul_in_body(body: bytes, content_type: str) -> str | None:
    if content_type.startswith("application/json"):
        try:
            return nul_in(json.loads(body), "")
        except (ValueError, UnicodeDecodeError):
            return None  # not JSON: the route's own parsing says so
    if content_type.startswith("application/x-www-form-urlencoded"):
        found = _nul_in_query(body)
        return found.removeprefix("query.") if found else None
    return None


def _refusal(field: str) -> JSONResponse:
    message = f"输入含有 NUL 字符 / invalid input: {field} contains a NUL character"
    problems = [{"field": field, "message": "contains a NUL character"}]
    return JSONResponse(error_body("invalid-input", message, {"problems": problems}), 422)


class RefuseNulCharacters:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        field = "path" if NUL in scope["path"] else _nul_in_query(scope["query_string"])
        content_type = Headers(scope=scope).get("content-type", "")
        checks_body = content_type.startswith(
            ("application/json", "application/x-www-form-urlencoded")
        )
        if field is None and checks_body:
            messages: list[Message] = []
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
            body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
            field = _nul_in_body(body, content_type)
            receive = _replay(messages, receive)
        if field is not None:
            await _refusal(field)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """The body messages already read, then whatever the client sends next (a disconnect)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
