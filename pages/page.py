"""What every signed-in page route shares: the session from the cookie, the role check, the
language, rendering, and for form posts the CSRF token.

A route asks for its page by dependency instead of repeating the prelude::

    @router.get("/lead", response_class=HTMLResponse, response_model=None)
    def lead(page: Annotated[Page, Depends(signed_page("lead"))]) -> Response:
        return page.render("lead.html", data=...)

``signed_page(name)`` gives a :class:`Page` when the signed-in user may open ``name``
(:mod:`pages.access`); otherwise the route is not run and the answer is the sign-in redirect
(signed out) or the 403 page (another role). ``signed_form(name)`` does the same for a page's
form post after checking the session's CSRF token (form field or header), and gives a
:class:`FormPage` carrying the parsed form. The refusal travels as :class:`PageRefused`,
answered by the handler :func:`install` registers on the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.routing import NoMatchFound

from callcenter import sessions
from callcenter.auth import Principal, get_ctx, session_principal
from callcenter.context import AppContext
from callcenter.errors import Unauthorized
from callcenter.models import Role
from pages import access
from pages.i18n import DEFAULT, lang_of, t

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


@dataclass(frozen=True)
class Signed:
    principal: Principal
    session: sessions.PageSession


def signed_in(request: Request, ctx: AppContext) -> Signed | None:
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


def has_page(request: Request, route_name: str, path: str) -> bool:
    """Whether this build mounts an optional page (:mod:`pages.qa`, :mod:`pages.admin`).

    Asked by name: FastAPI keeps an included router as one entry of ``app.routes``, so the
    page's path is not listed there."""
    try:
        return bool(request.app.url_path_for(route_name) == path)
    except NoMatchFound:
        return False


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
    if access.may_open(role, "qa") and has_page(request, "qa_page", "/qa"):
        links.append(("/qa", "nav.qa"))
    if access.may_open(role, "whatif") and has_page(request, "whatif_page", "/lead/whatif"):
        links.append(("/lead/whatif", "nav.whatif"))
    if access.may_open(role, "admin") and has_page(request, "admin_home", "/admin"):
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


def render(
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


def lang_suffix(lang: str, joiner: str = "?") -> str:
    return "" if lang == DEFAULT else f"{joiner}lang={lang}"


def to_login(request: Request, lang: str) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = f"/login?next={quote(here, safe='')}" + lang_suffix(lang, "&")
    return RedirectResponse(target, status_code=303)


def forbidden(request: Request, lang: str, signed: Signed | None, message: str) -> HTMLResponse:
    return render(request, "forbidden.html", lang, signed, status_code=403, message=message)


@dataclass(frozen=True)
class Page:
    """A page request by a user allowed on it: who, in which language, and how to answer."""

    request: Request
    ctx: AppContext
    lang: str
    signed: Signed

    @property
    def principal(self) -> Principal:
        return self.signed.principal

    def render(self, name: str, status_code: int = 200, **extra: Any) -> HTMLResponse:
        return render(self.request, name, self.lang, self.signed, status_code, **extra)

    def forbidden(self, message: str) -> HTMLResponse:
        return forbidden(self.request, self.lang, self.signed, message)

    def not_found(self, message: str) -> HTMLResponse:
        return self.render("forbidden.html", 404, message=message)


@dataclass(frozen=True)
class FormPage(Page):
    """A page's form post whose CSRF token was checked: the page and the parsed form."""

    form: FormData


class PageRefused(Exception):
    """Raised by the page dependencies: answer ``response`` instead of running the route."""

    def __init__(self, response: Response) -> None:
        super().__init__("page refused")
        self.response = response


def signed_page(page: str) -> Callable[..., Page]:
    """Dependency: the signed-in user allowed on ``page``; else the sign-in redirect or the
    403 page (:class:`PageRefused`)."""

    def dependency(request: Request, ctx: AppContext = Depends(get_ctx)) -> Page:
        lang = lang_of(request)
        signed = signed_in(request, ctx)
        if signed is None:
            raise PageRefused(to_login(request, lang))
        if not access.may_open(signed.principal.role, page):
            raise PageRefused(forbidden(request, lang, signed, t("forbidden.role", lang)))
        return Page(request, ctx, lang, signed)

    return dependency


def signed_form(page: str | None) -> Callable[..., Awaitable[FormPage]]:
    """Dependency for a page's form post: the session, its CSRF token (form field or header),
    then the role for ``page`` (None: any signed-in user); else the sign-in redirect or a 403
    page."""

    async def dependency(request: Request, ctx: AppContext = Depends(get_ctx)) -> FormPage:
        lang = lang_of(request)
        form = await request.form()
        signed = await run_in_threadpool(signed_in, request, ctx)
        if signed is None:
            raise PageRefused(to_login(request, lang))
        presented = str(
            form.get(sessions.CSRF_FIELD) or request.headers.get(sessions.CSRF_HEADER) or ""
        )
        try:
            sessions.check_csrf(signed.session, request.method, presented)
        except sessions.CsrfRefused:
            raise PageRefused(forbidden(request, lang, signed, t("forbidden.csrf", lang))) from None
        if page is not None and not access.may_open(signed.principal.role, page):
            raise PageRefused(forbidden(request, lang, signed, t("forbidden.role", lang)))
        return FormPage(request, ctx, lang, signed, form)

    return dependency


def install(app: FastAPI) -> None:
    """Answer a refused page with its redirect or 403 page."""

    async def refused(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageRefused)
        return exc.response

    app.add_exception_handler(PageRefused, refused)
