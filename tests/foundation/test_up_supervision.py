"""A real ``callcenter up`` (its own Redis, SQLite, the engine with Kamailio and 90 lines):
it says "ready" only when a call is answered, restarts what dies without leaving orphans on
the SIP port, and gives up loudly when the engine keeps dying.

Real SIP on fixed loopback ports: run under the global lock
(``flock /tmp/sip.lock .venv/bin/python -m pytest tests/foundation/test_up_supervision.py``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from callcenter.processes import up_processes
from callcenter.testkit.faults import alive, cmdline, free_port, proc_stat
from callcenter.testkit.scenarios import caller_scenario
from callcenter.testkit.sipp import sipp

pytestmark = pytest.mark.sip

ROOT = Path(__file__).resolve().parents[2]
EDGE_PORT = 17060
SLOT_BASE_PORT = 17100  # 90 lines: 17100-17189
RTP_BASE_PORT = 50000  # 90 lines x 16: 50000-51439
CALLER_PORT = 17560
CALLER_MEDIA_PORT = 51600


def descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields is not None and fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def bound_to_udp_port(port: int) -> set[int]:
    """Pids holding a UDP socket on ``port`` (``ss`` reads them from /proc)."""
    output = subprocess.run(
        ["ss", "-Hulnp", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", output)}


def wait_for(what: Callable[[], object], timeout: float, message: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for: {message}")


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    http_port: int
    redis_port: int
    log: Path
    state_dir: Path
    answers: list[tuple[float, int, dict[str, object]]] = field(default_factory=list)
    ready_line_at: float = 0.0

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def readyz(self) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/readyz", timeout=3)

    def child(self, name: str) -> int:
        """The pid of ``callcenter <name>`` started by up (forked slots share its cmdline)."""
        for pid in descendants(self.proc.pid):
            fields = proc_stat(pid)
            parent = int(fields[1]) if fields else 0
            if parent == self.proc.pid and cmdline(pid).endswith(f"callcenter.cli {name} "):
                return pid
        raise AssertionError(f"no {name} process under up:\n{self.output()[-3000:]}")

    def ready(self) -> bool:
        try:
            return self.readyz().status_code == 200
        except httpx.HTTPError:
            return False


def start_up(tmp_path: Path, extra_env: dict[str, str] | None = None) -> Up:
    http_port, redis_port = free_port(), free_port()
    state_dir = tmp_path / "var"
    env = dict(os.environ)
    env.pop("CALLCENTER_SIP__LINES", None)  # the default: the seed's 90
    env.update(
        {
            "CALLCENTER_STATE_DIR": str(state_dir),
            "CALLCENTER_HTTP__PORT": str(http_port),
            "CALLCENTER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",  # up starts its own
            "CALLCENTER_SIP__EDGE_PORT": str(EDGE_PORT),
            "CALLCENTER_SIP__SLOT_BASE_PORT": str(SLOT_BASE_PORT),
            "CALLCENTER_SIP__RTP_BASE_PORT": str(RTP_BASE_PORT),
            **(extra_env or {}),
        }
    )
    log = tmp_path / "up.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", "up"],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return Up(proc, http_port, redis_port, log, state_dir)


def stop_up(up: Up) -> None:
    started = descendants(up.proc.pid)
    if up.proc.poll() is None:
        up.proc.send_signal(signal.SIGTERM)
    code = up.proc.wait(timeout=60)
    assert code == 0, up.output()[-3000:]
    wait_for(lambda: not any(alive(p) for p in started), 15, "every process up started ends")
    assert not bound_to_udp_port(EDGE_PORT)


def place_call(tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    scenario = caller_scenario(tmp_path / f"{name}.xml", [("pause", 1500)], caller="13911112222")
    return sipp(
        scenario,
        f"127.0.0.1:{EDGE_PORT}",
        local_port=CALLER_PORT,
        media_port=CALLER_MEDIA_PORT,
        cwd=tmp_path,
        local_ip="127.0.0.3",
        timeout_s=20,
    )


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp_path = tmp_path_factory.mktemp("up")
    running = start_up(tmp_path)
    stop = threading.Event()

    def watch() -> None:  # every /readyz answer from the start, as an operator would see them
        while not stop.is_set():
            try:
                response = running.readyz()
                running.answers.append((time.monotonic(), response.status_code, response.json()))
            except (httpx.HTTPError, ValueError):
                pass
            stop.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        deadline = time.monotonic() + 120
        while not re.search(r"^ready: ", running.output(), re.MULTILINE):
            assert running.proc.poll() is None, running.output()[-3000:]
            assert time.monotonic() < deadline, running.output()[-3000:]
            time.sleep(0.05)
        running.ready_line_at = time.monotonic()
        stop.set()
        watcher.join()
        yield running
    finally:
        stop.set()
        stop_up(running)


def test_up_says_ready_only_when_a_call_is_answered(up: Up, tmp_path: Path) -> None:
    caller = place_call(tmp_path, "first")  # right after "ready"
    assert caller.wait(timeout=40) == 0, (tmp_path / "sipp-errors").exists() or up.output()[-2000:]
    # Before "ready", /readyz said 503 and named what was missing; the engine came last.
    not_ready = [body for _t, status, body in up.answers if status == 503]
    assert not_ready, "no 503 seen before ready"
    assert all(body["ready"] is False and body["missing"] for body in not_ready)
    assert any(
        str(item).startswith("engine: no slot in rotation")
        for body in not_ready
        for item in body["missing"]  # type: ignore[attr-defined]
    ), not_ready[-1]
    assert all(status == 503 for t, status, _b in up.answers if t < up.ready_line_at - 1.0)
    banner = up.output()
    assert "(90 lines: up to 90 calls at once)" in banner
    # up runs the processes of its table (which compose and systemd units are checked against)
    started = {
        tuple(cmdline(pid).split()[1:])
        for pid in descendants(up.proc.pid)
        if (proc_stat(pid) or ["", "0"])[1] == str(up.proc.pid) and "callcenter.cli" in cmdline(pid)
    }
    assert started == {("-m", "callcenter.cli", *spec.command) for spec in up_processes()}


def test_up_restarts_what_dies_and_leaves_no_orphan(up: Up, tmp_path: Path) -> None:
    engine = up.child("engine")
    slots = descendants(engine)
    edge = bound_to_udp_port(EDGE_PORT)
    assert edge and edge <= slots, (edge, slots)  # Kamailio is the engine's child
    assert len(slots) >= 3
    killed_at = time.monotonic()
    os.kill(engine, signal.SIGKILL)
    # Nothing of that engine is left: its slots and its Kamailio end with it.
    wait_for(lambda: not any(alive(p) for p in slots), 15, "the dead engine's processes end")
    orphans_gone = time.monotonic() - killed_at
    assert not (bound_to_udp_port(EDGE_PORT) & slots)
    wait_for(lambda: not up.ready(), 5, "/readyz 503 once the engine is gone")
    wait_for(up.ready, 60, "/readyz 200 again")
    recovery = time.monotonic() - killed_at
    print(f"\nengine SIGKILL: processes gone in {orphans_gone:.1f} s, ready in {recovery:.1f} s")
    assert up.child("engine") != engine
    # The new engine found no Kamailio of the old one to clean up: it had ended by itself.
    assert "stopping a stale SIP edge" not in up.output()
    caller = place_call(tmp_path, "after-restart")
    assert caller.wait(timeout=40) == 0, up.output()[-2000:]

    for name in ("router", "worker"):
        before = up.child(name)
        os.kill(before, signal.SIGKILL)
        wait_for(
            lambda name=name, before=before: _restarted(up, name, before),  # type: ignore[misc]
            30,
            f"{name} restarted",
        )
    wait_for(up.ready, 30, "/readyz 200 after the router came back")
    metrics = httpx.get(f"http://127.0.0.1:{up.http_port}/metrics", timeout=3).text
    for name in ("engine", "router", "worker"):
        assert f'callcenter_process_restarts_total{{process="{name}"}} 1.0' in metrics, name
    log = up.output()
    assert "engine died (killed by SIGKILL); restarting in 1 s" in log


def _restarted(up: Up, name: str, before: int) -> bool:
    try:
        return up.child(name) != before
    except AssertionError:
        return False
