"""Bring up the embedded services ``up`` needs when none is reachable: a real redis-server.

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
