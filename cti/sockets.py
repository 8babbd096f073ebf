"""Relaying Redis pub/sub channels to a WebSocket: the agent's and the lead's event sockets.

One relay runs two tasks in an anyio task group: one forwards channel messages to the socket,
the other answers the client's ``ping`` with ``{"type": "pong"}``. Whichever ends first (the
client went away, the socket broke) cancels the other. The Redis connection is closed inside a
shielded scope, so a server shutting down (or a test client leaving) cannot interrupt the
cleanup halfway and leak a connection or a stray ``CancelledError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import redis.asyncio as aioredis
from fastapi import WebSocket, WebSocketDisconnect
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

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


def channel_message(message: dict[str, Any]) -> str | None:
    """Plain channel messages are already the client's JSON."""
    return str(message["data"]) if message.get("type") == "message" else None


async def relay(websocket: WebSocket, pubsub: PubSub, render: Render = channel_message) -> None:
    """Forward until the client disconnects or the socket breaks; returns normally either way."""

    async def guarded(work: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        try:
            await work()
        except (WebSocketDisconnect, RuntimeError, RedisError):
            pass  # the client left, the socket closed under us or Redis went away: stop both
        finally:
            scope.cancel()

    async def forward() -> None:
        async for message in pubsub.listen():
            text = render(message)
            if text is not None:
                await websocket.send_text(text)

    async def answer_pings() -> None:
        while True:
            if (await websocket.receive_text()).strip() == "ping":
                await websocket.send_json({"type": "pong"})

    async with anyio.create_task_group() as group:
        group.start_soon(guarded, forward, group.cancel_scope)
        group.start_soon(guarded, answer_pings, group.cancel_scope)
