"""Pages mounted at the root: sign-in, the agent desktop, the lead's console, tickets, the
wallboard (the QA page, :mod:`pages.qa`, uses this module's guard and rendering).
Server-rendered Jinja2; each page's small script (``pages/static``) only renders what the
server pushes and calls ``/api/v1`` with the sign-in cookie and the CSRF token.

Sign-in: ``POST /login`` checks the password, starts a server-side session
(:mod:`callcenter.sessions`) and sets its id in an HttpOnly, SameSite=Lax cookie (Secure over
https); ``POST /logout`` ends it. Every page checks the user's role on the server and answers
a 403 page to the others; a page's form posts carry the session's CSRF token.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.routing import NoMatchFound

from callcenter import sessions, signin
from callcenter.auth import Principal, client_address, get_ctx, session_principal
from callcenter.context import AppContext
from callcenter.errors import CallCenterError, NotFound, TooManyAttempts, Unauthorized
from callcenter.models import Role
from metrics import reports
from pages import access, overdue, views
from pages.charts import HourFigure, answer_rate_svg
from pages.i18n import DEFAULT, catalog, lang_of, t
from ticketing import assignment
from ticketing import services as ticket_services

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = frozenset(p.name for p in STATIC_DIR.iterdir() if p.is_file())

Ctx = Annotated[AppContext, Depends(get_ctx)]


@dataclass(frozen=True)
class Signed:
    principal: Principal
    session: sessions.PageSession


def _signed_in(request: Request, ctx: AppContext) -> Signed | None:
    session_id = request.cookies.get(sessions.COOKIE)
    if not session_id:
        return None
    session = sessions.load(ctx, session_id)
    if session is None:
        return None
    try:
        return Signed(session_principal(ctx, session), session)
    except Unauthorized:
        return None  # the user was disabled or removed since signing in


def _has_page(request: Request, route_name: str, path: str) -> bool:
    """Whether this build mounts an optional page (:mod:`pages.qa`, :mod:`pages.admin`).

    Asked by name: FastAPI keeps an included router as one entry of ``app.routes``, so the
    page's path is not listed there."""
    try:
        return bool(request.app.url_path_for(route_name) == path)
    except NoMatchFound:
        return False


def _has_qa_page(request: Request) -> bool:
    return _has_page(request, "qa_page", "/qa")


def _nav(role: Role | None, request: Request) -> list[tuple[str, str]]:
    if role is None:
        return []
    links = []
    for page, key in (
        ("desktop", "nav.desktop"),
        ("lead", "nav.lead"),
        ("tickets", "nav.tickets"),
        ("wallboard", "nav.wallboard"),
    ):
        if access.may_open(role, page):
            links.append((f"/{page}", key))
    if access.may_open(role, "qa") and _has_qa_page(request):
        links.append(("/qa", "nav.qa"))
    if access.may_open(role, "whatif") and _has_page(request, "whatif_page", "/lead/whatif"):
        links.append(("/lead/whatif", "nav.whatif"))
    if access.may_open(role, "admin") and _has_page(request, "admin_home", "/admin"):
        links.append(("/admin", "nav.admin"))
    return links


def _context(request: Request, lang: str, signed: Signed | None, **extra: Any) -> dict[str, Any]:
    other = "en" if lang == "zh-CN" else "zh-CN"
    role = signed.principal.role if signed else None
    return {
        "request": request,
        "lang": lang,
        "other_lang": other,
        "t": lambda k: t(k, lang),
        "user": signed.principal if signed else None,
        "csrf_token": signed.session.csrf_token if signed else "",
        "nav": _nav(role, request),
        **extra,
    }


def _render(
    request: Request,
    name: str,
    lang: str,
    signed: Signed | None,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, _context(request, lang, signed, **extra), status_code=status_code
    )


def _lang_suffix(lang: str, joiner: str = "?") -> str:
    return "" if lang == DEFAULT else f"{joiner}lang={lang}"


def _to_login(request: Request, lang: str) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"/login?next={quote(here, safe='')}" + _lang_suffix(lang, "&")
    return RedirectResponse(target, status_code=303)


def _forbidden(request: Request, lang: str, signed: Signed | None, message: str) -> HTMLResponse:
    return _render(request, "forbidden.html", lang, signed, status_code=403, message=message)


def _guard(request: Request, ctx: AppContext, page: str, lang: str) -> Signed | Response:
    """The signed-in user allowed on ``page``; else the sign-in redirect or a 403 page."""
    signed = _signed_in(request, ctx)
    if signed is None:
        return _to_login(request, lang)
    if not access.may_open(signed.principal.role, page):
        return _forbidden(request, lang, signed, t("forbidden.role", lang))
    return signed


