"""Wallboard JSON and SSE feed, historical reports (JSON/CSV), staffing. Roles: lead, qa, admin.

``install(app, ctx)`` (called by callcenter/app.py) registers the Prometheus collector, and
starts the metrics consumer and the wallboard hub with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import redis
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from callcenter import sessions
from callcenter.auth import (
    Principal,
    client_address,
    credentials_from_header,
    get_ctx,
    principal_for_session,
    require,
)
from callcenter.context import AppContext
from callcenter.errors import Forbidden, Unavailable
from callcenter.models import Role
from callcenter.params import IsoDateTime
from callcenter.service_keys import Service
from metrics import reports as report_module
from metrics.consumer import MetricsConsumer
from metrics.errors import LIVE_UNAVAILABLE, WALLBOARD_FORBIDDEN
from metrics.live_config import metric_config
from metrics.live_keys import MetricKeys
from metrics.prometheus import install_collector
from metrics.reader import LiveReader
from metrics.staffing import staffing as compute_staffing

log = logging.getLogger(__name__)

router = APIRouter(tags=["metrics"])
VIEWERS = (Role.lead, Role.qa)
KEEPALIVE_SECONDS = 15.0
REVOKED = ""  # put in a stream's queue when its user's credentials are revoked
TICK_SECONDS = 1.0


# ---------------------------------------------------------------- the wallboard hub


class WallboardHub:
    """One per API process: recomputes the snapshot when the consumer publishes a change (and
    every second, for the waiting clocks), and hands each *changed* snapshot to every
    connected wallboard."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.reader = LiveReader(ctx)
        self.subscribers: set[asyncio.Queue[str]] = set()
        self.latest: str | None = None
        self._signature: str | None = None
        self._task: asyncio.Task[None] | None = None

    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def subscribe(self) -> asyncio.Queue[str]:
        self.ensure_started()
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self.subscribers.discard(queue)

    async def refresh(self) -> str:
        snapshot = await asyncio.to_thread(self.reader.snapshot)
        signature = json.dumps(
            {k: v for k, v in snapshot.items() if k not in ("at", "local_time", "windows")},
            sort_keys=True,
            default=str,
        )
        text = json.dumps(snapshot, ensure_ascii=False, default=str)
        if signature != self._signature:
            self._signature = signature
            self.latest = text
            for queue in list(self.subscribers):
                if queue.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()  # a slow client only ever gets the newest figures
                queue.put_nowait(text)
        return self.latest or text

    async def _run(self) -> None:
        import redis.asyncio as aioredis

        channel = MetricKeys(self.ctx.keys)("changed")
        client = aioredis.Redis.from_url(self.ctx.settings.redis_url, decode_responses=True)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel)
            while True:
                try:
                    await pubsub.get_message(ignore_subscribe_messages=True, timeout=TICK_SECONDS)
                    if not self.subscribers:
                        self._signature = self.latest = None  # nobody watching: no work
                        continue
                    # Coalesce a burst of batches into one recomputation.
                    while await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.01):
                        pass
                    await self.refresh()
                except asyncio.CancelledError:
                    raise
                except Exception:  # boundary: keep the feed alive through Redis hiccups
                    log.exception("wallboard hub: refresh failed; retrying")
                    await asyncio.sleep(TICK_SECONDS)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
                await client.aclose()


def hub_for(ctx: AppContext) -> WallboardHub:
    return ctx.services.get_or_make(WALLBOARD_HUB, lambda: WallboardHub(ctx))


WALLBOARD_HUB: Service[WallboardHub] = Service("wallboard hub")
# Whether this API process runs the metrics consumer (unset: all but the test environment)
CONSUMER_WANTED: Service[bool] = Service("metrics consumer wanted")
CONSUMER: Service[MetricsConsumer] = Service("metrics consumer")


