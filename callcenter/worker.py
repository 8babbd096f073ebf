"""``callcenter worker``: an RQ worker for the background work (SLA timers, callbacks,
recording post-processing, reports, webhooks), with a heartbeat for /healthz.

A job that fails because the database did not answer (down, restarting) is not failed: it is
scheduled again :data:`DATABASE_RETRY_SECONDS` later, as often as it takes (jobs take ids and
are safe to run twice), so an SLA timer, a callback or a periodic scan that fell in an outage
runs once the database is back and the scans keep rescheduling themselves."""

from __future__ import annotations

import importlib
import logging
import threading
from types import TracebackType

from rq import Worker
from rq.job import Job

from callcenter.context import AppContext
from callcenter.db import database_down
from callcenter.health import HEARTBEAT_TTL_SECONDS, beat
from callcenter.queues import queues

log = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 5
# Run once when a worker starts, by dotted name (so importing this module does not import
# the domains' job modules): each takes the context.
STARTUP_HOOKS = ("recordings.jobs.ensure_scan",)  # recordings' periodic scan (docs/recordings.md)


def retry_while_database_down(
    job: Job,
    _type: type[BaseException] | None,
    value: BaseException | None,
    _traceback: TracebackType | None,
) -> bool:
    """RQ exception handler: a job the database's absence failed gets one more try,
    :data:`DATABASE_RETRY_SECONDS` later (RQ schedules it instead of failing it)."""
    if value is not None and database_down(value):
        job.retries_left = max(job.retries_left or 0, 1)
        job.retry_intervals = [DATABASE_RETRY_SECONDS]
        log.warning("job %s: the database did not answer; tried again in %d s",
                    job.id, DATABASE_RETRY_SECONDS)  # fmt: skip
    return True  # the next handler (RQ's own logging) still runs


EXCEPTION_HANDLERS = (retry_while_database_down,)  # what every worker of the center runs


def run(ctx: AppContext, *, burst: bool = False, name: str = "worker") -> None:
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.wait(HEARTBEAT_TTL_SECONDS / 3):
            beat(ctx, name)

    beat(ctx, name)
    thread = threading.Thread(target=heartbeat, name="heartbeat", daemon=True)
    thread.start()
    for hook in STARTUP_HOOKS:
        module, _, function = hook.rpartition(".")
        getattr(importlib.import_module(module), function)(ctx)
    qs = queues(ctx)
    # The worker's jobs need the context too: they rebuild it from settings (jobs take ids).
    worker = Worker(
        qs,
        connection=qs[0].connection,
        job_class=Job,
        exception_handlers=list(EXCEPTION_HANDLERS),
    )
    try:
        worker.work(burst=burst, with_scheduler=True)
    finally:
        stop.set()
