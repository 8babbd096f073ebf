"""`callcenter up` brings the center up on embedded defaults and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

# It runs the engine (Kamailio and pjsua2 slots on fixed ports): under the global SIP lock.
pytestmark = pytest.mark.sip

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found.append(int(entry.name))
    return found


def test_up_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    http_port, redis_port, sip_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "CALLCENTER_STATE_DIR": str(tmp_path / "var"),
        "CALLCENTER_HTTP__PORT": str(http_port),
        # A Redis that is not running: `up` must start its own.
        "CALLCENTER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CALLCENTER_SIP__EDGE_PORT": str(sip_port),
        "CALLCENTER_SIP__SLOT_BASE_PORT": str(17100),
        "CALLCENTER_SIP__LINES": "2",
        "CALLCENTER_SIP__WARM_SPARES": "1",
    }
    log = (tmp_path / "up.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", "up"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{http_port}/healthz", timeout=2)
                status = response.status_code
                if status == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (tmp_path / "up.log").read_text()
            time.sleep(0.5)
        assert status == 200, (tmp_path / "up.log").read_text()
        assert port_open(redis_port)
        token = httpx.post(
            f"http://127.0.0.1:{http_port}/api/v1/auth/token",
            json={"username": "1001", "password": "pw1001"},
        )
        assert token.status_code == 200  # demo data was seeded on the empty database
        started = children_of(proc.pid)
        assert len(started) >= 3  # redis, api, worker (and the engine when present)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        log.close()
    output = (tmp_path / "up.log").read_text()
    assert code == 0, output
    assert "demo passwords are in use" in output
    assert "stopped." in output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (port_open(http_port) or port_open(redis_port)):
        time.sleep(0.2)
    assert not port_open(http_port) and not port_open(redis_port)
    for pid in started:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )
