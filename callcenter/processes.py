"""Running the processes: the API server, and ``up``, which supervises them all.

``up`` is the embedded, single-machine way to run the center: it starts a real Redis when none
answers, migrates, seeds the demo center on an empty database, then runs the API, the worker
and (when this build has it) the engine as child processes. Ctrl-C or SIGTERM stops all of them
and anything it started, leaving nothing running.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

import uvicorn

from callcenter.context import build_context
from callcenter.health import expected_processes_key
from callcenter.migrate import upgrade
from callcenter.services import redis_reachable, start_redis
from config.settings import Settings

STOP_GRACE_SECONDS = 10


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
        )
        return
    from callcenter.app import create_app

    uvicorn.run(
        create_app(build_context(settings)),
        host=http.host,
        port=http.port,
        log_level="info",
        access_log=http.access_log,
    )


def engine_available() -> bool:
    try:
        return importlib.util.find_spec("ivr.supervisor") is not None
    except ModuleNotFoundError:
        return False


@dataclass
class Supervisor:
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    stopping: bool = False

    def start(self, name: str, argv: list[str]) -> None:
        print(f"  starting {name}: {' '.join(argv)}", flush=True)
        # Own process group: a terminal's Ctrl-C reaches us once and we stop children in order.
        self.children[name] = subprocess.Popen(argv, start_new_session=True)

    def stop_all(self) -> None:
        self.stopping = True
        for proc in self.children.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, proc in self.children.items():
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop in time: killing it", flush=True)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def run_up(settings: Settings) -> int:
    print("callcenter up: embedded defaults", flush=True)
    ctx = build_context(settings)  # refuses a bad configuration before anything starts
    supervisor = Supervisor()
    owned_redis: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if not redis_reachable(settings.redis_url):
            print(
                f"  Redis not reachable at {settings.redis_url}: starting redis-server", flush=True
            )
            owned_redis = start_redis(settings.redis_url, settings.state_dir)
        upgrade(settings.database_url)
        print(f"  database migrated: {settings.database_url}", flush=True)
        from callcenter.demo import DemoRefused, prepare_for_start

        try:
            for line in prepare_for_start(ctx):
                print(f"  {line}", flush=True)
        except DemoRefused as exc:
            print(f"  {exc}", flush=True)
            return 1
        python = sys.executable
        processes = {
            "api": [python, "-m", "callcenter.cli", "api"],
            "worker": [python, "-m", "callcenter.cli", "worker"],
            "router": [python, "-m", "callcenter.cli", "router"],
        }
        if engine_available():
            processes["engine"] = [python, "-m", "callcenter.cli", "engine"]
        key = expected_processes_key(ctx)
        ctx.redis.delete(key)
        ctx.redis.sadd(key, *[name for name in processes if name != "api"])
        for name, argv in processes.items():
            supervisor.start(name, argv)
        print(
            f"\nrunning:\n  HTTP  http://{settings.http.host}:{settings.http.port}/ "
            f"(health /healthz, API /api/v1, OpenAPI /openapi.json, metrics /metrics)\n"
            f"  SIP   sip:{ctx.config.telephony.dids[0].number}@"
            f"{settings.sip.edge_host}:{settings.sip.edge_port}"
            f"{'' if engine_available() else ' (engine not in this build)'}\n"
            f"  Redis {settings.redis_url}\n  DB    {settings.database_url}\n"
            "Ctrl-C stops everything.",
            flush=True,
        )
        while True:
            for name, proc in supervisor.children.items():
                if proc.poll() is not None:
                    print(
                        f"  {name} exited with {proc.returncode}: stopping everything", flush=True
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop_all()
        with contextlib.suppress(Exception):
            ctx.redis.delete(expected_processes_key(ctx))
        if owned_redis is not None:
            owned_redis.terminate()
            owned_redis.wait(timeout=STOP_GRACE_SECONDS)
        ctx.close()
        print("stopped.", flush=True)
