"""``/qa``: the QA page — find a recording, play it with seeking over its waveform, read the
call's timeline beside it, and score it on the scorecard.

A server-rendered shell (labels, queues, the scorecard from qa.toml, the page's data as a JSON
block) that ``pages/static/qa.js`` fills through the same API the QA staff's scripts use:
``/api/v1/recordings`` (search), ``.../{id}/link`` (a replay link the ``<audio>`` element
plays with HTTP Range), ``.../{id}/media`` (the waveform peaks), ``/api/v1/calls/{id}`` (the
timeline) and ``/api/v1/qa/evaluations`` (the score).

Signed in like every page (:mod:`pages.page`): the session cookie, the role checked on the
server (QA, leads, admins; others get the 403 page, signed-out users the sign-in redirect) and
the CSRF token in the shared base template, which the script sends on every POST.

Mounted by adding ``"pages.qa"`` to ``callcenter.app.PAGE_ROUTERS``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response

from callcenter.context import AppContext
from pages.i18n import catalog
from pages.page import Page, signed_page

router = APIRouter(include_in_schema=False)

PAGE = "qa"


def _name(names: Any, lang: str) -> str:
    return str(names.zh if lang == "zh-CN" else names.en)


def scorecard_view(ctx: AppContext, lang: str) -> dict[str, Any]:
    """The default scorecard (qa.toml) with its names in ``lang``."""
    qa_file = ctx.config.qa
    card = qa_file.scorecards[qa_file.default_scorecard]
    return {
        "code": qa_file.default_scorecard,
        "name": _name(card.name, lang),
        "items": [
            {
                "code": code,
                "name": _name(item.name, lang),
                "weight": item.weight,
                "max_score": item.max_score,
                "phrases": list(item.phrases),
                "guidance": item.guidance,
            }
            for code, item in card.items.items()
        ],
    }


@router.get("/qa", response_class=HTMLResponse, response_model=None)
def qa_page(page: Annotated[Page, Depends(signed_page(PAGE))]) -> Response:
    ctx, lang = page.ctx, page.lang
    queues = [
        {"code": code, "name": _name(queue.name, lang)}
        for code, queue in ctx.config.queues.queues.items()
    ]
    return page.render(
        "qa.html",
        queues=queues,
        scorecard=scorecard_view(ctx, lang),
        messages={**catalog(lang, "qa."), **catalog(lang, "event.")},
        timezone=ctx.settings.timezone,
    )
