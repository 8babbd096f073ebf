"""One host for the readers of the Redis event streams: a consumer group, its claims and
acknowledgements, and the recovery the readers need, around a table of handlers.

A reader gives the host its streams, its group and consumer name, and either a table
``event type -> handler(entry_id, fields)`` (entries of other types are acknowledged
untouched) or one ``batch(stream, entries)`` handler (SQL writers that insert a batch at
once). Each :meth:`ConsumerHost.step`:

1. reads this consumer's own pending entries first (received before a restart, never
   acknowledged), batch by batch until there are none;
2. then, when ``claim_idle_ms`` is set, claims what another consumer of the group received
   and left unacknowledged that long (a dead process), at most once per that interval;
3. then reads new entries, waiting up to ``block_ms``.

An entry is acknowledged once handled. A handler's exception of a ``skip`` type means the
entry itself is wrong: it is logged and acknowledged, so one bad entry never blocks the rest.
Any other exception (the database is down) leaves that entry and the rest of its batch
pending, to be read again at the next step; the ones handled before it are acknowledged.
A batch handler's exception leaves its whole batch pending.

When Redis comes back without the group (restarted without its data), the step recreates it,
calls ``on_group_lost`` and reads its pending entries again; :meth:`run` retries after any
Redis error, so a reader outlives a Redis restart.

Hosted here: the router's groups, the metrics consumer, the call records and the ticketing
readers (callbacks). Deliberately not hosted here:

- the engine's originate forwarding (``ivr/originate_forwarding.py``): its reads are gated by
  the node's idle slots, each entry goes to a particular slot, and an entry nobody took in
  time is judged by its age without being read; its docstring says why in full;
- pub/sub listeners (``ivr/engine_reload.py``'s configuration notices, the desktop and lead
  sockets of ``cti/http.py`` through ``cti.sockets.relay``, the wallboard's revocation watch):
  a notice is lost when nobody listens, so there is no group, no pending entry and nothing to
  acknowledge; each lives as long as its connection (or is polled from the thread-less engine
  supervisor) and re-reads the state it follows after a lost subscription.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import redis

from callcenter.errors import CallCenterError

log = logging.getLogger(__name__)

Entry = tuple[str, dict[str, str]]
EntryHandler = Callable[[str, dict[str, str]], None]
BatchHandler = Callable[[str, list[Entry]], object]  # what it returns is not read


class ConsumerHost:
    def __init__(
        self,
        client: redis.Redis,
        *,
        streams: Sequence[str],
        group: str,
        consumer: str,
        handlers: Mapping[str, EntryHandler] | None = None,
        batch: BatchHandler | None = None,
        create_at: str = "$",
        count: int = 100,
        claim_idle_ms: int | None = None,
        skip: tuple[type[BaseException], ...] = (CallCenterError, KeyError, ValueError),
        on_group_lost: Callable[[], None] | None = None,
    ) -> None:
        if (handlers is None) == (batch is None):
            raise ValueError("a consumer host takes either a handler table or a batch handler")
        self.redis: Any = client
        self.streams = tuple(streams)
        self.group = group
        self.consumer = consumer
        self.handlers = handlers
        self.batch = batch
        self.create_at = create_at
        self.count = count
        self.claim_idle_ms = claim_idle_ms
        self.skip = skip
        self.on_group_lost = on_group_lost
        self._pending = True  # read our own pending entries before new ones
        self._next_claim = 0.0

    def ensure_group(self) -> None:
        """Create the group on every stream (idempotent)."""
        for stream in self.streams:
            try:
                self.redis.xgroup_create(stream, self.group, id=self.create_at, mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    @property
    def pending(self) -> bool:
        """Whether this consumer's own pending entries are still to be read."""
        return self._pending

    def recheck_pending(self) -> None:
        """Read this consumer's pending entries again at the next step."""
        self._pending = True

    # ------------------------------------------------------------ one step

    def step(self, block_ms: int = 0) -> int:
        """Handle what is there (see the module's docstring); returns the entries handled."""
        return self._recovering(lambda: self._step(block_ms))

    def read_pending(self) -> int:
        """Handle this consumer's own pending entries, if still to be read; returns how many."""
        return self._recovering(self._read_pending)

    def _recovering(self, work: Callable[[], int]) -> int:
        try:
            return work()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                self._pending = True  # what was left unacknowledged is read again first
                raise
            log.error(
                "group %s on %s missing (Redis lost its data?): recreating",
                self.group,
                ", ".join(self.streams),
            )
            self.ensure_group()
            if self.on_group_lost is not None:
                self.on_group_lost()
            self._pending = True
            return 0
        except BaseException:
            self._pending = True  # what was left unacknowledged is read again first
            raise

    def _read_pending(self) -> int:
        done = 0
        while self._pending:
            read = self._read("0", None)
            if not read:
                self._pending = False
            done += self._handle_all(read)
        return done

    def _step(self, block_ms: int) -> int:
        done = self._read_pending()
        claimed = self._claim()
        if claimed:
            return done + self._handle_all(claimed)
        if done:
            return done
        return self._handle_all(self._read(">", block_ms or None))

    def _read(self, start: str, block_ms: int | None) -> list[tuple[str, list[Entry]]]:
        reply = self.redis.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(self.streams, start),
            count=self.count,
            block=block_ms,
        )
        return [(stream, entries) for stream, entries in reply or [] if entries]

    def _claim(self) -> list[tuple[str, list[Entry]]]:
        if self.claim_idle_ms is None or time.monotonic() < self._next_claim:
            return []
        self._next_claim = time.monotonic() + self.claim_idle_ms / 1000
        found = []
        for stream in self.streams:
            claimed = self.redis.xautoclaim(
                stream, self.group, self.consumer, self.claim_idle_ms, "0-0", count=self.count
            )
            entries = cast(list[Entry], claimed[1]) if claimed else []
            if entries:
                found.append((stream, entries))
        return found

    def _handle_all(self, read: list[tuple[str, list[Entry]]]) -> int:
        return sum(self._handle(stream, entries) for stream, entries in read)

    def _handle(self, stream: str, entries: list[Entry]) -> int:
        if self.batch is not None:
            self.batch(stream, entries)  # an error leaves the batch unacknowledged, retried
            self.redis.xack(stream, self.group, *[entry_id for entry_id, _ in entries])
            return len(entries)
        assert self.handlers is not None
        handled: list[str] = []
        try:
            for entry_id, fields in entries:
                handler = self.handlers.get(fields.get("type", ""))
                if handler is not None:
                    try:
                        handler(entry_id, fields)
                    except self.skip as exc:
                        _log_skipped(entry_id, fields, exc)
                handled.append(entry_id)
        finally:
            if handled:
                self.redis.xack(stream, self.group, *handled)
        return len(handled)

    # ------------------------------------------------------------ a loop

    def run(self, stop: threading.Event, *, block_ms: int = 1000, pause: float = 1.0) -> None:
        """Steps until ``stop`` is set; any error is logged and retried after ``pause``."""
        while not stop.is_set():
            try:
                self.step(block_ms)
            except redis.RedisError as exc:
                log.warning("%s: Redis unavailable (%s); retrying", self.group, exc)
                stop.wait(pause)
            except Exception:  # boundary: a reader must outlive a bad moment
                log.exception("%s: handling events failed; retrying", self.group)
                stop.wait(pause)


def _log_skipped(entry_id: str, fields: dict[str, str], exc: BaseException) -> None:
    if isinstance(exc, CallCenterError):
        log.info("event %s (%s) refused: %s", entry_id, fields.get("type"), exc.message)
    else:
        log.error("event %s (%s) skipped: %r", entry_id, fields.get("type"), exc, exc_info=exc)
