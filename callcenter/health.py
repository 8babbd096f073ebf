"""Liveness (``GET /healthz``) and readiness (``GET /readyz``).

``/healthz`` answers 200 as long as the API process serves requests: a supervisor restarts a
process whose liveness fails, and restarting the API does not mend a database that is down.

``/readyz`` answers 200 only when the center can take a call now:

- the database and Redis answer;
- at least one slot is in the SIP edge's dispatcher rotation, and the edge would send a call
  to no address without a running slot. The engine node that runs the edge checks the
  dispatcher (``dispatcher.list``) against its running slots every second and publishes the
  result here with a short TTL (:func:`publish_rotation`), so an API on another host than the
  engine reads the same truth and a node that dies stops counting within seconds;
- the router is consuming (its heartbeat, beaten from its loop, has not expired);
- the metrics consumer's lease is held (``metrics/consumer.py`` ``MetricsConsumer``).

Each missing thing is named; exception texts are logged, never answered (they can carry
addresses and credentials).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis
from sqlalchemy import text

from callcenter.context import AppContext

log = logging.getLogger(__name__)

HEARTBEAT_TTL_SECONDS = 10
ROTATION_TTL_SECONDS = 5  # the engine refreshes its record every second or so


def beat(ctx: AppContext, name: str) -> None:
    """Mark a long-running process alive for the next HEARTBEAT_TTL_SECONDS."""
    ctx.redis.set(ctx.keys.process_heartbeat(name), str(time.time()), ex=HEARTBEAT_TTL_SECONDS)


# ---------------------------------------------------------------- the engine's rotation record


def rotation_key(prefix: str, node: str) -> str:
    """One engine node's readiness record (JSON, expires unless refreshed)."""
    return f"{prefix}:engine:rotation:{node}"


def rotation_nodes_key(prefix: str) -> str:
    """The nodes that have published a rotation record (a set; stale members are pruned)."""
    return f"{prefix}:engine:rotation-nodes"


@dataclass(frozen=True)
class Rotation:
    """What one node's edge would do with a new call, as checked a moment ago."""

    node: str
    in_rotation: int  # running slots the edge's dispatcher has active
    free: int  # of those, slots carrying no call
    slots: int  # slot processes running on the node
    problem: str = ""  # why a call could fail now ("SIP edge not running", ...); "" when none


def publish_rotation(client: Any, prefix: str, rotation: Rotation) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.set(
        rotation_key(prefix, rotation.node),
        json.dumps(asdict(rotation)),
        ex=ROTATION_TTL_SECONDS,
    )
    pipe.sadd(rotation_nodes_key(prefix), rotation.node)
    pipe.execute()


def clear_rotation(client: Any, prefix: str, node: str) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.delete(rotation_key(prefix, node))
    pipe.srem(rotation_nodes_key(prefix), node)
    pipe.execute()


def rotations(client: Any, prefix: str) -> list[Rotation]:
    """Every node's current record; members whose record expired are pruned."""
    nodes = sorted(str(n) for n in client.smembers(rotation_nodes_key(prefix)))
    if not nodes:
        return []
    found: list[Rotation] = []
    values = client.mget([rotation_key(prefix, node) for node in nodes])
    for node, value in zip(nodes, values, strict=True):
        if value is None:
            client.srem(rotation_nodes_key(prefix), node)
            continue
        found.append(Rotation(**json.loads(value)))
    return found


# ---------------------------------------------------------------- the checks


def liveness() -> dict[str, Any]:
    return {"status": "ok"}


def readiness(ctx: AppContext) -> tuple[bool, dict[str, Any]]:
    """``(ready, {"ready", "missing", "checks"})``: every missing thing named in ``missing``."""
    missing: list[str] = []
    checks: dict[str, Any] = {}
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # boundary: any driver error means "not answering"
        log.warning("readiness: the database did not answer", exc_info=True)
        checks["database"] = "not answering"
        missing.append("database: not answering")
    try:
        ctx.redis.ping()
        checks["redis"] = "ok"
        _check_redis_parts(ctx, checks, missing)
    except redis.RedisError:
        log.warning("readiness: Redis did not answer", exc_info=True)
        checks["redis"] = "not answering"
        missing.append("redis: not answering")
        for part in ("engine", "router", "metrics"):
            checks[part] = "unknown"
            missing.append(f"{part}: unknown (Redis not answering)")
    ready = not missing
    return ready, {"ready": ready, "missing": missing, "checks": checks}


def _check_redis_parts(ctx: AppContext, checks: dict[str, Any], missing: list[str]) -> None:
    prefix = ctx.keys.prefix
    nodes = rotations(ctx.redis, prefix)
    checks["engine"] = {
        n.node: {"in_rotation": n.in_rotation, "free": n.free, "slots": n.slots}
        | ({"problem": n.problem} if n.problem else {})
        for n in nodes
    }
    # A node is taking calls when its edge has a running slot in rotation and would send a
    # call nowhere else (no address without a slot still in rotation).
    if not nodes:
        missing.append("engine: no slot in rotation (no engine node is checking its edge)")
    elif not any(n.in_rotation > 0 and not n.problem for n in nodes):
        problems = "; ".join(f"{n.node}: {n.problem}" for n in nodes if n.problem)
        missing.append("engine: no slot in rotation" + (f" ({problems})" if problems else ""))
    if ctx.redis.exists(ctx.keys.process_heartbeat("router")):
        checks["router"] = "ok"
    else:
        checks["router"] = "no heartbeat"
        missing.append("router: not consuming (no heartbeat)")
    # The key MetricsConsumer.hold_lease sets with a TTL (metrics/consumer.py).
    if ctx.redis.exists(ctx.keys.metrics("lease")):
        checks["metrics"] = "ok"
    else:
        checks["metrics"] = "lease not held"
        missing.append("metrics: no consumer holds the lease")