async def _checked_form(
    request: Request, ctx: AppContext, lang: str
) -> tuple[Any, Signed | Response]:
    """A page's form post: the session and its CSRF token (form field or header), else 403."""
    form = await request.form()
    signed = await run_in_threadpool(_signed_in, request, ctx)
    if signed is None:
        return form, _to_login(request, lang)
    presented = str(
        form.get(sessions.CSRF_FIELD) or request.headers.get(sessions.CSRF_HEADER) or ""
    )
    try:
        sessions.check_csrf(signed.session, request.method, presented)
    except sessions.CsrfRefused:
        return form, _forbidden(request, lang, signed, t("forbidden.csrf", lang))
    return form, signed


# ---------------------------------------------------------------- index, static files


@router.get("/", response_class=HTMLResponse)
def index(request: Request, ctx: Ctx) -> HTMLResponse:
    lang = lang_of(request)
    return _render(request, "index.html", lang, _signed_in(request, ctx))


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
    return _render(request, "login.html", lang, None, next_url=target, failed=False)


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
        return _render(
            request, "login.html", lang, None, status_code=401, next_url=target or "", failed=True
        )
    except TooManyAttempts as exc:
        page = _render(
            request,
            "login.html",
            lang,
            None,
            status_code=429,
            next_url=target or "",
            failed=True,
            throttled=True,
        )
        page.headers.update(exc.headers())
        return page
    previous = request.cookies.get(sessions.COOKIE)
    if previous:
        await run_in_threadpool(sessions.end, ctx, previous)
    session = await run_in_threadpool(sessions.start, ctx, user.id)
    home = access.home_for(
        user.role,
        qa_page=_has_qa_page(request),
        admin_page=_has_page(request, "admin_home", "/admin"),
    ) + _lang_suffix(lang)
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
async def logout(request: Request, ctx: Ctx) -> Response:
    lang = lang_of(request)
    _form, signed = await _checked_form(request, ctx, lang)
    if isinstance(signed, Response):
        return signed
    await run_in_threadpool(sessions.end, ctx, signed.session.session_id)
    response = RedirectResponse("/login" + _lang_suffix(lang), status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


# ---------------------------------------------------------------- the agent desktop


@router.get("/desktop", response_class=HTMLResponse, response_model=None)
def desktop(request: Request, ctx: Ctx) -> Response:
    lang = lang_of(request)
    signed = _guard(request, ctx, "desktop", lang)
    if isinstance(signed, Response):
        return signed
    data = views.desktop(ctx, signed.principal, lang)
    return _render(
        request,
        "desktop.html",
        lang,
        signed,
        data=data,
        messages=catalog(lang),
        state_names=views.state_names(lang),
        reason_names=views.reason_names(lang),
    )


# ---------------------------------------------------------------- the lead's console


@router.get("/lead", response_class=HTMLResponse, response_model=None)
def lead(request: Request, ctx: Ctx) -> Response:
    lang = lang_of(request)
    signed = _guard(request, ctx, "lead", lang)
    if isinstance(signed, Response):
        return signed
    data = views.lead(ctx, lang, signed.principal)
    return _render(
        request,
        "lead.html",
        lang,
        signed,
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
def tickets(request: Request, ctx: Ctx) -> Response:
    lang = lang_of(request)
    signed = _guard(request, ctx, "tickets", lang)
    if isinstance(signed, Response):
        return signed
    filters = _filters(request)
    data = views.ticket_list(ctx, signed.principal, filters, lang)
    args = filters.query_args()
    if lang != DEFAULT:
        args["lang"] = lang
    next_url = (
        "/tickets?" + urlencode({**args, "before": data["next_before"]})
        if data["next_before"]
        else None
    )
    return _render(
        request,
        "tickets.html",
        lang,
        signed,
        data=data,
        filters=filters,
        next_url=next_url,
        first_url="/tickets?" + urlencode(args) if filters.before else None,
        overdue_report=access.may_open(signed.principal.role, "overdue"),
    )


@router.get("/tickets/reports/overdue", response_class=HTMLResponse, response_model=None)
def overdue_report(request: Request, ctx: Ctx) -> Response:
    """Overdue work per period (day, week, month) and department, then the tickets."""
    lang = lang_of(request)
    signed = _guard(request, ctx, "overdue", lang)
    if isinstance(signed, Response):
        return signed
    q = request.query_params
    form = {name: q.get(name, "") for name in ("since", "until", "period")}
    today = datetime.now(ZoneInfo(ctx.settings.timezone)).date()
    try:
        window = overdue.parse_window(form["since"], form["until"], form["period"], today)
    except overdue.BadPeriod as exc:
        return _render(
            request,
            "overdue.html",
            lang,
            signed,
            422,
            data=None,
            form=form,
            error=f"{t('overdue.bad_input', lang)}: {exc}",
        )
    data = views.overdue_page(ctx, signed.principal, window, lang)
    form = {"since": str(window.since), "until": str(window.until), "period": window.period}
    return _render(request, "overdue.html", lang, signed, data=data, form=form, error=None)


@router.get("/tickets/{number}", response_class=HTMLResponse, response_model=None)
def ticket(request: Request, ctx: Ctx, number: str) -> Response:
    lang = lang_of(request)
    signed = _guard(request, ctx, "tickets", lang)
    if isinstance(signed, Response):
        return signed
    return _ticket_response(request, ctx, signed, number, lang)


def _ticket_response(
    request: Request,
    ctx: AppContext,
    signed: Signed,
    number: str,
    lang: str,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    try:
        data = views.ticket_page(ctx, signed.principal, number, lang)
    except NotFound as exc:
        return _render(request, "forbidden.html", lang, signed, 404, message=exc.message)
    except CallCenterError as exc:
        return _forbidden(request, lang, signed, exc.message)
    return _render(request, "ticket.html", lang, signed, status_code, data=data, error=error)


TRANSITION_FIELDS = ("note", "assignee", "done", "materials", "result", "reason", "department")
NUMBER_FIELDS = ("minutes_spent", "score")


@router.post("/tickets/{number}/transitions", response_model=None)
async def ticket_transition(request: Request, ctx: Ctx, number: str) -> Response:
    lang = lang_of(request)
    form, signed = await _checked_form(request, ctx, lang)
    if isinstance(signed, Response):
        return signed
    if not access.may_open(signed.principal.role, "tickets"):
        return _forbidden(request, lang, signed, t("forbidden.role", lang))
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
            await run_in_threadpool(_transition, ctx, ticket_id, fields, signed.principal)
        except CallCenterError as exc:
            return await run_in_threadpool(
                _ticket_response, request, ctx, signed, number, lang, exc.message, exc.status_code
            )
    if error is not None:
        return await run_in_threadpool(
            _ticket_response, request, ctx, signed, number, lang, error, 422
        )
    return RedirectResponse(f"/tickets/{quote(number)}" + _lang_suffix(lang), status_code=303)


@router.post("/tickets/{number}/callbacks/{callback_id}/assignee", response_model=None)
async def callback_assignee(request: Request, ctx: Ctx, number: str, callback_id: int) -> Response:
    """A lead gives a callback (回访) to one agent, or back to the callback queue (empty)."""
    lang = lang_of(request)
    form, signed = await _checked_form(request, ctx, lang)
    if isinstance(signed, Response):
        return signed
    if not access.may_open(signed.principal.role, "lead"):
        return _forbidden(request, lang, signed, t("forbidden.role", lang))
    raw = str(form.get("agent_id") or "").strip()
    if raw and not raw.isdigit():
        error = f"agent_id: {t('ticket.whole_number', lang)} ({raw!r})"
        return await run_in_threadpool(
            _ticket_response, request, ctx, signed, number, lang, error, 422
        )
    try:
        ticket_id = await run_in_threadpool(views.ticket_id_by_number, ctx, number)
        await run_in_threadpool(
            partial(
                assignment.assign_callback,
                ctx,
                callback_id,
                int(raw) if raw else None,
                actor=signed.principal,
                ticket_id=ticket_id,
            )
        )
    except CallCenterError as exc:
        return await run_in_threadpool(
            _ticket_response, request, ctx, signed, number, lang, exc.message, exc.status_code
        )
    return RedirectResponse(f"/tickets/{quote(number)}" + _lang_suffix(lang), status_code=303)


def _transition(ctx: AppContext, ticket_id: int, fields: dict[str, Any], user: Principal) -> None:
    ticket_services.transition(ctx, ticket_id, fields, actor=user)


# ---------------------------------------------------------------- the wallboard


@router.get("/wallboard", response_class=HTMLResponse, response_model=None)
def wallboard(request: Request, ctx: Ctx) -> Response:
    lang = lang_of(request)
    signed = _guard(request, ctx, "wallboard", lang)
    if isinstance(signed, Response):
        return signed
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
    return _render(
        request,
        "wallboard.html",
        lang,
        signed,
        queues=queues,
        shifts=shifts,
        shift_names={s["code"]: s["name"] for s in shifts},
        target=ctx.config.shifts.answer_rate_target,
        sl_target=ctx.config.shifts.service_level_target,
        messages=catalog(lang),
        states=["ready", "reserved", "on_call", "on_hold", "wrap_up", "not_ready"],
    )


@router.get("/wallboard/answer-rate.svg", response_model=None)
def wallboard_chart(request: Request, ctx: Ctx) -> Response:
    """Today's answer rate per hour (local time) against the target, from the call records."""
    lang = lang_of(request)
    signed = _guard(request, ctx, "wallboard", lang)
    if isinstance(signed, Response):
        return signed
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
