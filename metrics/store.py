"""The metric engine's write side: a batch of stream entries applied to the Redis state.

A batch is applied in one MULTI/EXEC guarded by WATCH on the stream's applied id, so a crash
between applying and XACK, or two processes racing, never counts an event twice. Counter
increments of a batch are merged (``_Writes``) and sent in one script call.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from callcenter.redis_keys import Keys
from callcenter.streams import CallEvent
from metrics.agent_states import AgentState, AgentTracker
from metrics.call_state import CallState
from metrics.call_tracker import CallTracker
from metrics.counters import REFUSED, STATE_PREFIX
from metrics.effects import Effects
from metrics.live_keys import BUCKETS, EDGE_DIM, MetricKeys
from metrics.metric_config import NO_TEAM, MetricConfig
from metrics.time_windows import parse_at

log = logging.getLogger(__name__)

MINUTE_TTL_SECONDS = 2 * 3600
DAY_TTL_SECONDS = 3 * 86400
CALL_TTL_SECONDS = 12 * 3600


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
