"""Pages mounted at the root: sign-in, the agent desktop, the lead's console, tickets, the
wallboard. The session, role and CSRF checks and the rendering every page shares are in
:mod:`pages.page` (``signed_page`` / ``signed_form`` dependencies).
Server-rendered Jinja2; each page's small script (``pages/static``) only renders what the
server pushes and calls ``/api/v1`` with the sign-in cookie and the CSRF token.

Sign-in: ``POST /login`` checks the password, starts a server-side session
(:mod:`callcenter.sessions`) and sets its id in an HttpOnly, SameSite=Lax cookie (Secure over
https); ``POST /logout`` ends it. Every page checks the user's role on the server and answers
a 403 page to the others; a page's form posts carry the session's CSRF token.
"""

from __future__ import annotations

import mimetypes
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from callcenter import sessions, signin
from callcenter.auth import Principal, client_address, get_ctx
from callcenter.context import AppContext
from callcenter.errors import CallCenterError, NotFound, TooManyAttempts, Unauthorized
from metrics import reports
from pages import access, overdue, page, views
from pages.charts import HourFigure, answer_rate_svg
from pages.i18n import DEFAULT, catalog, lang_of, t
from pages.page import FormPage, Page, has_page, lang_suffix, render, signed_form, signed_page
from ticketing import assignment
from ticketing import services as ticket_services

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = frozenset(p.name for p in STATIC_DIR.iterdir() if p.is_file())

Ctx = Annotated[AppContext, Depends(get_ctx)]
DesktopPage = Annotated[Page, Depends(signed_page("desktop"))]
LeadPage = Annotated[Page, Depends(signed_page("lead"))]
TicketsPage = Annotated[Page, Depends(signed_page("tickets"))]
OverduePage = Annotated[Page, Depends(signed_page("overdue"))]
WallboardPage = Annotated[Page, Depends(signed_page("wallboard"))]
TicketsForm = Annotated[FormPage, Depends(signed_form("tickets"))]
LeadForm = Annotated[FormPage, Depends(signed_form("lead"))]
SignedForm = Annotated[FormPage, Depends(signed_form(None))]


def install(app: FastAPI, _ctx: AppContext) -> None:
    page.install(app)


# ---------------------------------------------------------------- index, static files


@router.get("/", response_class=HTMLResponse)
def index(request: Request, ctx: Ctx) -> HTMLResponse:
    return render(request, "index.html", lang_of(request), page.signed_in(request, ctx))


@router.get("/static/pages/{name}")
def static_file(name: str) -> FileResponse:
    if name not in STATIC_FILES:
        raise NotFound(f"no static file {name!r}")
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if name.endswith(".js"):
        media_type = "text/javascript"
    return FileResponse(
        STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"}
    )


# ---------------------------------------------------------------- sign-in


@router.get("/login", response_class=HTMLResponse)
def login(request: Request) -> HTMLResponse:
    lang = lang_of(request)
    target = access.safe_next(request.query_params.get("next")) or ""
    return render(request, "login.html", lang, None, next_url=target, failed=False)


@router.post("/login", response_model=None)
async def login_submit(request: Request, ctx: Ctx) -> Response:
    form = await request.form()
    lang = str(form.get("lang") or "")
    lang = lang if lang in ("zh-CN", "en") else DEFAULT
    username = str(form.get("username") or "")
    password = str(form.get("password") or "")
    target = access.safe_next(str(form.get("next") or ""))
    try:
        user = await run_in_threadpool(
            signin.sign_in, ctx, username, password, client_address(request)
        )
    except Unauthorized:
        return render(
            request, "login.html", lang, None, status_code=401, next_url=target or "", failed=True
        )
    except TooManyAttempts as exc:
        refused = render(
            request,
            "login.html",
            lang,
            None,
            status_code=429,
            next_url=target or "",
            failed=True,
            throttled=True,
        )
        refused.headers.update(exc.headers())
        return refused
    previous = request.cookies.get(sessions.COOKIE)
    if previous:
        await run_in_threadpool(sessions.end, ctx, previous)
    session = await run_in_threadpool(sessions.start, ctx, user.id)
    home = access.home_for(
        user.role,
        qa_page=has_page(request, "qa_page", "/qa"),
        admin_page=has_page(request, "admin_home", "/admin"),
    ) + lang_suffix(lang)
    response = RedirectResponse(target or home, status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        session.session_id,
        max_age=sessions.ttl_seconds(ctx),
        path="/",
        httponly=True,
        samesite="lax",
        secure=sessions.cookie_secure(ctx, request.url.scheme),
    )
    return response


