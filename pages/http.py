"""Pages mounted at the root: ``/`` (index), ``/login``, ``/wallboard``.

The wallboard is a server-rendered shell (queue names, labels, the target) that a small script
fills from the SSE feed ``/api/v1/wallboard/stream``; the token from ``/login`` lives in the
tab's sessionStorage and is passed to EventSource as ``?token=``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from callcenter.auth import get_ctx
from callcenter.context import AppContext
from pages.i18n import catalog, lang_of, t

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _context(request: Request, lang: str, **extra: Any) -> dict[str, Any]:
    other = "en" if lang == "zh-CN" else "zh-CN"
    return {
        "request": request,
        "lang": lang,
        "other_lang": other,
        "t": lambda k: t(k, lang),
        **extra,
    }


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    lang = lang_of(request)
    return templates.TemplateResponse(request, "index.html", _context(request, lang))


@router.get("/login", response_class=HTMLResponse)
def login(request: Request) -> HTMLResponse:
    lang = lang_of(request)
    target = request.query_params.get("next", "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"  # only local redirects after sign-in
    return templates.TemplateResponse(
        request, "login.html", _context(request, lang, next_url=target)
    )


@router.get("/wallboard", response_class=HTMLResponse)
def wallboard(request: Request, ctx: Annotated[AppContext, Depends(get_ctx)]) -> HTMLResponse:
    lang = lang_of(request)
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
    return templates.TemplateResponse(
        request,
        "wallboard.html",
        _context(
            request,
            lang,
            queues=queues,
            shifts=shifts,
            shift_names={s["code"]: s["name"] for s in shifts},
            target=ctx.config.shifts.answer_rate_target,
            messages=catalog(lang),
            states=["ready", "reserved", "on_call", "on_hold", "wrap_up", "not_ready"],
        ),
    )
