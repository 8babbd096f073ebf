"""RQ jobs of the recordings part: module-level functions taking ids, safe to run twice.

- ``process_recording(id)``: post-processing of one finished recording (enqueued by the
  call-record consumer when ``recording_stopped`` is applied, and by the periodic scan for
  any finished recording still without media);
- ``scan()``: the periodic safety net, re-enqueued by itself every ``SCAN_INTERVAL``:
  unprocessed recordings, and once a day reconciliation and retention.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select

from callcenter.context import AppContext
from callcenter.db import utcnow
from callcenter.queues import queue
from callcenter.runtime import get_context
from recordings import processing
from recordings.models import Recording, RecordingMedia

log = logging.getLogger("recordings.jobs")

SCAN_INTERVAL = timedelta(minutes=5)
DAILY = timedelta(days=1)
# a finished recording without media this long after it ended is picked up by the scan
PROCESS_GRACE = timedelta(minutes=2)
# a failed transcode (a missing or crashing encoder) is tried again this long after
RETRY_AFTER = timedelta(minutes=30)
RETRIED_PROBLEMS = ("transcode-failed", "file-missing")


def _key(ctx: AppContext, what: str) -> str:
    return f"{ctx.keys.prefix}:recordings:{what}"


def process_recording(recording_id: str) -> dict[str, str]:
    """Post-process one recording; one at a time per recording (a Redis lock)."""
    ctx = get_context()
    lock = ctx.redis.lock(_key(ctx, f"lock:{recording_id}"), timeout=900, blocking_timeout=60)
    with lock:
        outcome = processing.process(ctx, recording_id)
    return {"recording_id": outcome.recording_id, "result": outcome.result}


def enqueue_processing(ctx: AppContext, recording_id: str) -> None:
    queue(ctx, "low").enqueue(
        process_recording,
        recording_id,
        job_id=f"{ctx.keys.prefix}-recording-process-{recording_id}",
        result_ttl=3600,
        failure_ttl=7 * 86400,
    )


def unprocessed(ctx: AppContext, *, older_than: timedelta = PROCESS_GRACE) -> list[str]:
    """Finished recordings without media, and those whose transcode failed over
    RETRY_AFTER ago (a checksum mismatch is never retried: it waits for a person)."""
    now = utcnow()
    with ctx.sessions() as session:
        return list(
            session.scalars(
                select(Recording.id)
                .outerjoin(RecordingMedia, RecordingMedia.recording_id == Recording.id)
                .where(
                    Recording.deleted_at.is_(None),
                    Recording.status != "recording",
                    Recording.ended_at < now - older_than,
                    or_(
                        RecordingMedia.recording_id.is_(None),
                        and_(
                            RecordingMedia.problem.in_(RETRIED_PROBLEMS),
                            RecordingMedia.processed_at < now - RETRY_AFTER,
                        ),
                    ),
                )
                .limit(1000)
            )
        )


def _due(ctx: AppContext, what: str, every: timedelta) -> bool:
    """True once per ``every`` across all workers (a key with a TTL marks the last run)."""
    return bool(
        ctx.redis.set(_key(ctx, f"ran:{what}"), "1", nx=True, ex=int(every.total_seconds()))
    )


def scan(reschedule: bool = True) -> dict[str, Any]:
    ctx = get_context()
    report: dict[str, Any] = {}
    pending = unprocessed(ctx)
    for recording_id in pending:
        enqueue_processing(ctx, recording_id)
    report["enqueued"] = len(pending)
    if _due(ctx, "reconcile", DAILY):
        from recordings.reconcile import reconcile_and_store

        report["reconciliation"] = reconcile_and_store(ctx).counts
    if _due(ctx, "retention", DAILY):
        from recordings.retention import apply_retention

        report["retention_deleted"] = len(apply_retention(ctx, actor="retention"))
    if reschedule:
        ctx.redis.set(_key(ctx, "scan-chain"), str(time.time()), ex=_chain_ttl())
        _enqueue_scan(ctx)
    return report


def _chain_ttl() -> int:
    return int(SCAN_INTERVAL.total_seconds() * 3)


def _enqueue_scan(ctx: AppContext) -> None:
    at = utcnow() + SCAN_INTERVAL
    queue(ctx, "low").enqueue_at(
        at,
        scan,
        job_id=f"{ctx.keys.prefix}-recordings-scan-{int(at.timestamp())}",
        result_ttl=0,
        failure_ttl=86400,
    )


def ensure_scan(ctx: AppContext) -> None:
    """Start the periodic scan chain unless one is alive (called when a worker starts)."""
    if ctx.redis.set(_key(ctx, "scan-chain"), str(time.time()), nx=True, ex=_chain_ttl()):
        _enqueue_scan(ctx)
