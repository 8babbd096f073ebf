"""``/api/v1/config/{file}``: the declarative files as JSON, validated, stored as versions,
rolled back (admin). Thin: the work is in ``admin.config_versions``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Response
from pydantic import BaseModel

from admin import config_versions
from callcenter.auth import Principal, get_ctx, require
from callcenter.context import AppContext
from callcenter.db import transaction
from callcenter.models import ConfigVersion, Role

router = APIRouter(tags=["config"])


def install(app: FastAPI, ctx: AppContext) -> None:
    """Keep this API process's configuration current when another process stores a version."""
    from callcenter.config_watch import start_watcher, stop_watcher

    def start() -> None:
        start_watcher(ctx)

    def stop() -> None:
        stop_watcher(ctx)

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(stop)


Admin = Annotated[Principal, Depends(require(Role.admin))]
Ctx = Annotated[AppContext, Depends(get_ctx)]


class ConfigDocument(BaseModel):
    file: str
    version: int  # 0: the file under config_dir, never stored through the API
    document: dict[str, Any]


class VersionPublic(BaseModel):
    file: str
    version: int
    author: str
    at: datetime
    note: str | None
    rollback_of: int | None
    diff: list[dict[str, Any]]
    # What took the new version at once; every other process takes it when it next starts.
    applied_live: list[str] = []
    # Settings of this version that a running process takes only when it restarts; empty:
    # nothing waits any more (the SIP edge reloads its trunks, dial plan and domain live,
    # docs/admin.md). Kept for clients that read it.
    restart_needed: list[str] = []


def _public(row: ConfigVersion, applied_live: list[str] | None = None) -> VersionPublic:
    return VersionPublic(
        applied_live=applied_live or [],
        file=row.file,
        version=row.version,
        author=row.author,
        at=row.at,
        note=row.note,
        rollback_of=row.rollback_of,
        diff=row.diff,
    )


def _stored_answer(
    ctx: AppContext,
    stored: config_versions.Stored,
    public: VersionPublic,
    name: str,
    response: Response,
) -> VersionPublic:
    """The answer to storing a version (``public``, read inside its transaction): 200 and
    nothing applied when the document equals the newest version; else 201, with what the
    running processes applied live."""
    if not stored.created:
        response.status_code = 200
        return public
    applied = config_versions.apply_live(
        ctx, stored.config, name=name, version=stored.version.version
    )
    public.applied_live, public.restart_needed = applied.live, applied.restart_needed
    return public


@router.get("/config/{name}", response_model=ConfigDocument, summary="A file's newest document")
def get_config(ctx: Ctx, _admin: Admin, name: str) -> ConfigDocument:
    with ctx.sessions() as session:
        version, document = config_versions.current(session, ctx, name=name)
    return ConfigDocument(file=name, version=version, document=document)


@router.put(
    "/config/{name}",
    response_model=VersionPublic,
    status_code=201,
    summary="Store a new version of a file (422 lists every problem; nothing is stored then)",
)
def put_config(
    ctx: Ctx,
    admin: Admin,
    name: str,
    response: Response,
    document: Annotated[dict[str, Any], Body(description="the file's TOML structure as JSON")],
    note: str | None = None,
) -> VersionPublic:
    with transaction(ctx.sessions) as session:
        stored = config_versions.store(
            session, ctx, actor=admin.username, name=name, document=document, note=note
        )
        public = _public(stored.version)
    return _stored_answer(ctx, stored, public, name, response)


@router.get(
    "/config/{name}/versions", response_model=list[VersionPublic], summary="Versions, newest first"
)
def list_versions(ctx: Ctx, _admin: Admin, name: str) -> list[VersionPublic]:
    with ctx.sessions() as session:
        return [_public(row) for row in config_versions.versions(session, name=name)]


@router.get(
    "/config/{name}/versions/{version}", response_model=ConfigDocument, summary="One version"
)
def get_version(ctx: Ctx, _admin: Admin, name: str, version: int) -> ConfigDocument:
    with ctx.sessions() as session:
        row = config_versions.get_version(session, name=name, version=version)
        return ConfigDocument(file=name, version=row.version, document=row.document)


@router.post(
    "/config/{name}/versions/{version}/rollback",
    response_model=VersionPublic,
    status_code=201,
    summary="Store an older version's document again as the newest (0: the original file)",
)
def rollback(ctx: Ctx, admin: Admin, name: str, version: int, response: Response) -> VersionPublic:
    with transaction(ctx.sessions) as session:
        stored = config_versions.rollback(
            session, ctx, actor=admin.username, name=name, version=version
        )
        public = _public(stored.version)
    return _stored_answer(ctx, stored, public, name, response)
