"""What the engine says about itself in Redis: the ``engine`` heartbeat (/readyz), and the
pool-state summary for operators and benchmarks (``{prefix}:engine:pool:<node>``); both
cleared when the engine stops."""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import redis

from callcenter.context import AppContext
from callcenter.health import beat, clear_rotation
from ivr.edge.membership import withdraw
from ivr.live_config import EngineConfig
from ivr.slot_pool import SlotPool

log = logging.getLogger("ivr.supervisor")


class Liveness:
    def __init__(self, ctx: AppContext, *, join: bool) -> None:
        self.ctx = ctx
        self.r: Any = ctx.redis
        self.node_id = ctx.settings.node_id
        self.lines = ctx.settings.sip.lines
        self.join = join
        self.pool_key = ctx.keys.engine_pool(self.node_id)
        # one heartbeat per node when several join an edge (one stopping must not clear another's)
        self.beat_name = f"engine-{self.node_id}" if join else "engine"

    def first_beat(self) -> None:
        """The first heartbeat: Redis must answer for the engine to start."""
        beat(self.ctx, self.beat_name)

    def beat(self) -> None:
        """The heartbeat; Redis away (restarting) must not end the engine and every call on
        its slots: the beat resumes when Redis is back."""
        try:
            beat(self.ctx, self.beat_name)
        except redis.RedisError as exc:
            log.warning("engine heartbeat not written (Redis: %s); calls go on", exc)

    def write_pool_state(self, pool: SlotPool, current: EngineConfig, edge_restarts: int) -> None:
        """A small summary for operators and benchmarks (``{prefix}:engine:pool:<node>``)."""
        pool.dirty = False
        slots = pool.slots.values()
        per_slot = {
            f"slot:{h.spec.name}": f"{h.process.pid} {h.status} {h.call.get('call_id', '')}"
            for h in slots
        }
        with contextlib.suppress(Exception):
            pipe = self.r.pipeline(transaction=True)
            pipe.delete(self.pool_key)
            pipe.hset(
                self.pool_key,
                mapping={
                    "slots": len(pool.slots),
                    "busy": sum(1 for h in slots if h.call),
                    "idle": pool.idle_count(),
                    "restarts": pool.restarts,
                    "edge_restarts": edge_restarts,
                    "lines": self.lines,
                    "pids": ",".join(str(h.process.pid) for h in slots),
                    "ready": sum(1 for h in slots if h.status == "ready"),
                    # the configuration generation new calls get, its stored versions, and
                    # the one each slot runs (a busy slot keeps its call's until it ends)
                    "config_generation": current.generation,
                    "config_versions": json.dumps(dict(current.versions), sort_keys=True),
                    **per_slot,
                    **{f"config:{h.spec.name}": h.generation for h in slots},
                },
            )
            pipe.execute()

    def clear(self) -> None:
        """The engine stops: its heartbeat, readiness record, membership and pool state go."""
        with contextlib.suppress(Exception):
            self.r.delete(self.ctx.keys.process_heartbeat(self.beat_name))
            clear_rotation(self.r, self.ctx.keys.prefix, self.node_id)
            if self.join:
                withdraw(self.r, self.ctx.keys.prefix, self.node_id)
            self.r.delete(self.pool_key)
