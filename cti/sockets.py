"""Relaying Redis pub/sub channels to a WebSocket: the agent's and the lead's event sockets.

One relay runs two tasks in an anyio task group: one forwards channel messages to the socket,
the other answers the client's ``ping`` with ``{"type": "pong"}``. Whichever ends first (the
client went away, the socket broke) cancels the other. The Redis connection is closed inside a
shielded scope, so a server shutting down (or a test client leaving) cannot interrupt the
cleanup halfway and leak a connection or a stray ``CancelledError``.

:func:`authenticate` signs a socket in: programs send ``Authorization: Bearer`` (or Basic);
pages send their sign-in cookie, accepted only from our own Origin. No token travels in a URL.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import redis.asyncio as aioredis
from fastapi import WebSocket, WebSocketDisconnect
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from callcenter import sessions
from callcenter.auth import (
    Principal,
    client_address,
    credentials_from_header,
    principal_for_session,
)
from callcenter.context import AppContext
from callcenter.errors import Unauthorized

# Renders one pub/sub message for the client; None skips it.
Render = Callable[[dict[str, Any]], str | None]

CLEANUP_SECONDS = 2.0


@contextlib.asynccontextmanager
async def subscription(redis_url: str) -> AsyncIterator[tuple[aioredis.Redis, PubSub]]:
    """A dedicated connection and its pub/sub, closed (shielded) however the socket ends. A
    client that leaves while the handler is still sending its snapshot is not an error."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    pubsub = client.pubsub()
    try:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            yield client, pubsub
    finally:
        with anyio.move_on_after(CLEANUP_SECONDS, shield=True):
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()


async def authenticate(ctx: AppContext, websocket: WebSocket) -> Principal:
    """The socket's user: the Authorization header (programs) or the page session cookie, which
    must come with an Origin of this very host (a page elsewhere cannot ride the cookie)."""
    authorization = websocket.headers.get("authorization")
    if authorization:
        return await run_in_threadpool(
            credentials_from_header, ctx, authorization, source=client_address(websocket)
        )
    session_id = websocket.cookies.get(sessions.COOKIE)
    if not session_id:
        raise Unauthorized("authentication required: a bearer token or the page's sign-in")
    sessions.check_same_origin(websocket.headers, require_origin=True)
    return await run_in_threadpool(principal_for_session, ctx, session_id)


def channel_message(message: dict[str, Any]) -> str | None:
    """Plain channel messages are already the client's JSON."""
    return str(message["data"]) if message.get("type") == "message" else None


async def relay(
    websocket: WebSocket,
    pubsub: PubSub,
    render: Render = channel_message,
    *,
    revoked: str | None = None,
) -> None:
    """Forward until the client disconnects or the socket breaks; returns normally either way.

    ``revoked``: the user's revocation channel (``Keys.user_revoked``, subscribed by the
    caller before its snapshot). A message there (the user was disabled or their password
    changed) closes the socket at once with code 4401."""

    forward = partial(_forward, websocket, pubsub, render, revoked)
    async with anyio.create_task_group() as group:
        group.start_soon(_guarded, forward, group.cancel_scope)
        group.start_soon(_guarded, partial(_answer_pings, websocket), group.cancel_scope)


async def _guarded(work: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
    """Run one side of the relay; whichever side ends first ends the other."""
    try:
        await work()
    except (WebSocketDisconnect, RuntimeError, RedisError):
        pass  # the client left, the socket closed under us or Redis went away: stop both
    finally:
        scope.cancel()


async def _forward(
    websocket: WebSocket, pubsub: PubSub, render: Render, revoked: str | None
) -> None:
    """Channel messages to the client, rendered; the revocation channel closes the socket."""
    async for message in pubsub.listen():
        if revoked is not None and message.get("channel") == revoked:
            if message.get("type") == "message":
                await websocket.close(code=4401, reason="credentials revoked")
                return
            continue
        text = render(message)
        if text is not None:
            await websocket.send_text(text)


async def _answer_pings(websocket: WebSocket) -> None:
    while True:
        if (await websocket.receive_text()).strip() == "ping":
            await websocket.send_json({"type": "pong"})
