"""The wallboard stream pushes new figures after an event (real server, real consumer)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from callcenter.context import AppContext
from callcenter.streams import CallEvent, EventType


def _token(base: str, user: str) -> str:
    response = httpx.post(
        f"{base}/api/v1/auth/token", json={"username": user, "password": f"pw{user}"}
    )
    return str(response.json()["access_token"])


def test_sse_pushes_an_update_after_an_event(ctx: AppContext, live_server: str) -> None:
    token = _token(live_server, "lead1")
    url = f"{live_server}/api/v1/wallboard/stream"
    denied = httpx.get(url, headers={"Authorization": f"Bearer {_token(live_server, '1001')}"})
    assert denied.status_code == 403
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", url, headers=headers, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        first = _next_snapshot(lines)
        assert first["queues"]["general"]["waiting"] == 0
        event = CallEvent(
            EventType.call_queued,
            "sse-1",
            at=datetime.now(UTC).isoformat(),
            data={"queue": "general"},
        )
        redis_client: Any = ctx.redis
        redis_client.xadd(ctx.keys.events, event.to_fields())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            snapshot = _next_snapshot(lines)
            if snapshot["queues"]["general"]["waiting"] == 1:
                assert snapshot["center"]["windows"]["today"]["offered"] == 1
                return
        raise AssertionError("no update with the new call within the deadline")


def _next_snapshot(lines: object) -> dict:
    for line in lines:  # type: ignore[attr-defined]
        if line.startswith("data: "):
            return json.loads(line[6:])
    raise AssertionError("stream ended")


def test_sse_stream_ends_at_once_when_its_user_is_disabled(live_server: str) -> None:
    admin = {"Authorization": f"Bearer {_token(live_server, 'admin')}"}
    body = {"username": "lead9", "password": "Harbour-Lantern-42", "role": "lead",
            "display_name": "值班长 九"}  # fmt: skip
    created = httpx.post(f"{live_server}/api/v1/users", json=body, headers=admin)
    assert created.status_code == 201, created.text
    token = httpx.post(
        f"{live_server}/api/v1/auth/token",
        json={"username": "lead9", "password": "Harbour-Lantern-42"},
    ).json()["access_token"]
    url = f"{live_server}/api/v1/wallboard/stream"
    # read timeout 5 s: under the 15 s keep-alive, so a stream left open fails the test
    with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as r:
        lines = r.iter_lines()
        _next_snapshot(lines)
        disabled = httpx.patch(
            f"{live_server}/api/v1/users/{created.json()['id']}",
            json={"active": False},
            headers=admin,
        )
        assert disabled.status_code == 200
        began = time.monotonic()
        for _line in lines:  # an update already on its way may still come; then the end
            pass
        assert time.monotonic() - began < 3
