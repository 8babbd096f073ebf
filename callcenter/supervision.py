"""Restarting what ``callcenter up`` runs: the policy, the counter, and the orphan guard.

The policy is a plain state machine (a death and the clock in, a decision out), tested
without processes: a child that dies is restarted after a delay that doubles with each death
close to the previous one (1, 2, 4 … 30 s), and ``up`` gives up, loudly, when one child died
``GIVE_UP_AFTER`` times within ``GIVE_UP_WINDOW_SECONDS``.

The count of restarts lives in Redis (``{prefix}:up:restarts``, a hash process → count), so
the API process serves it on ``/metrics`` as ``callcenter_process_restarts_total{process}``
whichever process was restarted (the API included).

:func:`die_with_parent` asks the kernel to signal a process when the one that started it
dies (``PR_SET_PDEATHSIG``): the engine's slot processes and its Kamailio, and every child of
``up``, end with their parent even when the parent is killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from callcenter.context import AppContext
from callcenter.service_keys import Service

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0
GIVE_UP_AFTER = 5  # deaths of one child ...
GIVE_UP_WINDOW_SECONDS = 60.0  # ... within this window
STABLE_AFTER_SECONDS = 60.0  # a child that ran this long starts again from the first delay

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class Decision:
    restart: bool
    delay: float  # seconds to wait before starting it again
    reason: str  # for the log and the final message


@dataclass
class RestartPolicy:
    """Decides, for one child, what a death means."""

    deaths: list[float] = field(default_factory=list)  # monotonic times of recent deaths
    delay: float = 0.0

    def on_death(self, now: float, ran_for: float) -> Decision:
        self.deaths = [t for t in self.deaths if now - t < GIVE_UP_WINDOW_SECONDS] + [now]
        if len(self.deaths) >= GIVE_UP_AFTER:
            return Decision(
                False,
                0.0,
                f"died {len(self.deaths)} times within {GIVE_UP_WINDOW_SECONDS:.0f} s",
            )
        if ran_for >= STABLE_AFTER_SECONDS or self.delay == 0.0:
            self.delay = FIRST_DELAY_SECONDS
        else:
            self.delay = min(self.delay * 2, MAX_DELAY_SECONDS)
        return Decision(True, self.delay, f"restart {len(self.deaths)} in this window")


# ---------------------------------------------------------------- the counter


def restarts_key(prefix: str) -> str:
    return f"{prefix}:up:restarts"


def count_restart(client: Any, prefix: str, process: str) -> None:
    client.hincrby(restarts_key(prefix), process, 1)


class RestartsCollector(Collector):
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "callcenter_process_restarts",
            "Processes callcenter up restarted after they died",
            labels=["process"],
        )
        try:
            counts: dict[str, str] = self.ctx.redis.hgetall(restarts_key(self.ctx.keys.prefix))  # type: ignore[assignment]
        except Exception:  # boundary: /metrics must answer while Redis is down
            counts = {}
        for process, count in sorted(counts.items()):
            family.add_metric([process], float(count))
        yield family


RESTARTS_COLLECTOR: Service[bool] = Service("restarts collector installed")


def install_collector(registry: CollectorRegistry, ctx: AppContext) -> None:
    """Register once per context (an app built twice on one context shares the registry)."""
    if ctx.services.get(RESTARTS_COLLECTOR):
        return
    registry.register(RestartsCollector(ctx))
    ctx.services.set(RESTARTS_COLLECTOR, True)


# ---------------------------------------------------------------- the orphan guard


def die_with_parent(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """In a child just after fork (or in ``preexec_fn`` before exec): receive ``sig`` when the
    parent dies. If the parent is already gone (it died between the fork and this call), act
    on it now. The setting survives exec; it follows the parent *thread*, so call it from a
    child of a single-threaded parent (the supervisor and ``up`` run no threads that fork)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def stop_child(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Stop a child started in its own process group: SIGTERM, then SIGKILL to the group if
    it has not exited within ``timeout``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def log_tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a child's log file, for an error message."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
