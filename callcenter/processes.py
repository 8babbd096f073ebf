"""Running the processes: the API server, and ``up``, which supervises them all.

``up`` is the embedded, single-machine way to run the center: it starts a real Redis when none
answers, migrates, seeds the demo center on an empty database, then runs the processes of
:data:`PROCESSES` (the API, the worker, the router and, when this build has it, the engine) as
child processes, each in its own process group and ending with ``up`` even if ``up`` is
killed (parent-death signal). It prints "ready" only once ``GET /readyz`` answers 200.

A child that dies is restarted with a growing delay and counted (``/metrics``
``callcenter_process_restarts_total{process}``); what is left of its process group (the
engine's slots and call-record consumer) is ended first, so nothing it started keeps holding
ports or answering calls. ``up`` exits non-zero, saying which child, only when one keeps dying
(``callcenter.supervision``). Ctrl-C or SIGTERM stops all of them and anything it started,
leaving nothing running.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import uvicorn

from callcenter.accesslog import log_config
from callcenter.context import AppContext, build_context
from callcenter.health import clear_rotation
from callcenter.migrate import upgrade
from callcenter.services import aof_wanted, ensure_aof, redis_reachable, start_redis
from callcenter.supervision import RestartPolicy, count_restart, die_with_parent
from config.settings import Settings

STOP_GRACE_SECONDS = 10
GROUP_GRACE_SECONDS = 5.0  # what a dead child left in its process group gets to end itself
READY_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class ProcessSpec:
    """One long-running process of the center: ``callcenter <command...>``."""

    name: str
    command: tuple[str, ...]
    needs_engine: bool = False  # only when this build has the SIP/media engine


# Every process ``up`` runs; docker-compose.yml and ``callcenter systemd-units`` run the same
# set with the same commands (tests/foundation/test_deploy.py checks both against this table).
PROCESSES: tuple[ProcessSpec, ...] = (
    ProcessSpec("api", ("api",)),
    ProcessSpec("worker", ("worker",)),
    ProcessSpec("router", ("router",)),
    ProcessSpec("engine", ("engine",), needs_engine=True),
)


# One edge, scalable media nodes (docker-compose.yml): the engine ``up`` runs (its own edge in
# front of its own slots) split in two, the SIP edge alone and media nodes joining it, each
# named after its host and listening on its host's address (``--node auto --host auto``).
SPLIT_ENGINE: tuple[ProcessSpec, ...] = (
    ProcessSpec("edge", ("edge",), needs_engine=True),
    ProcessSpec("engine", ("engine", "--node", "auto", "--host", "auto"), needs_engine=True),
)


def split_processes() -> tuple[ProcessSpec, ...]:
    """:data:`PROCESSES` with the engine split into the edge and media nodes."""
    return (*(spec for spec in PROCESSES if spec.name != "engine"), *SPLIT_ENGINE)


def up_processes() -> list[ProcessSpec]:
    """The processes ``up`` starts in this build."""
    engine = engine_available()
    return [spec for spec in PROCESSES if engine or not spec.needs_engine]


def run_api(settings: Settings) -> None:
    http = settings.http
    if http.workers > 1:
        # uvicorn starts the processes and each imports the factory, which reads the same
        # settings (environment and callcenter.toml) and builds its own context.
        uvicorn.run(
            "callcenter.app:app_factory",
            factory=True,
            workers=http.workers,
            host=http.host,
            port=http.port,
            log_level="info",
            access_log=http.access_log,
            log_config=log_config(),  # no query strings (tokens) in the logs
        )
        return
    from callcenter.app import create_app

    uvicorn.run(
        create_app(build_context(settings)),
        host=http.host,
        port=http.port,
        log_level="info",
        access_log=http.access_log,
        log_config=log_config(),
    )


def engine_available() -> bool:
    try:
        return importlib.util.find_spec("ivr.supervisor") is not None
    except ModuleNotFoundError:
        return False


def argv_of(spec: ProcessSpec) -> list[str]:
    return [sys.executable, "-m", "callcenter.cli", *spec.command]


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def end_group(pgid: int, grace: float = GROUP_GRACE_SECONDS) -> None:
    """SIGTERM what is left in a process group, SIGKILL it after ``grace`` seconds."""
    if not _group_members(pgid):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _group_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


@dataclass
class Child:
    spec: ProcessSpec
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None  # set while dead and waiting for its restart
    policy: RestartPolicy = field(default_factory=RestartPolicy)


class GaveUp(Exception):
    """A child kept dying: ``up`` stops everything and exits non-zero with this message."""


@dataclass
class Supervisor:
    ctx: AppContext | None = None  # counts restarts and clears a dead engine's record
    children: dict[str, Child] = field(default_factory=dict)
    stopping: bool = False

    def start(self, spec: ProcessSpec) -> None:
        argv = argv_of(spec)
        print(f"  starting {spec.name}: {' '.join(argv)}", flush=True)
        parent = os.getpid()
        child = self.children.setdefault(spec.name, Child(spec))
        # Own process group: a terminal's Ctrl-C reaches us once and we stop children in
        # order, and what a dead child leaves behind can be ended as a group. The parent-death
        # signal ends the child even when ``up`` itself is killed with SIGKILL.
        child.proc = subprocess.Popen(
            argv,
            start_new_session=True,
            preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent),
        )
        child.started_at = time.monotonic()
        child.restart_at = None

    def check(self) -> bool:
        """Handle deaths and due restarts; True when something died or restarted."""
        changed = False
        now = time.monotonic()
        for child in self.children.values():
            if child.proc is not None and child.proc.poll() is not None:
                self._on_death(child, now)
                changed = True
            elif child.proc is None and child.restart_at is not None and now >= child.restart_at:
                print(f"  restarting {child.spec.name}", flush=True)
                self.start(child.spec)
                if self.ctx is not None:
                    with contextlib.suppress(Exception):
                        count_restart(self.ctx.redis, self.ctx.keys.prefix, child.spec.name)
                changed = True
        return changed

    def _on_death(self, child: Child, now: float) -> None:
        assert child.proc is not None
        proc, name = child.proc, child.spec.name
        child.proc = None
        end_group(proc.pid)  # the engine's slots and consumer end with it (they hold ports)
        if self.ctx is not None:
            # What the dead process said about itself no longer holds: /readyz must not wait
            # for a TTL to stop counting it.
            with contextlib.suppress(Exception):
                self.ctx.redis.delete(self.ctx.keys.process_heartbeat(name))
                if name == "engine":
                    clear_rotation(self.ctx.redis, self.ctx.keys.prefix, self.ctx.settings.node_id)
        decision = child.policy.on_death(now, now - child.started_at)
        what = _describe_exit(proc.returncode)
        if not decision.restart:
            raise GaveUp(f"{name} {decision.reason} (last: {what}): giving up")
        child.restart_at = time.monotonic() + decision.delay
        print(
            f"  {name} died ({what}); restarting in {decision.delay:.0f} s ({decision.reason})",
            flush=True,
        )

    def stop_all(self) -> None:
        self.stopping = True
        running = [(n, c.proc) for n, c in self.children.items() if c.proc is not None]
        for _name, proc in running:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, proc in running:
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in time: killing it", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            end_group(proc.pid, grace=1.0)


def _local_url(settings: Settings, path: str) -> str:
    host = settings.http.host
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http.port}{path}"


class ReadinessWatch:
    """Polls ``/readyz``; prints "ready" on each change to 200 and what is missing otherwise."""

    def __init__(self, settings: Settings) -> None:
        self.url = _local_url(settings, "/readyz")
        self.ready = False
        self.last_missing: list[str] | None = None
        self.next_poll = 0.0

    def _ask(self) -> tuple[bool, list[str]]:
        try:
            with urllib.request.urlopen(self.url, timeout=2.0) as response:
                return response.status == 200, []
        except urllib.error.HTTPError as exc:  # 503 carries the list of what is missing
            try:
                return False, [str(m) for m in json.loads(exc.read()).get("missing", [])]
            except ValueError:
                return False, [f"api: /readyz answered {exc.code}"]
            finally:
                exc.close()
        except (OSError, ValueError):
            return False, ["api: not answering"]

    def poll(self) -> None:
        now = time.monotonic()
        if now < self.next_poll:
            return
        self.next_poll = now + READY_POLL_SECONDS
        ready, missing = self._ask()
        if ready and not self.ready:
            print("ready: the center takes calls (GET /readyz answers 200)", flush=True)
        elif not ready and missing != self.last_missing:
            print(f"  not ready: {'; '.join(missing)}", flush=True)
        self.ready, self.last_missing = ready, missing


def _ensure_redis(settings: Settings) -> subprocess.Popen[bytes] | None:
    """Redis reachable (started here when it is not: the process returned is ours to stop),
    with append-only persistence where it is wanted."""
    if not redis_reachable(settings.redis_url):
        print(f"  Redis not reachable at {settings.redis_url}: starting redis-server", flush=True)
        return start_redis(settings.redis_url, settings.state_dir)
    if aof_wanted(settings.redis_aof, settings.environment):
        print(f"  {ensure_aof(settings.redis_url)}", flush=True)
    return None


def _prepare_demo(ctx: AppContext) -> bool:
    """The demo data for this start; False when it refuses to start (the reason printed)."""
    from callcenter.demo import DemoRefused, prepare_for_start

    try:
        for line in prepare_for_start(ctx):
            print(f"  {line}", flush=True)
    except DemoRefused as exc:
        print(f"  {exc}", flush=True)
        return False
    return True


def _print_running(settings: Settings, ctx: AppContext, *, engine: bool) -> None:
    print(
        f"\nrunning:\n  HTTP  http://{settings.http.host}:{settings.http.port}/ "
        f"(liveness /healthz, readiness /readyz, API /api/v1, OpenAPI /openapi.json, "
        f"metrics /metrics)\n"
        f"  SIP   sip:{ctx.config.telephony.dids[0].number}@"
        f"{settings.sip.edge_host}:{settings.sip.edge_port}"
        + (
            f" ({settings.sip.lines} lines: up to {settings.sip.lines} calls at once)"
            if engine
            else " (engine not in this build)"
        )
        + f"\n  Redis {settings.redis_url}\n  DB    {settings.database_url}\n"
        "Ctrl-C stops everything.",
        flush=True,
    )


def run_up(settings: Settings) -> int:
    print("callcenter up: embedded defaults", flush=True)
    ctx = build_context(settings)  # refuses a bad configuration before anything starts
    supervisor = Supervisor(ctx)
    owned_redis: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        owned_redis = _ensure_redis(settings)
        upgrade(settings.database_url)
        print(f"  database migrated: {settings.database_url}", flush=True)
        if not _prepare_demo(ctx):
            return 1
        specs = up_processes()
        for spec in specs:
            supervisor.start(spec)
        _print_running(settings, ctx, engine=any(spec.name == "engine" for spec in specs))
        watch = ReadinessWatch(settings)
        while True:
            supervisor.check()
            watch.poll()
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    except GaveUp as exc:
        print(f"callcenter up: {exc}; stopping everything", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop_all()
        if owned_redis is not None:
            owned_redis.terminate()
            owned_redis.wait(timeout=STOP_GRACE_SECONDS)
        ctx.close()
        print("stopped.", flush=True)
