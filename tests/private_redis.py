"""A redis-server of a test's own, with its append-only file on as in production: the tests
that restart Redis (never the machine's shared one) start, SIGKILL and start it again."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from callcenter.supervision import die_with_parent
from tests.metrics.conftest import free_port


class PrivateRedis:
    """A redis-server of this test's own, AOF on (``appendfsync everysec``, the default)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [
                *(binary, "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--dir", str(self.directory), "--appendonly", "yes", "--save", ""),
            ],
            stdout=subprocess.DEVNULL,
            preexec_fn=lambda: die_with_parent(signal.SIGTERM),
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 15
        while not _pings(client):
            assert time.monotonic() < deadline, "redis-server did not answer within 15 s"
            time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no shutdown save, only what the AOF already has
        self.proc.wait()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