@router.post("/logout", response_model=None)
async def logout(posted: SignedForm) -> Response:
    await run_in_threadpool(sessions.end, posted.ctx, posted.signed.session.session_id)
    response = RedirectResponse("/login" + lang_suffix(posted.lang), status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


# ---------------------------------------------------------------- the agent desktop


@router.get("/desktop", response_class=HTMLResponse, response_model=None)
def desktop(page: DesktopPage) -> Response:
    lang = page.lang
    data = views.desktop(page.ctx, page.principal, lang)
    return page.render(
        "desktop.html",
        data=data,
        messages=catalog(lang),
        state_names=views.state_names(lang),
        reason_names=views.reason_names(lang),
    )


# ---------------------------------------------------------------- the lead's console


@router.get("/lead", response_class=HTMLResponse, response_model=None)
def lead(page: LeadPage) -> Response:
    lang = page.lang
    data = views.lead(page.ctx, lang, page.principal)
    return page.render(
        "lead.html",
        data=data,
        messages=catalog(lang),
        state_names=views.state_names(lang),
        reason_names=views.reason_names(lang),
        reasons=views.agent_reasons(lang),
        my_extension=data["my_extension"],
    )


# ---------------------------------------------------------------- tickets


def _filters(request: Request) -> views.TicketFilters:
    q = request.query_params
    before = q.get("before", "")
    return views.TicketFilters(
        status=q.get("status", ""),
        department=q.get("department", ""),
        track=q.get("track", ""),
        overdue=q.get("overdue", "") in ("1", "true", "on"),
        number=q.get("number", ""),
        phone=q.get("phone", ""),
        text=q.get("text", ""),
        before=int(before) if before.isdigit() else None,
    )


@router.get("/tickets", response_class=HTMLResponse, response_model=None)
def tickets(page: TicketsPage) -> Response:
    lang = page.lang
    filters = _filters(page.request)
    data = views.ticket_list(page.ctx, page.principal, filters, lang)
    args = filters.query_args()
    if lang != DEFAULT:
        args["lang"] = lang
    next_url = (
        "/tickets?" + urlencode({**args, "before": data["next_before"]})
        if data["next_before"]
        else None
    )
    return page.render(
        "tickets.html",
        data=data,
        filters=filters,
        next_url=next_url,
        first_url="/tickets?" + urlencode(args) if filters.before else None,
        overdue_report=access.may_open(page.principal.role, "overdue"),
    )


@router.get("/tickets/reports/overdue", response_class=HTMLResponse, response_model=None)
def overdue_report(page: OverduePage) -> Response:
    """Overdue work per period (day, week, month) and department, then the tickets."""
    q = page.request.query_params
    form = {name: q.get(name, "") for name in ("since", "until", "period")}
    today = datetime.now(ZoneInfo(page.ctx.settings.timezone)).date()
    try:
        window = overdue.parse_window(form["since"], form["until"], form["period"], today)
    except overdue.BadPeriod as exc:
        return page.render(
            "overdue.html",
            422,
            data=None,
            form=form,
            error=f"{t('overdue.bad_input', page.lang)}: {exc}",
        )
    data = views.overdue_page(page.ctx, page.principal, window, page.lang)
    form = {"since": str(window.since), "until": str(window.until), "period": window.period}
    return page.render("overdue.html", data=data, form=form, error=None)


@router.get("/tickets/{number}", response_class=HTMLResponse, response_model=None)
def ticket(page: TicketsPage, number: str) -> Response:
    return _ticket_response(page, number)


def _ticket_response(
    page: Page, number: str, error: str | None = None, status_code: int = 200
) -> Response:
    try:
        data = views.ticket_page(page.ctx, page.principal, number, page.lang)
    except NotFound as exc:
        return page.not_found(exc.message)
    except CallCenterError as exc:
        return page.forbidden(exc.message)
    return page.render("ticket.html", status_code, data=data, error=error)


TRANSITION_FIELDS = ("note", "assignee", "done", "materials", "result", "reason", "department")
NUMBER_FIELDS = ("minutes_spent", "score")


@router.post("/tickets/{number}/transitions", response_model=None)
async def ticket_transition(posted: TicketsForm, number: str) -> Response:
    ctx, form, lang = posted.ctx, posted.form, posted.lang
    fields: dict[str, Any] = {"to": str(form.get("to") or "")}
    for name in TRANSITION_FIELDS:
        value = str(form.get(name) or "").strip()
        if value:
            fields[name] = value
    error: str | None = None
    for name in NUMBER_FIELDS:
        value = str(form.get(name) or "").strip()
        if value:
            if not value.lstrip("-").isdigit():
                error = f"{name}: {t('ticket.whole_number', lang)} ({value!r})"
            else:
                fields[name] = int(value)
    if error is None:
        try:
            ticket_id = await run_in_threadpool(views.ticket_id_by_number, ctx, number)
            await run_in_threadpool(_transition, ctx, ticket_id, fields, posted.principal)
        except CallCenterError as exc:
            return await run_in_threadpool(
                _ticket_response, posted, number, exc.message, exc.status_code
            )
    if error is not None:
        return await run_in_threadpool(_ticket_response, posted, number, error, 422)
    return RedirectResponse(f"/tickets/{quote(number)}" + lang_suffix(lang), status_code=303)


@router.post("/tickets/{number}/callbacks/{callback_id}/assignee", response_model=None)
async def callback_assignee(posted: LeadForm, number: str, callback_id: int) -> Response:
    """A lead gives a callback (回访) to one agent, or back to the callback queue (empty)."""
    ctx, lang = posted.ctx, posted.lang
    raw = str(posted.form.get("agent_id") or "").strip()
    if raw and not raw.isdigit():
        error = f"agent_id: {t('ticket.whole_number', lang)} ({raw!r})"
        return await run_in_threadpool(_ticket_response, posted, number, error, 422)
    try:
        ticket_id = await run_in_threadpool(views.ticket_id_by_number, ctx, number)
        await run_in_threadpool(
            partial(
                assignment.assign_callback,
                ctx,
                callback_id,
                int(raw) if raw else None,
                actor=posted.principal,
                ticket_id=ticket_id,
            )
        )
    except CallCenterError as exc:
        return await run_in_threadpool(
            _ticket_response, posted, number, exc.message, exc.status_code
        )
    return RedirectResponse(f"/tickets/{quote(number)}" + lang_suffix(lang), status_code=303)


def _transition(ctx: AppContext, ticket_id: int, fields: dict[str, Any], user: Principal) -> None:
    ticket_services.transition(ctx, ticket_id, fields, actor=user)


# ---------------------------------------------------------------- the wallboard


@router.get("/wallboard", response_class=HTMLResponse, response_model=None)
def wallboard(page: WallboardPage) -> Response:
    ctx, lang = page.ctx, page.lang
    queues = [
        {"code": code, "name": queue.name.zh if lang == "zh-CN" else queue.name.en}
        for code, queue in ctx.config.queues.queues.items()
    ]
    shifts = [
        {
            "code": code,
            "name": shift.name.zh if lang == "zh-CN" else shift.name.en,
            "hours": f"{shift.start:%H:%M}-{shift.end:%H:%M}",
        }
        for code, shift in ctx.config.shifts.shifts.items()
    ]
    return page.render(
        "wallboard.html",
        queues=queues,
        shifts=shifts,
        shift_names={s["code"]: s["name"] for s in shifts},
        target=ctx.config.shifts.answer_rate_target,
        sl_target=ctx.config.shifts.service_level_target,
        messages=catalog(lang),
        states=["ready", "reserved", "on_call", "on_hold", "wrap_up", "not_ready"],
    )


@router.get("/wallboard/answer-rate.svg", response_model=None)
def wallboard_chart(page: WallboardPage) -> Response:
    """Today's answer rate per hour (local time) against the target, from the call records."""
    ctx, lang = page.ctx, page.lang
    svg = answer_rate_svg(
        today_by_hour(ctx),
        target=ctx.config.shifts.answer_rate_target,
        title=t("wb.chart_title", lang),
        target_label=t("wb.target", lang),
    )
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


def today_by_hour(ctx: AppContext, now: datetime | None = None) -> list[HourFigure]:
    tz = ZoneInfo(ctx.settings.timezone)
    local_now = (now or datetime.now(UTC)).astimezone(tz)
    start = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(days=1)
    rows = reports.report(
        ctx, start=start.astimezone(UTC), end=end.astimezone(UTC), period="hour", group="center"
    )
    figures = []
    for row in rows:
        hour = int(str(row["period"])[11:13])
        offered = int(row.get("offered") or 0)
        rate = row.get("answer_rate")
        figures.append(
            HourFigure(hour, offered, float(rate) if rate is not None and offered else None)
        )
    return figures
