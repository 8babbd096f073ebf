"""Starting the server a benchmark measures: a subprocess on loopback with the benchmark's
settings in its environment, its output in ``<state_dir>/api.log``, returned once it answers.

Imported like ``_measure`` (``from _serve import start_api`` in script benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from config.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
API = [sys.executable, "-m", "callcenter.cli", "api"]


def start_api(
    settings: Settings,
    port: int,
    *,
    command: list[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    settle: float = 0.0,
) -> subprocess.Popen[bytes]:
    """``callcenter api`` (or ``command``) on 127.0.0.1:``port`` with ``settings``' state
    directory, database and Redis, plus ``env``; waits until ``/healthz`` answers, then
    ``settle`` seconds more (so every uvicorn worker process is up)."""
    environment = dict(
        os.environ,
        CALLCENTER_ENVIRONMENT="test",
        CALLCENTER_STATE_DIR=str(settings.state_dir),
        CALLCENTER_DATABASE_URL=settings.database_url,
        CALLCENTER_REDIS_URL=settings.redis_url,
        CALLCENTER_HTTP__HOST="127.0.0.1",
        CALLCENTER_HTTP__PORT=str(port),
        **(env or {}),
    )
    log = settings.state_dir / "api.log"
    process = subprocess.Popen(
        command or API, cwd=ROOT, env=environment, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                time.sleep(settle)
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server on port {port} did not start; see {log}")
