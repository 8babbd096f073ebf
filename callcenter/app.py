"""The FastAPI application: one router under /api/v1 collecting every domain's routes."""

from __future__ import annotations

import importlib
import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from admin import http as admin_http
from admin import http_config as admin_config_http
from callcenter import health, heap, http_auth, signin, supervision
from callcenter.context import AppContext
from callcenter.db import database_down
from callcenter.errors import ERROR_RESPONSES, CallCenterError, DatabaseUnavailable, error_body
from callcenter.http_guard import ResponseGuard
from callcenter.http_input import RefuseNulCharacters
from callcenter.service_keys import REGISTRY

log = logging.getLogger(__name__)

# Each domain exposes ``router`` (an APIRouter) in its ``http`` module; they are mounted under
# /api/v1 in this order. Pages (server-rendered HTML) are mounted at the root by ``pages``.
DOMAIN_ROUTERS = (
    "cti.http",
    "cti.http_calls",
    "ticketing.http",
    "recordings.http",
    "metrics.http",
    "metrics.http_whatif",
)
PAGE_ROUTERS = ("pages.http", "pages.qa", "pages.whatif", "pages.admin")


def _optional_router(module_name: str) -> APIRouter | None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            return None  # that part is not in this build
        raise
    router: APIRouter = module.router
    return router


def _install(module_name: str, app: FastAPI, ctx: AppContext) -> None:
    """A domain needing the app and context (a Prometheus collector, a background consumer
    started with the app) defines ``install(app, ctx)`` in its ``http`` module."""
    install = getattr(importlib.import_module(module_name), "install", None)
    if install is not None:
        install(app, ctx)


FRAMEWORK_ERROR_IDS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "request-too-large",
    415: "unsupported-media-type",
}


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(
        title="Call center",
        version="0.1.0",
        description="IVR, routing/CTI, tickets, recordings and live metrics for a service hotline.",
    )
    app.state.ctx = ctx
    app.add_middleware(RefuseNulCharacters)  # inside the guard: its 422s get the headers too
    app.add_middleware(ResponseGuard)  # headers, request ids, no exception text in answers
    registry = ctx.services.get_or_make(REGISTRY, CollectorRegistry)
    signin.prepare(ctx)
    supervision.install_collector(registry, ctx)

    _install_error_handlers(app)
    _install_ops_routes(app, ctx, registry)
    _include_routers(app, ctx)
    app.router.on_startup.append(heap.settle)  # last: after every domain's startup hook
    return app


def _install_error_handlers(app: FastAPI) -> None:
    """Every error answered in one shape (``error_body``): ours, the database's, the
    framework's and request validation's."""

    @app.exception_handler(CallCenterError)
    async def _domain_error(_request: Request, exc: CallCenterError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers())

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        """The database down or restarting: 503 with Retry-After (the transaction was rolled
        back), not a 500; any other driver error stays an internal error."""
        if not database_down(exc):
            raise exc
        log.warning("%s %s: the database did not answer: %s", request.method,
                    request.url.path, exc.orig or exc)  # fmt: skip
        down = DatabaseUnavailable()
        return JSONResponse(down.to_dict(), status_code=down.status_code, headers=down.headers())

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        """Errors raised by the framework itself (no such route, wrong method, a body that is
        not JSON) in the same shape as ours."""
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            message, details = "the request body could not be parsed", {"field": "body"}
        else:
            message, details = str(exc.detail), {}
        error_id = FRAMEWORK_ERROR_IDS.get(exc.status_code, "bad-request")
        body = error_body(error_id, message, details)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "message": err["msg"]}
            for err in exc.errors()
        ]
        fields = ", ".join(p["field"] for p in problems)
        body = error_body("invalid-input", f"invalid input: {fields}", {"problems": problems})
        return JSONResponse(body, status_code=422)


def _install_ops_routes(app: FastAPI, ctx: AppContext, registry: CollectorRegistry) -> None:
    """/healthz, /readyz and /metrics (outside /api/v1)."""

    @app.get("/healthz", tags=["ops"], summary="200 while this API process serves requests")
    def healthz() -> JSONResponse:
        return JSONResponse(health.liveness())

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="200 when the center can take a call now; else 503 naming what is missing",
        responses={503: {"description": "not ready: `missing` names each part that is not"}},
    )
    def readyz() -> JSONResponse:
        ready, report = health.readiness(ctx)
        return JSONResponse(report, status_code=200 if ready else 503)

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus exposition",
        response_class=PlainTextResponse,
    )
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _include_routers(app: FastAPI, ctx: AppContext) -> None:
    """/api/v1 with every domain's router present in this build, then the pages."""
    api = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES)
    api.include_router(http_auth.router)
    api.include_router(admin_http.router)
    api.include_router(admin_config_http.router)
    _install("admin.http_config", app, ctx)
    for module_name in DOMAIN_ROUTERS:
        router = _optional_router(module_name)
        if router is not None:
            api.include_router(router)
            _install(module_name, app, ctx)
    app.include_router(api)
    for module_name in PAGE_ROUTERS:
        router = _optional_router(module_name)
        if router is not None:
            app.include_router(router)
            _install(module_name, app, ctx)  # pages.http: the answer to a refused page


def app_factory() -> Any:
    """Entry for ``uvicorn --factory callcenter.app:app_factory``."""
    from callcenter.context import build_context
    from config.settings import load_settings

    return create_app(build_context(load_settings()))
