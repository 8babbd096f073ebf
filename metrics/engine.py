"""The live metric engine: a consumer group ``metrics`` on the call and agent event streams
that keeps every live figure in Redis, and the reader that turns that state into figures.

Redis layout (all under ``{prefix}:metrics:``):

==========================  ===========================================================
``applied:<stream>``        last stream id applied (replays at or below it are skipped)
``call:<call_id>``          a call's tracker state (JSON) until nothing more can change it
``agents``                  hash agent id → agent state (JSON)
``waiting:<queue>``         sorted set call id → epoch seconds it entered the queue
``total``                   hash ``q:<queue>|<shift>|<counter>`` since the beginning
``day:<YYYY-MM-DD>``        hash ``<dim>|<shift>|<counter>`` for a local day
``occ:<shift>:<date>``      same, for one occurrence of a shift
``min:<epoch minute>``      same, for one minute (rolling windows; expires after 2 hours)
``hist:<wait|handle>``      hash ``<queue>|<upper bound>`` counts, ``<queue>|sum``/``|count``
``version``                 incremented by every applied batch; ``changed`` is published
``alerts``                  hash ``<kind>|<queue>`` → a rate alert's hysteresis state
                            (kind ``answer_rate`` or ``service_level``)
==========================  ===========================================================

``<dim>`` is ``q:<queue>``, ``t:<team>``, or ``e:edge`` (calls refused at the edge, before any
queue: counted for the center). One process at a time consumes (it holds the
``lease`` key); a batch is applied in one MULTI/EXEC guarded by WATCH on the applied id, so a
crash between applying and XACK, or two processes racing, never counts an event twice.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import select

from callcenter.consumers import ConsumerHost
from callcenter.context import AppContext
from callcenter.redis_keys import Keys
from callcenter.service_keys import Service
from callcenter.streams import CallEvent
from config.loader import CenterConfig
from metrics.alerts import AlertState, rate_breached, step
from metrics.definitions import (
    CALL_COUNTERS,
    NO_SHIFT,
    NO_TEAM,
    REFUSED,
    STATE_PREFIX,
    AgentState,
    AgentTracker,
    CallState,
    CallTracker,
    Effects,
    MetricConfig,
    add_into,
    figures,
    parse_at,
    shift_in_force,
    shift_occurrence,
)
from recordings import reconcile

log = logging.getLogger(__name__)

GROUP = "metrics"
EDGE_DIM = "e:edge"  # calls refused at the edge (no queue): counted for the center
CONSUMER = "metrics"  # one name for every process: whoever holds the lease owns the pending list
LEASE_SECONDS = 10
MINUTE_TTL_SECONDS = 2 * 3600
DAY_TTL_SECONDS = 3 * 86400
CALL_TTL_SECONDS = 12 * 3600
WAIT_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0)
HANDLE_BUCKETS = (30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0, 3600.0)
BUCKETS = {"wait": WAIT_BUCKETS, "handle": HANDLE_BUCKETS}
WINDOWS = ("today", "shift", "15m", "60m")
ROLLING = {"15m": 15, "60m": 60}


METRIC_CONFIG: Service[MetricConfig] = Service("metric definitions")
TEAM_NAMES: Service[dict[str, str]] = Service("team names")
TEAMS: Service[tuple[float, dict[str, str | None]]] = Service("agents' teams (loaded at, teams)")


def metric_config(ctx: AppContext) -> MetricConfig:
    """The metric definitions of the configuration in force (made again after a change)."""
    cached = ctx.services.get(METRIC_CONFIG)
    if cached is not None:
        return cached

    def forget(_config: CenterConfig) -> None:
        ctx.services.pop(METRIC_CONFIG)

    if not ctx.services.get(METRIC_CONFIG_FOLLOWS):
        ctx.config_listeners.append(forget)
        ctx.services.set(METRIC_CONFIG_FOLLOWS, True)
    built = MetricConfig.from_files(ctx.config.queues, ctx.config.shifts, ctx.settings.timezone)
    return ctx.services.set(METRIC_CONFIG, built)


METRIC_CONFIG_FOLLOWS: Service[bool] = Service("metric definitions follow config changes")


def team_names(ctx: AppContext) -> dict[str, str]:
    """Team id → name, from SQL."""
    from cti.models import Team

    with ctx.sessions() as session:
        return {str(i): name for i, name in session.execute(select(Team.id, Team.name)).all()}


def load_teams(ctx: AppContext) -> dict[str, str | None]:
    """Agent id → team id, from SQL (cti owns agents)."""
    from cti.models import Agent

    with ctx.sessions() as session:
        rows = session.execute(select(Agent.id, Agent.team_id)).all()
    return {str(agent): (str(team) if team is not None else None) for agent, team in rows}


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


def _stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


# ARGV: for each key in KEYS: its index, TTL seconds (0: none), number of fields, then
# field/increment pairs. HINCRBYFLOAT keeps integers exact (it prints "3", not "3.0").
INCREMENT_SCRIPT = """
local i = 1
while i <= #ARGV do
  local key = KEYS[tonumber(ARGV[i])]
  local ttl = tonumber(ARGV[i + 1])
  local n = tonumber(ARGV[i + 2])
  i = i + 3
  for _ = 1, n do
    redis.call('HINCRBYFLOAT', key, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return 0
"""


def parse_entry(fields: Mapping[str, str]) -> CallEvent | str:
    """The event in a stream entry, or why it cannot be used (a malformed entry is skipped and
    counted under ``rejected``, never allowed to block the stream)."""
    # Same shape as CallEvent.from_fields, without its per-entry conversions (hot path: the
    # client already decodes to str).
    try:
        at = fields["at"]
        parse_at(at)
        data = json.loads(fields.get("data") or "{}")
        event = CallEvent(
            type=fields["type"],
            call_id=fields["call_id"],
            slot=fields.get("slot", ""),
            node=fields.get("node", ""),
            at=at,
            data=data,
        )
    except (KeyError, ValueError, TypeError) as exc:
        return f"malformed entry ({type(exc).__name__}: {exc})"
    if not isinstance(data, dict):
        return "malformed entry (data is not a JSON object)"
    return event


class MetricKeys:
    def __init__(self, keys: Keys) -> None:
        self.keys = keys

    def __call__(self, name: str) -> str:
        return self.keys.metrics(name)

    def applied(self, stream: str) -> str:
        return self(f"applied:{stream}")

    def call(self, call_id: str) -> str:
        return self(f"call:{call_id}")

    def waiting(self, queue: str) -> str:
        return self(f"waiting:{queue}")

    def day(self, day: str) -> str:
        return self(f"day:{day}")

    def occ(self, occurrence: str) -> str:
        return self(f"occ:{occurrence}")

    def minute(self, epoch_minute: int) -> str:
        return self(f"min:{epoch_minute}")


# ---------------------------------------------------------------- writing


class MetricStore:
    """Applies batches of stream entries to the Redis state (the consumer's write side)."""

    def __init__(
        self,
        client: Any,
        keys: Keys,
        config: MetricConfig,
        team_of: Mapping[str, str | None] | None = None,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.mk = MetricKeys(keys)
        self.config = config
        self.team_of: dict[str, str | None] = dict(team_of or {})
        self.calls = CallTracker(config, self.team_of)
        self.agents = AgentTracker(config, self.team_of)

    def set_teams(self, team_of: Mapping[str, str | None]) -> None:
        self.team_of.clear()
        self.team_of.update(team_of)

    def apply_batch(self, stream: str, entries: Sequence[tuple[str, Mapping[str, str]]]) -> int:
        """Apply entries (id, fields) of one stream; returns how many were new. Retries when
        another process changed the applied id in between (WATCH)."""
        if not entries:
            return 0
        applied_key = self.mk.applied(stream)
        is_agent_stream = stream == self.keys.agent_events
        while True:
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(applied_key)
                    last = pipe.get(applied_key)
                    last_id = _stream_id(str(last)) if last else (-1, -1)
                    fresh = [(i, f) for i, f in entries if _stream_id(i) > last_id]
                    if not fresh:
                        pipe.unwatch()
                        return 0
                    writes = _Writes(self.mk)
                    events = []
                    for entry_id, entry in fresh:
                        event = parse_entry(entry)
                        if isinstance(event, CallEvent):
                            events.append(event)
                        else:
                            log.warning("metrics: skipping %s %s: %s", stream, entry_id, event)
                            writes.incr[self.mk("rejected")][f"{stream}|{event}"] += 1
                    if is_agent_stream:
                        self._agent_batch(pipe, events, writes)
                    else:
                        self._call_batch(pipe, events, writes)
                    pipe.multi()
                    self._flush(pipe, writes)
                    pipe.set(applied_key, fresh[-1][0])
                    pipe.incr(self.mk("version"))
                    pipe.publish(self.mk("changed"), fresh[-1][0])
                    pipe.execute()
                    return len(fresh)
                except redis.WatchError:
                    continue

    def _call_batch(self, pipe: Any, events: list[CallEvent], writes: _Writes) -> None:
        ids = list(dict.fromkeys(e.call_id for e in events))
        raw = pipe.mget([self.mk.call(i) for i in ids]) if ids else []
        states = {
            i: (CallState.from_json(r) if r else CallState(i))
            for i, r in zip(ids, raw, strict=True)
        }
        for event in events:
            state = states[event.call_id]
            writes.add(self.calls.apply(state, event))
        for call_id, state in states.items():
            if state.finished:
                writes.delete_calls.append(call_id)
            else:
                writes.set_calls[call_id] = state.to_json()

    def _agent_batch(self, pipe: Any, events: list[CallEvent], writes: _Writes) -> None:
        ids = list(dict.fromkeys(str(e.data.get("agent_id", e.call_id)) for e in events))
        raw = pipe.hmget(self.mk("agents"), ids) if ids else []
        states = {
            i: (AgentState.from_json(r) if r else AgentState(i))
            for i, r in zip(ids, raw, strict=False)
        }
        for event in events:
            agent = str(event.data.get("agent_id", event.call_id))
            effects = Effects(deltas=self.agents.apply(states[agent], event))
            writes.add(effects)
        writes.agents = {i: s.to_json() for i, s in states.items()}

    def _flush(self, pipe: Any, writes: _Writes) -> None:
        # All counter increments of the batch in one script call: one reply instead of one per
        # field, which is most of the cost at thousands of events per second.
        keys = [key for key, fields in writes.incr.items() if fields]
        argv: list[str | int | float] = []
        for index, key in enumerate(keys, start=1):
            fields = writes.incr[key]
            argv += [index, writes.ttl.get(key, 0), len(fields)]
            for name, value in fields.items():
                argv += [name, repr(float(value))]
        if keys:
            # EVAL, not EVALSHA: inside MULTI a NOSCRIPT (after a Redis restart) would drop
            # the increments while the rest of the transaction applies.
            pipe.eval(INCREMENT_SCRIPT, len(keys), *keys, *argv)
        for queue, changes in writes.waiting.items():
            adds = {c: s for c, s in changes.items() if s is not None}
            removes = [c for c, s in changes.items() if s is None]
            if removes:
                pipe.zrem(self.mk.waiting(queue), *removes)
            if adds:
                pipe.zadd(self.mk.waiting(queue), adds)
            pipe.sadd(self.mk("queues"), queue)
        for call_id, text in writes.set_calls.items():
            pipe.set(self.mk.call(call_id), text, ex=CALL_TTL_SECONDS)
        if writes.delete_calls:
            pipe.delete(*[self.mk.call(c) for c in writes.delete_calls])
        if writes.agents:
            pipe.hset(self.mk("agents"), mapping=writes.agents)


class _Writes:
    """Everything one batch changes, merged so a batch of 500 events is a few hundred commands."""

    def __init__(self, mk: MetricKeys) -> None:
        self.mk = mk
        self.total_key = mk("total")
        self._keys_by_minute: dict[int, tuple[str, str, list[tuple[str, str]]]] = {}
        self.incr: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.ttl: dict[str, int] = {}
        self.waiting: dict[str, dict[str, float | None]] = defaultdict(dict)
        self.set_calls: dict[str, str] = {}
        self.delete_calls: list[str] = []
        self.agents: dict[str, str] = {}

    def _targets(self, minute: int, cohort: Any) -> tuple[str, str, list[tuple[str, str]]]:
        """Day, minute and occurrence keys of a minute (cached: the hot path)."""
        hit = self._keys_by_minute.get(minute)
        if hit is None:
            mk = self.mk
            hit = (
                mk.day(cohort.day.isoformat()),
                mk.minute(minute),
                [(code, mk.occ(occurrence)) for code, occurrence in cohort.occurrences],
            )
            self._keys_by_minute[minute] = hit
            self.ttl[hit[0]] = DAY_TTL_SECONDS
            self.ttl[hit[1]] = MINUTE_TTL_SECONDS
            for _code, occ_key in hit[2]:
                self.ttl[occ_key] = DAY_TTL_SECONDS
        return hit

    def add(self, effects: Effects) -> None:
        incr = self.incr
        total = incr[self.total_key]
        for delta in effects.deltas:
            cohort = delta.cohort
            counter, value = delta.counter, delta.value
            day_key, minute_key, occ_keys = self._targets(int(cohort.at.timestamp() // 60), cohort)
            day, minute = incr[day_key], incr[minute_key]
            dims = []
            if cohort.queue:
                dims.append(f"q:{cohort.queue}")
            elif counter.startswith(REFUSED):
                dims.append(EDGE_DIM)
            if cohort.team or cohort.agent or counter.startswith(STATE_PREFIX):
                dims.append(f"t:{cohort.team or NO_TEAM}")
            for dim in dims:
                name = f"{dim}|{cohort.shift}|{counter}"
                day[name] += value
                minute[name] += value
                if dim[0] in "qe":
                    total[name] += value
                for code, occ_key in occ_keys:
                    incr[occ_key][f"{dim}|{code}|{counter}"] += value
        mk = self.mk
        for obs in effects.observations:
            key = mk(f"hist:{obs.metric}")
            bound = next((b for b in BUCKETS[obs.metric] if obs.value <= b), None)
            self.incr[key][f"{obs.queue}|{bound if bound is not None else '+Inf'}"] += 1
            self.incr[key][f"{obs.queue}|sum"] += obs.value
            self.incr[key][f"{obs.queue}|count"] += 1
        for change in effects.waiting:
            score = change.entered_at.timestamp() if change.entered_at else None
            self.waiting[change.queue][change.call_id] = score


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


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class Window:
    name: str
    start: datetime  # UTC, inclusive
    keys: list[str]  # hashes to sum
    shift: str | None  # only fields of this shift (None: all)


def windows(config: MetricConfig, mk: MetricKeys, now: datetime) -> dict[str, Window]:
    local = config.local(now)
    current = shift_in_force(config.shifts, local)
    midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=config.tz)
    result = {
        "today": Window(
            "today", midnight.astimezone(UTC), [mk.day(local.date().isoformat())], None
        ),
    }
    # The current shift: everything since the start of the occurrence of the shift in force.
    occurrence = shift_occurrence(config.shifts, current, local)
    if occurrence:
        occ_key = f"{current}:{occurrence[0].date().isoformat()}"
        result["shift"] = Window("shift", occurrence[0].astimezone(UTC), [mk.occ(occ_key)], current)
    else:  # no shift covers this moment: an empty window
        result["shift"] = Window("shift", now, [], NO_SHIFT)
    this_minute = int(now.timestamp() // 60)
    for name, minutes in ROLLING.items():
        first = this_minute - minutes + 1
        result[name] = Window(
            name,
            datetime.fromtimestamp(first * 60, UTC),
            [mk.minute(m) for m in range(first, this_minute + 1)],
            None,
        )
    return result


def parse_fields(
    raw: Mapping[str, str], shift: str | None
) -> dict[str, dict[str, dict[str, float]]]:
    """``{dim: {shift: {counter: value}}}`` from a metrics hash."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for name, value in raw.items():
        dim, _, rest = name.partition("|")
        field_shift, _, counter = rest.partition("|")
        if shift is not None and field_shift != shift:
            continue
        bucket = out[dim][field_shift]
        bucket[counter] = bucket.get(counter, 0.0) + float(value)
    return out


def collapse(
    parsed: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, float]]:
    """Sum over shifts: ``{dim: {counter: value}}``."""
    result: dict[str, dict[str, float]] = {}
    for dim, by_shift in parsed.items():
        total: dict[str, float] = {}
        for counters in by_shift.values():
            add_into(total, counters)
        result[dim] = total
    return result


class LiveReader:
    """Builds the live snapshot (wallboard JSON, Prometheus) from the Redis state."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.redis: Any = ctx.redis
        self.mk = MetricKeys(ctx.keys)
        self.config = metric_config(ctx)

    def agents(self) -> dict[str, AgentState]:
        raw = self.redis.hgetall(self.mk("agents"))
        return {k: AgentState.from_json(v) for k, v in raw.items()}

    def queues(self) -> list[str]:
        configured = list(self.ctx.config.queues.queues)
        seen = sorted(set(self.redis.smembers(self.mk("queues"))) - set(configured))
        return configured + seen

    def totals(self) -> dict[str, dict[str, dict[str, float]]]:
        return parse_fields(self.redis.hgetall(self.mk("total")), None)

    def histogram(self, metric: str) -> dict[str, dict[str, float]]:
        raw: Mapping[str, str] = self.redis.hgetall(self.mk(f"hist:{metric}"))
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for name, value in raw.items():
            queue, _, part = name.rpartition("|")
            out[queue][part] = float(value)
        return out

    def snapshot(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        config = self.config
        queues = self.queues()
        wins = windows(config, self.mk, now)
        local = config.local(now)
        for code in config.shifts.shifts:  # each shift's latest occurrence, for "per shift"
            occurrence = shift_occurrence(config.shifts, code, local)
            if occurrence:
                key = f"{code}:{occurrence[0].date().isoformat()}"
                wins[f"shift:{code}"] = Window(
                    key, occurrence[0].astimezone(UTC), [self.mk.occ(key)], code
                )
        pipe = self.redis.pipeline(transaction=False)
        order: list[tuple[str, Window]] = []
        for window in wins.values():
            for key in window.keys:
                pipe.hgetall(key)
                order.append((key, window))
        for queue in queues:
            pipe.zrange(self.mk.waiting(queue), 0, 0, withscores=True)
            pipe.zcard(self.mk.waiting(queue))
        pipe.hgetall(self.mk("agents"))
        pipe.get(self.mk("version"))
        results = pipe.execute()
        by_window: dict[str, dict[str, dict[str, float]]] = {w.name: {} for w in wins.values()}
        for (_key, window), raw in zip(order, results[: len(order)], strict=True):
            for dim, counters in collapse(parse_fields(raw, window.shift)).items():
                add_into(by_window[window.name].setdefault(dim, {}), counters)
        rest = results[len(order) :]
        waiting: dict[str, tuple[int, float | None]] = {}
        for index, queue in enumerate(queues):
            first, count = rest[2 * index], rest[2 * index + 1]
            longest = max(now.timestamp() - first[0][1], 0.0) if first else None
            waiting[queue] = (int(count), longest)
        agent_states = {
            k: AgentState.from_json(v) for k, v in (rest[2 * len(queues)] or {}).items()
        }
        version = int(rest[2 * len(queues) + 1] or 0)
        return self._assemble(now, queues, wins, by_window, waiting, agent_states, version)

    def _open_state_seconds(
        self, agents: Mapping[str, AgentState], start: datetime, now: datetime, team: str | None
    ) -> dict[str, float]:
        """Time in the current state not yet closed by a transition, inside [start, now)."""
        totals: dict[str, float] = {}
        for agent in agents.values():
            if agent.state == "logged_out" or agent.since is None:
                continue
            if team is not None and (self.team_of(agent.agent) or NO_TEAM) != team:
                continue
            begin = max(agent.since, start)
            if begin < now:
                name = STATE_PREFIX + agent.state
                totals[name] = totals.get(name, 0.0) + (now - begin).total_seconds()
        return totals

    def team_name(self, team: str) -> str:
        names = self.ctx.services.get(TEAM_NAMES)
        if names is None or team not in names:
            try:
                names = team_names(self.ctx)
            except Exception:  # boundary: SQL down must not stop the wallboard
                log.exception("metrics: could not load team names")
                names = {}
            self.ctx.services.set(TEAM_NAMES, names)
        return str(names.get(team, team))

    def team_of(self, agent: str) -> str | None:
        loaded = self.ctx.services.get(TEAMS)
        if loaded is None or time.monotonic() - loaded[0] > 60:
            try:
                teams = load_teams(self.ctx)
            except Exception:  # boundary: SQL down must not stop the wallboard
                log.exception("metrics: could not load agent teams")
                teams = {}
            loaded = self.ctx.services.set(TEAMS, (time.monotonic(), teams))
        value = loaded[1].get(agent)
        return str(value) if value is not None else None

    def _assemble(
        self,
        now: datetime,
        queues: list[str],
        wins: Mapping[str, Window],
        by_window: Mapping[str, Mapping[str, Mapping[str, float]]],
        waiting: Mapping[str, tuple[int, float | None]],
        agents: Mapping[str, AgentState],
        version: int,
    ) -> dict[str, Any]:
        config = self.config
        cfg_queues = self.ctx.config.queues.queues
        local = config.local(now)
        current_shift = shift_in_force(config.shifts, local)
        agents_by_queue: dict[str, dict[str, int]] = {q: {} for q in queues}
        center_agents: dict[str, int] = {}
        for agent in agents.values():
            if agent.state == "logged_out":
                continue
            center_agents[agent.state] = center_agents.get(agent.state, 0) + 1
            for queue in agent.queues:
                counts = agents_by_queue.setdefault(queue, {})
                counts[agent.state] = counts.get(agent.state, 0) + 1
        queue_figures: dict[str, Any] = {}
        for queue in queues:
            count, longest = waiting.get(queue, (0, None))
            sl_seconds = config.sl_seconds(queue)
            entry: dict[str, Any] = {
                "name": {
                    "zh-CN": cfg_queues[queue].name.zh if queue in cfg_queues else queue,
                    "en": cfg_queues[queue].name.en if queue in cfg_queues else queue,
                },
                "waiting": count,
                "longest_wait_seconds": longest,
                "long_wait_alert_seconds": config.long_wait_alert_seconds.get(queue),
                "service_level_seconds": sl_seconds,
                "agents": agents_by_queue.get(queue, {}),
                "windows": {
                    name: figures(by_window[name].get(f"q:{queue}", {})) for name in WINDOWS
                },
            }
            queue_figures[queue] = entry
        center_windows: dict[str, Any] = {}
        team_dims = sorted(
            {dim for counters in by_window.values() for dim in counters if dim.startswith("t:")}
            | {
                f"t:{self.team_of(a) or NO_TEAM}"
                for a, s in agents.items()
                if s.state != "logged_out"
            }
        )
        teams: dict[str, Any] = {}
        for name in WINDOWS:
            window = wins[name]
            counters: dict[str, float] = {}
            for dim, values in by_window[name].items():
                if dim.startswith("q:"):
                    add_into(counters, {k: v for k, v in values.items() if k in CALL_COUNTERS})
                elif dim == EDGE_DIM:
                    add_into(counters, values)
                else:
                    add_into(
                        counters, {k: v for k, v in values.items() if k.startswith(STATE_PREFIX)}
                    )
            add_into(counters, self._open_state_seconds(agents, window.start, now, None))
            center_windows[name] = figures(counters)
            for dim in team_dims:
                team = dim[2:]
                team_counters = dict(by_window[name].get(dim, {}))
                add_into(team_counters, self._open_state_seconds(agents, window.start, now, team))
                entry = teams.setdefault(team, {"name": self.team_name(team), "windows": {}})
                entry["windows"][name] = figures(team_counters)
        total_waiting = sum(c for c, _ in waiting.values())
        longest_all = max((w for _, w in waiting.values() if w is not None), default=None)
        snapshot: dict[str, Any] = {
            "at": now.isoformat(),
            "local_time": local.isoformat(),
            "timezone": str(config.tz),
            "version": version,
            "answer_rate_target": config.answer_rate_target,
            "service_level_target": config.service_level_target,
            "current_shift": current_shift,
            "windows": {n: {"start": wins[n].start.isoformat()} for n in WINDOWS},
            "center": {
                "waiting": total_waiting,
                "longest_wait_seconds": longest_all,
                "agents": center_agents,
                "logged_in": sum(center_agents.values()),
                "windows": center_windows,
            },
            "queues": queue_figures,
            "teams": teams,
        }
        shifts: dict[str, Any] = {}
        for name, window in wins.items():
            if not name.startswith("shift:"):
                continue
            shift_counters = by_window[window.name]
            shift_center: dict[str, float] = {}
            for dim, values in shift_counters.items():
                add_into(
                    shift_center,
                    values
                    if dim.startswith("q:") or dim == EDGE_DIM
                    else {k: v for k, v in values.items() if k.startswith(STATE_PREFIX)},
                )
            shifts[name.split(":", 1)[1]] = {
                "occurrence": window.name,
                "start": window.start.isoformat(),
                "center": figures(shift_center),
                "queues": {q: figures(shift_counters.get(f"q:{q}", {})) for q in queues},
            }
        snapshot["shifts"] = shifts
        snapshot["alerts"] = alerts(self.ctx, snapshot, local)
        return snapshot


def staffing_minimum(ctx: AppContext, local: datetime) -> int | None:
    moment = local.time()
    found = None
    for minimum in ctx.config.shifts.minimums:
        start, end = minimum.start, minimum.end
        covers = start <= moment < end if start < end else (moment >= start or moment < end)
        if covers:
            found = max(found or 0, minimum.agents)
    return found


# The rate alerts: kind → (the shift figure judged, the snapshot's target key, wording).
RATE_ALERTS: dict[str, tuple[str, str]] = {
    "answer_rate": ("resolved_answer_rate", "answer_rate_target"),
    "service_level": ("resolved_service_level", "service_level_target"),
}


def _rate_alert_text(
    kind: str, snapshot: Mapping[str, Any], queue: str, rate: float, resolved: int, target: float
) -> dict[str, str]:
    zh, en = _qname(snapshot, queue, "zh-CN"), _qname(snapshot, queue, "en")
    if kind == "answer_rate":
        return {
            "zh-CN": f"{zh}本班次已结束来电 {resolved} 通，接通率 {rate:.1%} 低于目标 {target:.0%}",
            "en": f"{en}: shift answer rate {rate:.1%} of {resolved} resolved calls is under "
            f"the {target:.0%} target",
        }
    return {
        "zh-CN": f"{zh}本班次已结束来电 {resolved} 通，服务水平 {rate:.1%} 低于目标 {target:.0%}",
        "en": f"{en}: shift service level {rate:.1%} of {resolved} resolved calls is under "
        f"the {target:.0%} target",
    }


def alerts(ctx: AppContext, snapshot: Mapping[str, Any], local: datetime) -> list[dict[str, Any]]:
    """Answer rate and service level under target for the shift, staffing under the minimum,
    long waits.

    The answer-rate and service-level alerts follow their condition with hysteresis
    (metrics/alerts.py, one policy for both: ``[alerts]`` in shifts.toml); their state is kept
    in Redis (``metrics:alerts``) so every API process shows the same alerts.
    """
    config = metric_config(ctx)
    policy = config.alert_policy
    now = local.timestamp()
    out: list[dict[str, Any]] = []
    scopes = [("all", snapshot["center"]), *list(snapshot["queues"].items())]
    redis: Any = ctx.redis
    state_key = MetricKeys(ctx.keys)("alerts")
    stored: Mapping[str, str] = redis.hgetall(state_key)
    changed: dict[str, str] = {}
    current = snapshot.get("current_shift")
    period = str(snapshot["shifts"].get(current, {}).get("occurrence", "")) if current else ""
    for kind, (figure, target_key) in RATE_ALERTS.items():
        target = float(snapshot[target_key])
        for queue, scope in scopes:
            shift = scope["windows"]["shift"]
            rate, resolved = shift[figure], int(shift["resolved"])
            field_name = f"{kind}|{queue}"
            before = AlertState.from_text(stored.get(field_name), period)
            after = step(before, rate_breached(rate, resolved, target, policy), now, policy)
            if after.to_text() != stored.get(field_name):
                changed[field_name] = after.to_text()
            if not after.active or rate is None:
                continue
            out.append(
                {
                    "kind": kind,
                    "queue": queue,
                    "value": rate,
                    "threshold": target,
                    "resolved": resolved,
                    "figure": f"shift_{figure}",
                    **_rate_alert_text(kind, snapshot, queue, rate, resolved, target),
                }
            )
    if changed:
        redis.hset(state_key, mapping=changed)
    minimum = staffing_minimum(ctx, local)
    logged_in = int(snapshot["center"]["logged_in"])
    if minimum is not None and logged_in < minimum:
        out.append(
            {
                "kind": "staffing",
                "queue": "all",
                "value": logged_in,
                "threshold": minimum,
                "zh-CN": f"在线坐席 {logged_in} 人，低于本时段最低 {minimum} 人",
                "en": f"{logged_in} agents logged in, under the minimum of {minimum}",
            }
        )
    for queue, scope in snapshot["queues"].items():
        longest = scope["longest_wait_seconds"]
        limit = scope["long_wait_alert_seconds"]
        if longest is not None and limit is not None and longest > limit:
            out.append(
                {
                    "kind": "long_wait",
                    "queue": queue,
                    "value": round(longest, 1),
                    "threshold": limit,
                    "zh-CN": f"{_qname(snapshot, queue, 'zh-CN')}有来电已等待 "
                    f"{int(longest)} 秒（阈值 {limit} 秒）",
                    "en": f"{_qname(snapshot, queue, 'en')}: a call has waited {int(longest)} s "
                    f"(threshold {limit} s)",
                }
            )
    mismatches = reconcile.wallboard_alert(ctx)  # recordings, rows and files disagree
    if mismatches is not None:
        out.append(mismatches)
    return out


def _qname(snapshot: Mapping[str, Any], queue: str, lang: str) -> str:
    if queue == "all":
        return "全中心" if lang == "zh-CN" else "Center"
    return str(snapshot["queues"][queue]["name"][lang])
