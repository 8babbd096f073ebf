"""The admin pages: people (users and agents), departments' contacts, and the center's rules
(the declarative files: current version, editor, history, rollback).

Server-rendered shells like the other pages (:mod:`pages.http`): the session cookie, the role
checked on the server (admins only; everyone else gets the 403 page, signed-out users the
sign-in redirect), the CSRF token in the base template. The page's data is a JSON block and
``pages/static/admin.js`` makes every change through the same ``/api/v1`` routes programs use
(``/users``, ``/departments/{code}/contacts``, ``/config/{file}``), sending the CSRF token; it
shows the API's 422 problems next to the field each one names (docs/pages.md).

Mounted by adding ``"pages.admin"`` to ``callcenter.app.PAGE_ROUTERS``.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from admin import config_versions, departments, users
from callcenter.context import AppContext
from callcenter.errors import NotFound
from callcenter.models import Role
from cti.models import Team
from pages.i18n import catalog
from pages.page import Page, signed_page
from pages.views import department_names, local_text, shift_names

router = APIRouter(include_in_schema=False)

PAGE = "admin"
AdminPage = Annotated[Page, Depends(signed_page(PAGE))]
ROLES = tuple(role.value for role in Role)


def _name(names: Any, lang: str) -> str:
    return str(names.zh if lang == "zh-CN" else names.en)


def references(ctx: AppContext, lang: str) -> dict[str, Any]:
    """What the people forms choose from: roles, queues, shifts, departments, teams."""
    config = ctx.config
    with ctx.sessions() as session:
        teams = list(session.scalars(select(Team.name).order_by(Team.name)))
        depts = departments.list_departments(session)
    return {
        "roles": list(ROLES),
        "queues": [
            {"code": code, "name": _name(queue.name, lang)}
            for code, queue in config.queues.queues.items()
        ],
        "shifts": [
            {"code": code, "name": _name(shift.name, lang)}
            for code, shift in config.shifts.shifts.items()
        ],
        "departments": [
            {"code": d.code, "name": d.name_zh if lang == "zh-CN" else d.name_en} for d in depts
        ],
        "teams": teams,
    }


def labels(ctx: AppContext, lang: str) -> dict[str, dict[str, str]]:
    """The configured names the people list shows instead of codes, in the page's language."""
    return {
        "departments": department_names(ctx, lang),
        "shifts": shift_names(ctx, lang),
    }


def _page(page: Page, name: str, **extra: Any) -> HTMLResponse:
    return page.render(name, messages=catalog(page.lang, "admin."), section=name, **extra)


@router.get("/admin", response_class=HTMLResponse, response_model=None)
def admin_home(page: AdminPage) -> Response:
    ctx = page.ctx
    with ctx.sessions() as session:
        people = users.list_users(session)
        depts = departments.list_departments(session)
        files = []
        for file in config_versions.EDITABLE:
            history = config_versions.versions(session, name=file)
            latest = history[0] if history else None
            files.append(
                {
                    "file": file,
                    "version": latest.version if latest else 0,
                    "author": latest.author if latest else "",
                    "at": local_text(ctx, latest.at) if latest else "",
                }
            )
    by_role = Counter(u.role for u in people if u.active)
    return _page(
        page,
        "admin_home.html",
        by_role=[(role, by_role.get(role, 0)) for role in ROLES],
        disabled=sum(1 for u in people if not u.active),
        departments=len(depts),
        contacts=sum(len(d.contacts) for d in depts),
        files=files,
    )


@router.get("/admin/people", response_class=HTMLResponse, response_model=None)
def admin_people(page: AdminPage) -> Response:
    ctx = page.ctx
    query = page.request.query_params
    role = query.get("role", "")
    active = query.get("active", "")
    search = query.get("q", "").strip()
    with ctx.sessions() as session:
        people = users.list_users(
            session,
            role=Role(role) if role in ROLES else None,
            active={"1": True, "0": False}.get(active),
            search=search or None,
        )
    return _page(
        page,
        "admin_people.html",
        people=[p.model_dump(mode="json") for p in people],
        filters={"role": role if role in ROLES else "", "active": active, "q": search},
        refs=references(ctx, page.lang),
        names=labels(ctx, page.lang),
    )


@router.get("/admin/people/{user_id}", response_class=HTMLResponse, response_model=None)
def admin_person(page: AdminPage, user_id: int) -> Response:
    ctx = page.ctx
    try:
        with ctx.sessions() as session:
            person = users.user_public(session, users.get_user(session, user_id=user_id))
    except NotFound as exc:
        return page.not_found(exc.message)
    return _page(
        page,
        "admin_person.html",
        person=person.model_dump(mode="json"),
        refs=references(ctx, page.lang),
    )


@router.get("/admin/departments", response_class=HTMLResponse, response_model=None)
def admin_departments(page: AdminPage) -> Response:
    ctx = page.ctx
    with ctx.sessions() as session:
        depts = departments.list_departments(session)
        people = users.list_users(session, active=True)
    return _page(
        page,
        "admin_departments.html",
        departments=[d.model_dump(mode="json") for d in depts],
        contact_roles=list(departments.CONTACT_ROLES),
        people=[{"id": p.id, "label": f"{p.display_name} ({p.username})"} for p in people],
    )


@router.get("/admin/config/{file}", response_class=HTMLResponse, response_model=None)
def admin_config(page: AdminPage, file: str) -> Response:
    ctx = page.ctx
    try:
        with ctx.sessions() as session:
            version, document = config_versions.current(session, ctx, name=file)
            history = [
                {
                    "version": row.version,
                    "author": row.author,
                    "at": local_text(ctx, row.at),
                    "note": row.note or "",
                    "rollback_of": row.rollback_of,
                    "diff": row.diff,
                }
                for row in config_versions.versions(session, name=file)
            ]
    except NotFound as exc:
        return page.not_found(exc.message)
    saved = page.request.query_params.get("saved", "")
    return _page(
        page,
        "admin_config.html",
        file=file,
        files=list(config_versions.EDITABLE),
        version=version,
        document=document,
        history=history,
        saved=int(saved) if saved.isdigit() else None,
    )
