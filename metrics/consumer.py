"""The metric engine's consumer: consumer group ``metrics`` on the call and agent event streams,
applied by ``metrics/store.py``.

One process at a time consumes (it holds the ``lease`` key); a process of this host that died
with the lease is taken over at once, another host's lease runs out by its TTL.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import redis

from callcenter.consumers import ConsumerHost
from callcenter.context import AppContext
from metrics.live_config import load_teams, metric_config
from metrics.live_keys import MetricKeys
from metrics.store import MetricStore

log = logging.getLogger(__name__)

GROUP = "metrics"
CONSUMER = "metrics"  # one name for every process: whoever holds the lease owns the pending list
LEASE_SECONDS = 10


def holder_gone(holder: str) -> bool:
    """True when a lease holder's name (``host:pid:…``) is a process of this host that no
    longer runs. Another host's holder is never judged (its lease runs out by its TTL)."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another consumer of this very process (or, in a container, an earlier
        # life with the same pid: its lease then runs out by its TTL)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


class MetricsConsumer:
    """Reads both streams as consumer group ``metrics`` and applies them (one at a time per
    deployment: the holder of the lease). ``run`` loops until ``stop()``."""

    def __init__(
        self, ctx: AppContext, *, batch: int = 500, block_ms: int = 100, name: str | None = None
    ) -> None:
        self.ctx = ctx
        self.redis: Any = ctx.redis
        self.keys = ctx.keys
        self.mk = MetricKeys(ctx.keys)
        self.batch = batch
        self.block_ms = block_ms
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self)}"
        self.store = MetricStore(self.redis, self.keys, metric_config(ctx), {})
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._teams_loaded_at = 0.0
        # Both streams in one read, from their start (the figures count what came before).
        self.host = ConsumerHost(
            self.redis,
            streams=self.streams,
            group=GROUP,
            consumer=CONSUMER,
            batch=self.store.apply_batch,
            create_at="0",
            count=batch,
        )

    @property
    def streams(self) -> tuple[str, str]:
        return self.keys.events, self.keys.agent_events

    def ensure_groups(self) -> None:
        self.host.ensure_group()

    def refresh_teams(self, force: bool = False) -> None:
        if force or time.monotonic() - self._teams_loaded_at > 60:
            try:
                self.store.set_teams(load_teams(self.ctx))
            except Exception:  # boundary: SQL down must not stop live figures
                log.exception("metrics: could not load agent teams")
            self._teams_loaded_at = time.monotonic()

    def hold_lease(self) -> bool:
        key = self.mk("lease")
        if self.redis.set(key, self.name, nx=True, ex=LEASE_SECONDS):
            self.host.recheck_pending()  # a new holder first re-reads the pending entries
            return True
        holder = self.redis.get(key)
        if holder == self.name:
            self.redis.expire(key, LEASE_SECONDS)
            return True
        if holder and holder_gone(str(holder)):
            # A process of this host that died (an API restarted after a crash) holds it: take
            # it over now rather than leave live figures frozen until its TTL runs out. The
            # WATCH on the applied ids still keeps two writers from counting an event twice.
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    if pipe.get(key) != holder:
                        return False
                    pipe.multi()
                    pipe.set(key, self.name, ex=LEASE_SECONDS)
                    pipe.execute()
                except redis.WatchError:
                    return False
            log.warning("metrics: took over the lease of %s (that process is gone)", holder)
            self.host.recheck_pending()
            return True
        return False

    def step(self, block_ms: int | None = None) -> int:
        """Read and apply one batch from each stream; returns the number of entries read."""
        self.refresh_teams()
        if self.host.pending:
            # A step of its own: the pending entries, then (next step) the new ones.
            return self.host.read_pending()
        return self.host.step(self.block_ms if block_ms is None else block_ms)

    def drain(self) -> int:
        """Apply everything currently in the streams (tests and benchmarks)."""
        self.ensure_groups()
        total = self.host.read_pending()
        while read := self.step(block_ms=1):
            total += read
        return total

    def forget_stale_waiting(self, now: float | None = None) -> int:
        """Drop waiting entries older than the longest call the engine allows: their end was
        never published (a node lost without ``slot_failed``), and they would hold the longest
        wait up forever."""
        cutoff = (now or time.time()) - self.ctx.settings.sip.max_call_seconds
        removed = 0
        for queue in self.redis.smembers(self.mk("queues")):
            removed += int(self.redis.zremrangebyscore(self.mk.waiting(queue), "-inf", cutoff))
        if removed:
            log.warning("metrics: forgot %d waiting calls older than the longest call", removed)
        return removed

    def run(self) -> None:
        self.ensure_groups()
        self.refresh_teams(force=True)
        swept_at = 0.0
        while not self._stop.is_set():
            try:
                if not self.hold_lease():
                    self._stop.wait(1.0)
                    continue
                self.step()
                if time.monotonic() - swept_at > 60:
                    self.forget_stale_waiting()
                    swept_at = time.monotonic()
            except redis.RedisError:
                log.exception("metrics consumer: Redis error; retrying in 1 s")
                self._stop.wait(1.0)
            except Exception:  # boundary: a bug must not silently end live figures
                log.exception("metrics consumer: unexpected error; retrying in 1 s")
                self._stop.wait(1.0)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="metrics-consumer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        key = self.mk("lease")
        if self.redis.get(key) == self.name:
            self.redis.delete(key)
