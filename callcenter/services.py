"""Bring up the embedded services ``up`` needs when none is reachable: a real redis-server
(append-only file on); and turn the append-only file on in a Redis the center did not start.

Nothing here is a stand-in: the system's ``redis-server`` binary is started on the configured
port with its files under the state directory, and stopped again by ``up`` on exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from callcenter.supervision import die_with_parent


def redis_reachable(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.ping()
        client.close()
        return True
    except redis.RedisError:
        return False


def start_redis(url: str, state_dir: Path) -> subprocess.Popen[bytes]:
    """Start redis-server for ``url`` (loopback only) and wait until it answers."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            f"Redis is not reachable at {url} and redis-server is not installed "
            "(apt-get install redis-server)"
        )
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise RuntimeError(f"Redis at {url} is not reachable and is not local: start it yourself")
    data_dir = state_dir / "redis"
    data_dir.mkdir(parents=True, exist_ok=True)
    parent = os.getpid()
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(parsed.port or 6379),
            "--dir",
            str(data_dir.resolve()),
            "--appendonly",
            "yes",  # routing state and queued jobs survive a restart
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str((data_dir / "redis.log").resolve()),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # it ends (SIGTERM: the append-only file is flushed) with the process that started
        # it, even one killed with SIGKILL, instead of holding the port as an orphan
        preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent),
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if redis_reachable(url):
            return process
        if process.poll() is not None:
            raise RuntimeError(
                f"redis-server exited with {process.returncode}; see {data_dir}/redis.log"
            )
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"redis-server did not answer at {url} within 15 s")


def aof_wanted(redis_aof: bool | None, environment: str) -> bool:
    """``redis_aof`` setting: None means on in production only."""
    return environment == "production" if redis_aof is None else redis_aof


def ensure_aof(url: str) -> str:
    """Turn Redis's append-only file on when it is off, and write that into Redis's own
    configuration file so it still holds after Redis restarts (when Redis runs without one,
    or a managed Redis refuses CONFIG, say what to do instead). Returns one line for the log."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2, decode_responses=True)
    try:
        try:
            current = client.config_get("appendonly").get("appendonly")
        except redis.ResponseError as exc:
            return (
                f"Redis refused CONFIG GET ({exc}): make sure its append-only file is on "
                "(appendonly yes), or queued calls and agents' states are lost when it restarts"
            )
        if current == "yes":
            return "Redis append-only file: on"
        try:
            client.config_set("appendonly", "yes")
        except redis.ResponseError as exc:
            return (
                f"Redis append-only file is OFF and CONFIG SET was refused ({exc}): set "
                "appendonly yes in its configuration, or queued calls and agents' states are "
                "lost when it restarts"
            )
        # Redis writes the append-only file only once its first rewrite finished: until then a
        # crash would still lose everything, so wait for it (a few ms for a routing state).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = client.info("persistence")
            if info.get("aof_enabled") == 1 and not (
                info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
            ):
                break
            time.sleep(0.05)
        try:
            client.config_rewrite()
        except redis.ResponseError as exc:
            return (
                "Redis append-only file turned on now, but not kept in its configuration "
                f"({exc}): set appendonly yes there too, or a restart turns it off again"
            )
        return "Redis append-only file turned on (and written into its configuration file)"
    finally:
        client.close()
