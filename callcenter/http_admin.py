"""Admin routes: users and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from callcenter.auth import Principal, get_ctx, require
from callcenter.context import AppContext
from callcenter.models import AuditEntry, Role, User

router = APIRouter(tags=["admin"])


class UserPublic(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    department_id: int | None
    active: bool


class AuditPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]


@router.get("/users", response_model=list[UserPublic], summary="All users (admin)")
def list_users(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    _admin: Annotated[Principal, Depends(require(Role.admin))],
) -> list[UserPublic]:
    with ctx.sessions() as session:
        users = session.scalars(select(User).order_by(User.id))
        return [
            UserPublic(
                id=u.id,
                username=u.username,
                display_name=u.display_name,
                role=str(u.role),
                department_id=u.department_id,
                active=u.active,
            )
            for u in users
        ]


@router.get("/audit", response_model=list[AuditPublic], summary="The audit log, newest first")
def list_audit(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    _admin: Annotated[Principal, Depends(require(Role.admin))],
    object_type: str | None = None,
    object_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditPublic]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if object_type:
        query = query.where(AuditEntry.object_type == object_type)
    if object_id:
        query = query.where(AuditEntry.object_id == object_id)
    with ctx.sessions() as session:
        return [
            AuditPublic(
                id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                object_type=e.object_type,
                object_id=e.object_id,
                details=e.details,
            )
            for e in session.scalars(query)
        ]
