"""The RQ queues background jobs go on (high, default, low), one set per context: what a
domain needs to enqueue a job. The worker process that runs them is ``callcenter.worker``."""

from __future__ import annotations

from rq import Queue

from callcenter.context import AppContext
from callcenter.service_keys import Service

QUEUE_NAMES = ("high", "default", "low")


def queues(ctx: AppContext) -> list[Queue]:
    """RQ needs a connection that returns bytes; ``ctx.redis`` decodes, so make a twin."""
    connection = ctx.redis.__class__.from_url(ctx.settings.redis_url)
    return [Queue(f"{ctx.keys.prefix}:{name}", connection=connection) for name in QUEUE_NAMES]


QUEUES: Service[dict[str, Queue]] = Service("RQ queues by short name")


def queue(ctx: AppContext, name: str) -> Queue:
    """The RQ queue ``name`` (high, default, low), made once per context with the others
    (each make opens a connection)."""
    made = ctx.services.get_or_make(
        QUEUES, lambda: {q.name.rsplit(":", 1)[-1]: q for q in queues(ctx)}
    )
    return made[name]
