"""A whole center under load for fault tests and benchmarks: ``callcenter up`` on its own
Redis (append-only, restartable) and SQLite, agents whose softphones (SIPp UAS registered at
the edge) answer, SIPp callers held through the edge, and the pids of every process that can
be killed (a slot, the engine supervisor, Kamailio, the API, the router, the worker).

Shared by ``tests/foundation/test_faults_under_load.py`` and ``bench/faults.py``. Loopback
only; every peer stops by itself (SIPp timeouts) and :meth:`Center.stop` ends the rest.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from callcenter.testkit.config import queues_toml
from callcenter.testkit.rtp import tone_pcap
from callcenter.testkit.scenarios import agent_scenario, caller_scenario
from callcenter.testkit.sipp import register, sipp, sipp_agent

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "config" / "defaults"
AGENTS_IP = "127.0.0.6"
CALLERS_IP = "127.0.0.7"


@dataclass(frozen=True)
class Ports:
    """Fixed SIP/RTP ports of one center (the slots' RTP: 16 per line from ``rtp``)."""

    edge: int = 17260
    slots: int = 17300
    rtp: int = 52000
    agents: int = 17240  # two per agent: calls, REGISTER
    callers: int = 17280  # one per SIPp caller process
    media: int = 54000  # SIPp media, 10 per peer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: Callable[[], Any], timeout: float, message: str, step: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for: {message}")
        time.sleep(step)


def proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def alive(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields is not None and fields[0] != "Z" and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


REDIS_ARGS = ("redis-server", "--bind", "127.0.0.1", "--appendonly", "yes", "--save", "")


class PrivateRedis:
    """A redis-server of the test's own, append-only (as ``up`` starts one), restartable."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *REDIS_ARGS,
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_for(lambda: _pings(client), 15, "the private Redis answers")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SHUTDOWN: the AOF is flushed
            self.proc.wait(15)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin() -> Path:
    """The newest Debian PostgreSQL server binaries (``initdb``, ``pg_ctl``, ``postgres``)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    if not found:
        raise FileNotFoundError(f"no PostgreSQL server binaries under {PG_BIN_GLOB}")
    return found[-1]


class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (never the machine's): ``initdb`` into a fresh
    directory owned by ``postgres`` (when run as root), trust authentication, listening on a
    free loopback port only; restartable (fast) and killable (kill -9 of the postmaster)."""

    def __init__(self, port: int | None = None) -> None:
        self.bin = postgres_bin()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="cc-faults-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.as_postgres = os.geteuid() == 0  # the server refuses to run as root
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/callcenter"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin / tool), *args]
        if self.as_postgres:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{tool} failed: {done.stdout[-1500:]}{done.stderr[-1500:]}")
        return done

    def _options(self) -> str:
        return (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                "-c max_connections=200 -c fsync=off")  # fmt: skip

    def start(self, timeout: float = 30) -> None:
        """Start the server (again); after a kill -9 it refuses while the dead postmaster's
        backends still hold its shared memory, so it is tried until ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o",
                             self._options(), "-w", "-t", "20", "start", check=False)  # fmt: skip
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"PostgreSQL did not start: {done.stdout}{done.stderr}"
                                     f"{self.log.read_text(errors='replace')[-2000:]}")  # fmt: skip
            time.sleep(0.2)
        wait_for(self.answers, 15, "the private PostgreSQL answers")

    def create_database(self, name: str = "callcenter") -> None:
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d",
                  "postgres", "-c", f"CREATE DATABASE {name}")  # fmt: skip

    def answers(self) -> bool:
        done = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False)
        return done.returncode == 0

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def restart_fast(self) -> None:
        """``pg_ctl restart -m fast``: sessions ended, a clean shutdown, a start."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options(),
                  "-m", "fast", "-w", "-t", "30", "restart")  # fmt: skip
        wait_for(self.answers, 15, "the private PostgreSQL answers")

    def kill(self) -> int:
        """kill -9 of the postmaster (its backends notice and exit; crash recovery at the next
        start); returns the pid killed."""
        pid = self.postmaster()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), 5, "the postmaster gone")
        return pid

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop",
                      check=False)  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def fault_config(target: Path) -> Path:
    """The shipped configuration, with the general queue answerable by any logged-in agent
    whatever the hour (the demo's shifts) and a short wrap-up, so agents come back."""
    shutil.copytree(DEFAULT_CONFIG, target)
    general = {"off_shift_agents_may_answer": True, "wrap_up_seconds": 2}
    (target / "queues.toml").write_text(queues_toml(DEFAULT_CONFIG, general=general))
    return target


@dataclass
class Center:
    tmp: Path
    ports: Ports
    store: PrivateRedis
    http_port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)
    peers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started_at: float = 0.0
    ready_after: float = 0.0
    database_url: str = ""  # "" for the embedded SQLite file under the state directory

    # ---------------------------------------------------------------- life
    def start(self, lines: int = 16, spares: int = 4, timeout: float = 120) -> None:
        """``spares`` idle slots kept started: as many as the calls placed at once, so none
        waits for a slot to start (the engine grows its pool while calls arrive)."""
        env = dict(os.environ)
        env.update(
            {
                "CALLCENTER_STATE_DIR": str(self.tmp / "var"),
                "CALLCENTER_CONFIG_DIR": str(fault_config(self.tmp / "config")),
                "CALLCENTER_HTTP__PORT": str(self.http_port),
                "CALLCENTER_REDIS_URL": self.store.url,
                "CALLCENTER_SIP__LINES": str(lines),
                "CALLCENTER_SIP__WARM_SPARES": str(spares),
                # The callers stand for a carrier's trunk (never flood-banned), not for one
                # person dialling 30 times a second.
                "CALLCENTER_SIP__EDGE__FLOOD_EXEMPT_ADDRESSES": json.dumps([CALLERS_IP]),
                "CALLCENTER_SIP__EDGE_PORT": str(self.ports.edge),
                "CALLCENTER_SIP__SLOT_BASE_PORT": str(self.ports.slots),
                "CALLCENTER_SIP__RTP_BASE_PORT": str(self.ports.rtp),
            }
        )
        for name in ("CALLCENTER_DATABASE_URL", "CALLCENTER_PREFIX"):
            env.pop(name, None)
        if self.database_url:
            env["CALLCENTER_DATABASE_URL"] = self.database_url
        self.log = self.tmp / "up.log"
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "up"],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not re.search(r"^ready: ", self.output(), re.MULTILINE):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"up did not get ready:\n{self.output()[-3000:]}")
            time.sleep(0.1)
        self.ready_after = time.monotonic() - self.started_at

    def stop(self) -> int | None:
        for peer in self.peers:
            if peer.poll() is None:
                peer.kill()
                peer.wait(5)
        code = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            code = self.proc.wait(60)
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # ---------------------------------------------------------------- state
    @property
    def database(self) -> Path:
        return self.tmp / "var" / "callcenter.db"

    @property
    def records_url(self) -> str:
        """The SQL database the center writes its records to."""
        return self.database_url or f"sqlite:///{self.database}"

    def client(self) -> Any:  # decoded: redis-py's stubs do not say so
        return redis.Redis(port=self.store.port, decode_responses=True)

    def ready(self) -> bool:
        try:
            return httpx.get(self.url("/readyz"), timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"

    def api(self, method: str, path: str, user: str, **kwargs: Any) -> httpx.Response:
        token = base64.b64encode(f"{user}:pw{user}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
        return httpx.request(method, self.url(path), headers=headers, timeout=10, **kwargs)

    # ---------------------------------------------------------------- processes
    def child(self, name: str) -> int:
        assert self.proc is not None
        for pid in children_of(self.proc.pid):
            if cmdline(pid).endswith(f"callcenter.cli {name} "):
                return pid
        raise LookupError(name)

    def child_or_none(self, name: str) -> int | None:
        try:
            return self.child(name)
        except LookupError:
            return None

    def kamailio(self) -> int:
        """Kamailio's main process (the engine's child that is not a slot nor the consumer)."""
        engine = self.child("engine")
        for pid in children_of(engine):
            if "kamailio" in cmdline(pid):
                return pid
        raise LookupError("kamailio")

    def registered(self, extension: str) -> bool:
        """The edge's registrar has a contact for ``extension`` (``kamcmd ul.lookup``)."""
        socket_path = self.tmp / "var" / "kamailio" / "ctl.sock"
        done = subprocess.run(
            ["kamcmd", "-s", f"unix:{socket_path}", "ul.lookup", "location", f"s:{extension}"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        return f"sip:{extension}@{AGENTS_IP}" in done.stdout

    def slots(self) -> dict[str, tuple[int, str, str]]:
        """``{slot: (pid, status, call_id)}`` from the engine's pool record."""
        pool = self.client().hgetall("cc:engine:pool:node1")  # up runs one node, node1
        found = {}
        for key, value in pool.items():
            if key.startswith("slot:"):
                pid, status, *call = value.split()
                found[key[5:]] = (int(pid), status, call[0] if call else "")
        return found

    # ---------------------------------------------------------------- peers
    def agent(self, n: int, extension: str) -> subprocess.Popen[bytes]:
        """A softphone for ``extension`` that answers every call after 200 ms and keeps it
        until the BYE; registered at the edge, the agent signed in and ready."""
        port = self.ports.agents + 2 * n
        scenario = agent_scenario(self.tmp / f"agent{extension}.xml", None, answer_after_ms=200)
        phone = sipp_agent(scenario, local_port=port, media_port=self.ports.media + 10 * n,
                           calls=500, timeout_s=900, cwd=self.tmp, local_ip=AGENTS_IP)  # fmt: skip
        self.peers.append(phone)
        self.register(extension, port)
        assert self.api("POST", "/api/v1/agents/me/login", extension).status_code == 200
        response = self.api("PUT", "/api/v1/agents/me/state", extension, json={"state": "ready"})
        assert response.status_code == 200, response.text
        return phone

    def register(self, extension: str, contact_port: int) -> None:
        result = register(self.tmp, f"127.0.0.1:{self.ports.edge}",
                          f"{AGENTS_IP}:{contact_port + 1}", extension,
                          f"sip:{extension}@{AGENTS_IP}:{contact_port}")  # fmt: skip
        assert result.ok(), result.failure()

    def callers(
        self, n: int, calls: int, hold_ms: int, *, first: int = 0, rate: float = 20
    ) -> subprocess.Popen[bytes]:
        """``calls`` SIPp callers (from 139000000<first..>) who press 0 (the general queue),
        then talk (a tone: a silent caller is hung up by the slot's RTP timeout after 60 s)
        and hang up after ``hold_ms``."""
        voice = self.tmp / f"voice-{hold_ms}.pcap"
        if not voice.exists():
            tone_pcap(voice, 440.0, hold_ms / 1000 + 5, amplitude=3000)
        steps: list[tuple[str, object]] = [
            ("pause", 700), ("dtmf", "0"), ("audio", voice), ("pause", hold_ms),
        ]  # fmt: skip
        scenario = caller_scenario(self.tmp / f"callers{n}.xml", steps, caller=f"1390000{n:04d}")
        process = sipp(scenario, f"127.0.0.1:{self.ports.edge}",
                       local_port=self.ports.callers + n,
                       media_port=self.ports.media + 500 + 10 * n,
                       calls=calls, rate=rate, limit=calls, timeout_s=hold_ms // 1000 + 60,
                       cwd=self.tmp, local_ip=CALLERS_IP)  # fmt: skip
        self.peers.append(process)
        return process

    def probe_call(self, n: int, timeout_s: int = 8) -> None:
        """One short call answered by a slot through the edge (AssertionError if it fails)."""
        scenario = caller_scenario(self.tmp / "probe.xml", [("pause", 200)], caller="13911110000")
        process = sipp(scenario, f"127.0.0.1:{self.ports.edge}",
                       local_port=self.ports.callers + 40 + n % 10,
                       media_port=self.ports.media + 900, calls=1, timeout_s=timeout_s,
                       cwd=self.tmp, local_ip=CALLERS_IP)  # fmt: skip
        result = process.result(timeout_s + 15)
        if not result.ok():
            raise AssertionError(f"probe call failed: {result.failure()[-1500:]}")

    def recovered(self, killed_at: float, n: int, timeout: float = 60) -> float:
        """Seconds from ``killed_at`` until ``/readyz`` says 200 and a new call is answered
        (a call refused while the readiness record is still stale is tried again)."""
        deadline = time.monotonic() + timeout
        while True:
            wait_for(self.ready, max(deadline - time.monotonic(), 0.1), "/readyz 200", 0.05)
            try:
                self.probe_call(n, timeout_s=5)
                return time.monotonic() - killed_at
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


# node_failed: calls the killed engine's node carried, ended when it came back (ivr/node_calls.py)
FINAL_OUTCOMES = frozenset({"answered", "abandoned", "short_abandoned", "overflowed",
                            "callback", "menu_hangup", "failed", "slot_failed",
                            "node_failed"})  # fmt: skip


def stream_events(center: Center) -> list[tuple[str, dict[str, str]]]:
    found: list[tuple[str, dict[str, str]]] = center.client().xrange("cc:events")
    return found


def arrived(center: Center) -> set[str]:
    return {f["call_id"] for _i, f in stream_events(center) if f.get("type") == "call_arrived"}


def ended(center: Center) -> set[str]:
    return {f["call_id"] for _i, f in stream_events(center) if f.get("type") == "call_ended"}


def on_call(center: Center) -> dict[str, str]:
    """agent key -> call id, for agents reserved or on a call."""
    client = center.client()
    found = {}
    for key in client.scan_iter("cc:routing:agent:*"):
        if key.count(":") == 3:
            raw = client.hgetall(key)
            if raw.get("state") in ("reserved", "on_call"):
                found[key] = raw.get("call_id", "")
    return found


def new_ticket(center: Center, mark: str) -> httpx.Response:
    """POST a ticket as agent 1001 (``mark`` as its description)."""
    body = {"category": "public_water", "description": mark, "track": "general",
            "reporter": "张伟", "unit": "3-2-1201", "what": "楼道水管漏水", "when": "今天",
            "contact": "13800138000", "complaint_kind": "help_seeking"}  # fmt: skip
    return center.api("POST", "/api/v1/tickets", "1001", json=body)