def consumer_wanted(ctx: AppContext) -> bool:
    """Every API process runs the metrics consumer (one at a time holds the lease and works).
    ``CONSUMER_WANTED`` says otherwise; in the test environment it is off unless a test asks
    for it, so other parts' tests do not carry a background thread."""
    wanted = ctx.services.get(CONSUMER_WANTED)
    if wanted is None:
        return ctx.settings.environment != "test"
    return wanted


def install(app: FastAPI, ctx: AppContext) -> None:
    """The Prometheus collector now; the consumer with the app; the wallboard hub with the
    first wallboard that connects."""
    install_collector(ctx)

    async def start() -> None:
        if consumer_wanted(ctx):
            ctx.services.set(CONSUMER, MetricsConsumer(ctx)).start()

    async def stop() -> None:
        consumer = ctx.services.pop(CONSUMER)
        if consumer is not None:
            await asyncio.to_thread(consumer.stop)
        await hub_for(ctx).stop()

    # The app runs the router's startup/shutdown hooks (no lifespan of its own is set).
    app.router.on_startup.append(start)
    app.router.on_shutdown.append(stop)


# ---------------------------------------------------------------- routes

Viewer = Annotated[Principal, Depends(require(*VIEWERS))]
Ctx = Annotated[AppContext, Depends(get_ctx)]


@router.get("/wallboard", summary="Live figures per queue, shift, team and the center")
def wallboard(ctx: Ctx, _principal: Viewer) -> JSONResponse:
    try:
        return JSONResponse(LiveReader(ctx).snapshot())
    except redis.RedisError:
        # The exception's text (addresses, errno) is for the server log, not the client.
        log.warning("wallboard: Redis did not answer", exc_info=True)
        raise Unavailable(
            "live figures unavailable: Redis did not answer", error_id=LIVE_UNAVAILABLE
        ) from None


@router.get(
    "/alerts",
    summary="The wallboard's alerts now (answer rate, service level, staffing, long waits)",
    description="The `alerts` of GET /wallboard with the targets they judge against; the lead "
    "console polls it. Rate alerts carry the figure they judge (`figure`, `value`, "
    "`resolved`, `threshold`).",
)
def current_alerts(ctx: Ctx, _principal: Viewer) -> JSONResponse:
    try:
        snapshot = LiveReader(ctx).snapshot()
    except redis.RedisError:
        log.warning("alerts: Redis did not answer", exc_info=True)
        raise Unavailable(
            "live figures unavailable: Redis did not answer", error_id=LIVE_UNAVAILABLE
        ) from None
    return JSONResponse(
        {
            "alerts": snapshot["alerts"],
            "answer_rate_target": snapshot["answer_rate_target"],
            "service_level_target": snapshot["service_level_target"],
            "local_time": snapshot["local_time"],
        }
    )


