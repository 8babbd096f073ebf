"""Admin routes: users and agents, departments' contacts, the audit log. Thin: the work is in
``admin`` (docs/admin.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel
from sqlalchemy import select

from admin import departments, users
from admin.schemas import (
    ContactCreate,
    ContactPublic,
    ContactUpdate,
    DepartmentPublic,
    PasswordChange,
    UserCreate,
    UserPublic,
    UserUpdate,
)
from callcenter.auth import Principal, current_user, get_ctx, require
from callcenter.context import AppContext
from callcenter.db import transaction
from callcenter.models import AuditEntry, Role

router = APIRouter(tags=["admin"])

Admin = Annotated[Principal, Depends(require(Role.admin))]
Ctx = Annotated[AppContext, Depends(get_ctx)]


class AuditPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]


# ---------------------------------------------------------------- users


@router.get("/users", response_model=list[UserPublic], summary="Users, filtered (admin)")
def list_users(
    ctx: Ctx,
    _admin: Admin,
    role: Role | None = None,
    active: bool | None = None,
    department: str | None = None,
    q: Annotated[str | None, Query(description="part of the user name or display name")] = None,
) -> list[UserPublic]:
    with ctx.sessions() as session:
        return users.list_users(session, role=role, active=active, department=department, search=q)


@router.post(
    "/users",
    response_model=UserPublic,
    status_code=201,
    summary="Create a user; an agent's softphone may register at once (admin)",
)
def create_user(ctx: Ctx, admin: Admin, body: UserCreate) -> UserPublic:
    return users.create(ctx, actor=admin.username, data=body)


@router.get("/users/{user_id}", response_model=UserPublic, summary="One user (admin)")
def get_user(ctx: Ctx, _admin: Admin, user_id: int) -> UserPublic:
    with ctx.sessions() as session:
        return users.user_public(session, users.get_user(session, user_id=user_id))


@router.patch(
    "/users/{user_id}",
    response_model=UserPublic,
    summary="Change a user: role, names, password, agent settings; active false disables",
)
def update_user(ctx: Ctx, admin: Admin, user_id: int, body: UserUpdate) -> UserPublic:
    return users.update(ctx, actor=admin.username, user_id=user_id, data=body)


@router.post(
    "/me/password",
    status_code=204,
    summary="Change your own password (older tokens stop working)",
)
def change_my_password(
    ctx: Ctx, principal: Annotated[Principal, Depends(current_user)], body: PasswordChange
) -> Response:
    users.change_own_password(
        ctx,
        user_id=principal.user_id,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return Response(status_code=204)


# ---------------------------------------------------------------- departments


@router.get(
    "/departments",
    response_model=list[DepartmentPublic],
    summary="Departments and who their tickets and escalations reach (admin)",
)
def list_departments(ctx: Ctx, _admin: Admin) -> list[DepartmentPublic]:
    with ctx.sessions() as session:
        return departments.list_departments(session)


@router.post(
    "/departments/{code}/contacts",
    response_model=ContactPublic,
    status_code=201,
    summary="Add a department contact (admin)",
)
def add_contact(ctx: Ctx, admin: Admin, code: str, body: ContactCreate) -> ContactPublic:
    with transaction(ctx.sessions) as session:
        return departments.add_contact(session, actor=admin.username, code=code, data=body)


@router.patch(
    "/departments/{code}/contacts/{contact_id}",
    response_model=ContactPublic,
    summary="Change a department contact (admin)",
)
def update_contact(
    ctx: Ctx, admin: Admin, code: str, contact_id: int, body: ContactUpdate
) -> ContactPublic:
    with transaction(ctx.sessions) as session:
        return departments.update_contact(
            session, actor=admin.username, code=code, contact_id=contact_id, data=body
        )


@router.delete(
    "/departments/{code}/contacts/{contact_id}",
    status_code=204,
    summary="Remove a department contact (admin)",
)
def delete_contact(ctx: Ctx, admin: Admin, code: str, contact_id: int) -> Response:
    with transaction(ctx.sessions) as session:
        departments.delete_contact(session, actor=admin.username, code=code, contact_id=contact_id)
    return Response(status_code=204)


# ---------------------------------------------------------------- audit


@router.get("/audit", response_model=list[AuditPublic], summary="The audit log, newest first")
def list_audit(
    ctx: Ctx,
    _admin: Admin,
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
