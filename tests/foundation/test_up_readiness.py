"""/healthz is liveness, /readyz names what keeps the center from taking a call; the restart
policy and counter of ``up``; the parent-death guard. Real Redis and SQLite; no SIP here
(the end-to-end checks with a real ``callcenter up`` are in test_up_supervision.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from callcenter.app import create_app
from callcenter.context import AppContext, build_context
from callcenter.health import (
    ROTATION_TTL_SECONDS,
    Rotation,
    beat,
    clear_rotation,
    publish_rotation,
    rotation_key,
)
from callcenter.supervision import (
    GIVE_UP_AFTER,
    STABLE_AFTER_SECONDS,
    RestartPolicy,
    count_restart,
)
from config.settings import Settings
from metrics.consumer import MetricsConsumer

SECRET = "s3cretPassw0rd"


def test_healthz_is_liveness_only_and_echoes_nothing(settings: Settings) -> None:
    # Neither the database nor Redis answers: the process is still alive.
    broken = build_context(
        settings.model_copy(
            update={
                "redis_url": f"redis://:{SECRET}@127.0.0.1:1/0",
                "database_url": f"postgresql://callcenter:{SECRET}@127.0.0.1:1/nowhere",
            }
        )
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/healthz")
    broken.close()
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_never_echoes_exception_text(settings: Settings) -> None:
    broken = build_context(
        settings.model_copy(
            update={
                "redis_url": f"redis://:{SECRET}@127.0.0.1:1/0",
                "database_url": f"postgresql://callcenter:{SECRET}@127.0.0.1:1/nowhere",
            }
        )
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/readyz")
    broken.close()
    assert response.status_code == 503
    body = response.text
    for leak in (SECRET, "127.0.0.1", "refused", "Error", "nowhere"):
        assert leak not in body, body
    missing = response.json()["missing"]
    assert "database: not answering" in missing
    assert "redis: not answering" in missing


def test_readyz_names_each_missing_part_until_all_are_there(
    client: TestClient, ctx: AppContext
) -> None:
    prefix = ctx.keys.prefix
    first = client.get("/readyz")
    assert first.status_code == 503
    missing = first.json()["missing"]
    assert first.json()["ready"] is False
    assert any(m.startswith("engine: no slot in rotation") for m in missing), missing
    assert "router: not consuming (no heartbeat)" in missing
    assert "metrics: no consumer holds the lease" in missing
    assert not any(m.startswith(("database", "redis")) for m in missing)

    # An engine whose edge has no running slot active: still not ready, and it says why.
    publish_rotation(ctx.redis, prefix, Rotation("node1", 0, 0, 2, "SIP edge not running"))
    missing = client.get("/readyz").json()["missing"]
    assert "engine: no slot in rotation (node1: SIP edge not running)" in missing

    # A running slot is active, but the edge also still routes to addresses with no slot
    # (right after start, before its probes took them out): a call may end in 486.
    stale = "the edge still has 8 address(es) with no running slot in rotation"
    publish_rotation(ctx.redis, prefix, Rotation("node1", 2, 2, 4, stale))
    missing = client.get("/readyz").json()["missing"]
    assert f"engine: no slot in rotation (node1: {stale})" in missing

    publish_rotation(ctx.redis, prefix, Rotation("node1", 2, 1, 2))
    assert 0 < ctx.redis.ttl(rotation_key(prefix, "node1")) <= ROTATION_TTL_SECONDS
    beat(ctx, "router")
    consumer = MetricsConsumer(ctx)
    assert consumer.hold_lease()  # the real consumer's lease, not a key set by hand
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["ready"] is True and ready.json()["missing"] == []
    assert ready.json()["checks"]["engine"] == {"node1": {"in_rotation": 2, "free": 1, "slots": 2}}

    # A node that stops (or whose record expires) no longer counts.
    clear_rotation(ctx.redis, prefix, "node1")
    assert client.get("/readyz").status_code == 503
    publish_rotation(ctx.redis, prefix, Rotation("node1", 1, 1, 1))
    ctx.redis.delete(rotation_key(prefix, "node1"))  # as when its TTL runs out
    again = client.get("/readyz").json()
    assert any(m.startswith("engine: no slot in rotation") for m in again["missing"])
    consumer.stop()


def test_restart_policy_backs_off_and_gives_up() -> None:
    policy = RestartPolicy()
    now = 1000.0
    delays = []
    for _ in range(GIVE_UP_AFTER - 1):
        decision = policy.on_death(now, ran_for=2.0)
        assert decision.restart
        delays.append(decision.delay)
        now += decision.delay + 2.0
    assert delays == [1.0, 2.0, 4.0, 8.0]
    final = policy.on_death(now, ran_for=2.0)
    assert not final.restart and "5 times within 60 s" in final.reason

    # Deaths spread wider than the window, after stable runs, never give up.
    calm = RestartPolicy()
    for i in range(20):
        decision = calm.on_death(1000.0 + i * 120, ran_for=STABLE_AFTER_SECONDS + 1)
        assert decision.restart and decision.delay == 1.0


def test_restarts_are_counted_in_metrics(client: TestClient, ctx: AppContext) -> None:
    count_restart(ctx.redis, ctx.keys.prefix, "engine")
    count_restart(ctx.redis, ctx.keys.prefix, "engine")
    count_restart(ctx.redis, ctx.keys.prefix, "router")
    text = client.get("/metrics").text
    assert 'callcenter_process_restarts_total{process="engine"} 2.0' in text
    assert 'callcenter_process_restarts_total{process="router"} 1.0' in text


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("how", ["preexec", "fork", "redis"])
def test_a_child_dies_with_its_parent_even_on_sigkill(tmp_path: Path, how: str) -> None:
    """A parent starts a grandchild guarded by die_with_parent (``redis``: the Redis ``up``
    starts when none answers), then is SIGKILLed."""
    pid_file = tmp_path / "child.pid"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = f"""
import os, signal, subprocess, sys, time
from pathlib import Path
from callcenter.services import start_redis
from callcenter.supervision import die_with_parent
parent = os.getpid()
if {how!r} == "redis":
    pid = start_redis("redis://127.0.0.1:{port}/0", Path({str(tmp_path)!r})).pid
elif {how!r} == "preexec":
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent),
    )
    pid = child.pid
else:
    pid = os.fork()
    if pid == 0:
        die_with_parent(signal.SIGTERM, parent)
        time.sleep(60)
        os._exit(0)
open({str(pid_file)!r}, "w").write(str(pid))
time.sleep(60)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    deadline = time.monotonic() + 20
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and parent.poll() is None
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert _alive(child)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the child outlived its parent"
