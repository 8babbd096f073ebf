"""Signed webhooks against a local receiver that fails first: retries with backoff, logged."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.queues import queues
from tests.tickets.conftest import MakeCtx
from tests.tickets.helpers import payload, run_worker
from ticketing import jobs, services
from ticketing.models import WebhookDelivery
from ticketing.schemas import TicketCreate

SECRET = "test-shared-secret-123"


class Receiver:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.failures_left = 1
        self.lock = threading.Lock()


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with state.lock:
                state.requests.append((self.path, dict(self.headers), body))
                fail = self.path == "/always-fail" or state.failures_left > 0
                if self.path != "/always-fail" and state.failures_left > 0:
                    state.failures_left -= 1
            self.send_response(500 if fail else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def deliveries(ctx: AppContext) -> list[WebhookDelivery]:
    with ctx.sessions() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def work_until(ctx: AppContext, done: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run_worker(ctx)
        if done():
            return
        time.sleep(0.2)
    raise AssertionError(
        f"not done within {seconds}s: {[(d.event, d.status, d.attempts) for d in deliveries(ctx)]}"
    )


def test_signed_deliveries_are_retried_with_backoff_and_logged(
    make_ctx: MakeCtx, receiver: tuple[Receiver, str]
) -> None:
    state, base = receiver
    ctx = make_ctx(
        **{
            "webhooks.toml": f"""
max_attempts = 3
backoff_seconds = 0.5
timeout_seconds = 5
[targets.erp]
url = "{base}/hooks"
secret = "{SECRET}"
events = ["ticket.*"]
[targets.broken]
url = "{base}/always-fail"
secret = "another-secret-456"
events = ["ticket.dispatched"]
"""
        }
    )
    ticket = services.create_ticket(ctx, TicketCreate(**payload()), actor="1001")
    work_until(ctx, lambda: all(d.status != "pending" for d in deliveries(ctx)))

    rows = {(d.url.rsplit("/", 1)[-1], d.event): d for d in deliveries(ctx)}
    assert set(rows) == {
        ("hooks", "ticket.registered"),
        ("hooks", "ticket.dispatched"),
        ("always-fail", "ticket.dispatched"),
    }
    good = [rows[("hooks", "ticket.registered")], rows[("hooks", "ticket.dispatched")]]
    assert all(d.status == "delivered" and d.last_status_code == 204 for d in good)
    assert sorted(d.attempts for d in good) == [1, 2]  # the receiver failed the first request
    retried = next(d for d in good if d.attempts == 2)
    assert retried.delivered_at is not None and retried.delivered_at > retried.created_at
    broken = rows[("always-fail", "ticket.dispatched")]
    assert broken.status == "failed" and broken.attempts == 3 and broken.last_status_code == 500

    hook_requests = [r for r in state.requests if r[0] == "/hooks"]
    assert len(hook_requests) == 3
    for _path, headers, body in hook_requests:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Callcenter-Signature"], expected)
        message = json.loads(body)
        assert message["ticket"]["number"] == ticket.number
        assert headers["X-Callcenter-Event"] == message["event"]
        assert headers["X-Callcenter-Delivery"].isdigit()
    # a tampered body would not verify
    _p, headers, body = hook_requests[-1]
    forged = "sha256=" + hmac.new(SECRET.encode(), body + b" ", hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(headers["X-Callcenter-Signature"], forged)
    # backoff doubles: the always-failing target waited ~0.5 s, then ~1 s between attempts
    fails = [r for r in state.requests if r[0] == "/always-fail"]
    attempts = [int(h["X-Callcenter-Attempt"]) for _p, h, _b in fails]
    assert attempts == [1, 2, 3]


def test_no_targets_means_no_deliveries(ctx: AppContext) -> None:
    services.create_ticket(ctx, TicketCreate(**payload()), actor="1001")
    assert deliveries(ctx) == []


def test_lost_delivery_jobs_are_found_by_the_scan(
    make_ctx: MakeCtx, receiver: tuple[Receiver, str]
) -> None:
    state, base = receiver
    state.failures_left = 0
    ctx = make_ctx(
        **{
            "webhooks.toml": f"""
[targets.erp]
url = "{base}/hooks"
secret = "{SECRET}"
"""
        }
    )
    services.create_ticket(ctx, TicketCreate(**payload()), actor="1001")
    # Redis lost the queued jobs (or the worker died holding them): SQL still has the rows
    for queue in queues(ctx):
        queue.empty()
    assert [d.status for d in deliveries(ctx)] == ["pending", "pending"]
    report = jobs.scan(now=datetime.now(UTC) + timedelta(minutes=1), reschedule=False)
    assert report["webhooks_requeued"] == 2
    work_until(ctx, lambda: all(d.status == "delivered" for d in deliveries(ctx)))
    assert len(state.requests) == 2


WORKER = """
import sys
from rq import SimpleWorker
from callcenter.runtime import get_context
from callcenter.queues import queues
qs = queues(get_context())
SimpleWorker(qs, connection=qs[0].connection).work(burst=False, logging_level="WARNING")
"""


def test_a_worker_killed_mid_delivery_loses_nothing(make_ctx: MakeCtx, tmp_path: Path) -> None:
    release = threading.Event()
    seen = threading.Event()
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if not seen.is_set():
                seen.set()
                release.wait(30)  # the first attempt hangs until its worker is dead
            else:
                received.append(body)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ctx = make_ctx(
            **{
                "webhooks.toml": f"""
timeout_seconds = 1
backoff_seconds = 0.5
[targets.erp]
url = "http://127.0.0.1:{server.server_address[1]}/hooks"
secret = "{SECRET}"
events = ["ticket.registered"]
"""
            }
        )
        services.create_ticket(ctx, TicketCreate(**payload()), actor="1001")
        env = dict(
            os.environ,
            CALLCENTER_ENVIRONMENT="test",
            CALLCENTER_DATABASE_URL=ctx.settings.database_url,
            CALLCENTER_REDIS_URL=ctx.settings.redis_url,
            CALLCENTER_CONFIG_DIR=str(ctx.settings.config_dir),
            CALLCENTER_STATE_DIR=str(tmp_path),
        )
        worker = subprocess.Popen([sys.executable, "-c", WORKER], env=env, cwd=Path.cwd())
        try:
            assert seen.wait(30), "the worker never tried the delivery"
        finally:
            worker.send_signal(signal.SIGKILL)  # killed in the middle of the HTTP call
            worker.wait(10)
        release.set()
        (row,) = deliveries(ctx)
        assert row.status == "pending" and row.attempts == 0  # its transaction never committed
        report = jobs.scan(now=datetime.now(UTC) + timedelta(minutes=1), reschedule=False)
        assert report["webhooks_requeued"] == 1
        work_until(ctx, lambda: deliveries(ctx)[0].status == "delivered")
        assert deliveries(ctx)[0].attempts == 1 and len(received) == 1
    finally:
        release.set()
        server.shutdown()
        server.server_close()