@router.get(
    "/wallboard/stream",
    summary="Server-sent events: the wallboard JSON each time a figure changes",
    description="Event name `wallboard`, data = the same JSON as GET /wallboard. Programs send "
    "`Authorization` (Bearer or Basic); the wallboard page's EventSource sends its sign-in "
    "cookie (same origin only). No token in the URL.",
)
async def wallboard_stream(request: Request, ctx: Ctx) -> StreamingResponse:
    principal = await _stream_user(request, ctx)
    if principal.role not in (Role.admin, *VIEWERS):
        raise Forbidden(
            f"role {principal.role} may not watch the wallboard", error_id=WALLBOARD_FORBIDDEN
        )
    hub = hub_for(ctx)
    queue = hub.subscribe()
    first = await hub.refresh() if hub.latest is None else hub.latest
    return StreamingResponse(
        _events(request, ctx, principal.user_id, hub, queue, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _watch_revocation(
    ctx: AppContext, user_id: int, hub: WallboardHub, queue: asyncio.Queue[str]
) -> None:
    """The user disabled or their password changed (``Keys.user_revoked``): end the stream at
    once instead of feeding a credential that no longer speaks for anyone."""
    client = aioredis.Redis.from_url(ctx.settings.redis_url, decode_responses=True)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(ctx.keys.user_revoked(user_id))
        async for message in pubsub.listen():
            if message.get("type") == "message":
                hub.unsubscribe(queue)  # no await below: the hub cannot refill it
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(REVOKED)
                return
    except redis.RedisError:
        log.warning("wallboard stream: revocation channel unavailable", exc_info=True)
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
            await client.aclose()


async def _events(
    request: Request,
    ctx: AppContext,
    user_id: int,
    hub: WallboardHub,
    queue: asyncio.Queue[str],
    first: str,
) -> AsyncIterator[bytes]:
    """The first snapshot, then each one the hub pushes, with keepalives; ends when the
    client leaves or its credentials are revoked (``_watch_revocation``)."""
    watcher = asyncio.create_task(_watch_revocation(ctx, user_id, hub, queue))
    try:
        yield _sse(first)
        while True:
            try:
                text = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
                if text == REVOKED:
                    return
                yield _sse(text)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield b": keepalive\n\n"
    finally:
        watcher.cancel()
        hub.unsubscribe(queue)


async def _stream_user(request: Request, ctx: AppContext) -> Principal:
    """Authorization header (programs) or the page's session cookie from this same site."""
    authorization = request.headers.get("authorization")
    session_id = request.cookies.get(sessions.COOKIE)
    if not authorization and session_id:
        sessions.check_same_origin(request.headers, require_origin=False)
        return await asyncio.to_thread(principal_for_session, ctx, session_id)
    return await asyncio.to_thread(
        credentials_from_header, ctx, authorization, source=client_address(request)
    )


def _sse(text: str) -> bytes:
    return f"event: wallboard\ndata: {text}\n\n".encode()


def _range(
    start: datetime | None, end: datetime | None, ctx: AppContext
) -> tuple[datetime, datetime]:
    tz = metric_config(ctx).tz
    if end is None:
        end = datetime.now(UTC)
    if start is None:
        start = end - timedelta(days=7)
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    if end.tzinfo is None:
        end = end.replace(tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


@router.get(
    "/reports/{period}",
    summary="Historical report by hour, shift, day, week (or total), per queue/team/agent",
    description="Rows of calls offered/answered/abandoned, answer rate, service level, ASA, "
    "AHT, missed offers, not-ready time by reason, tickets created, satisfaction callbacks. "
    "`from`/`to` are ISO 8601 (local time of the center when no offset is given); default: the "
    "last 7 days. `format=csv` returns CSV.",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def get_report(
    period: Literal["hour", "shift", "day", "week", "total"],
    ctx: Ctx,
    _principal: Viewer,
    group: Annotated[
        Literal["queue", "team", "agent", "center"], Query(description="rows per …")
    ] = "queue",
    start: Annotated[IsoDateTime | None, Query(alias="from")] = None,
    end: Annotated[IsoDateTime | None, Query(alias="to")] = None,
    fmt: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Any:
    start_utc, end_utc = _range(start, end, ctx)
    rows = report_module.report(ctx, start=start_utc, end=end_utc, period=period, group=group)
    if fmt == "csv":
        return PlainTextResponse(
            report_module.to_csv(rows, group),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="report-{period}-{group}.csv"'},
        )
    return JSONResponse(
        {
            "period": period,
            "group": group,
            "from": start_utc.isoformat(),
            "to": end_utc.isoformat(),
            "rows": rows,
        }
    )


@router.get(
    "/staffing",
    summary="Agents needed per hour (Erlang A and C) from history, against the shift plan",
)
def get_staffing(
    ctx: Ctx,
    _principal: Viewer,
    start: Annotated[IsoDateTime | None, Query(alias="from")] = None,
    end: Annotated[IsoDateTime | None, Query(alias="to")] = None,
    service_level_target: Annotated[float, Query(gt=0, le=1)] = 0.8,
) -> JSONResponse:
    start_utc, end_utc = _range(start, end, ctx)
    return JSONResponse(
        compute_staffing(
            ctx, start=start_utc, end=end_utc, service_level_target=service_level_target
        )
    )
