"""``/qa``: the QA page — find a recording, play it with seeking over its waveform, read the
call's timeline beside it, and score it on the scorecard.

A server-rendered shell (labels, queues, the scorecard from qa.toml) that a small script fills
through the same API the QA staff's scripts use: ``/api/v1/recordings`` (search),
``.../{id}/link`` (a replay link the ``<audio>`` element plays with HTTP Range),
``.../{id}/media`` (the waveform peaks), ``/api/v1/calls/{id}`` (the timeline) and
``/api/v1/qa/evaluations`` (the score). The sign-in token is the tab's sessionStorage one
(``/login``), as on the wallboard.

Mounted by adding ``"pages.qa"`` to ``callcenter.app.PAGE_ROUTERS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from callcenter.auth import get_ctx
from callcenter.context import AppContext
from pages.i18n import lang_of
from pages.i18n import t as shared_t

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

MESSAGES: dict[str, dict[str, str]] = {
    "qa.title": {"zh-CN": "录音质检", "en": "Recordings and QA"},
    "qa.search": {"zh-CN": "查找录音", "en": "Find recordings"},
    "qa.agent": {"zh-CN": "坐席工号", "en": "Agent extension"},
    "qa.caller": {"zh-CN": "来电号码", "en": "Caller number"},
    "qa.queue": {"zh-CN": "队列", "en": "Queue"},
    "qa.any": {"zh-CN": "全部", "en": "Any"},
    "qa.ticket": {"zh-CN": "工单号", "en": "Ticket number"},
    "qa.since": {"zh-CN": "开始时间", "en": "From"},
    "qa.until": {"zh-CN": "结束时间", "en": "To"},
    "qa.min_duration": {"zh-CN": "最短时长（秒）", "en": "Minimum length (s)"},
    "qa.status": {"zh-CN": "质检状态", "en": "QA status"},
    "qa.status.unscored": {"zh-CN": "未评分", "en": "Not scored"},
    "qa.status.scored": {"zh-CN": "已评分", "en": "Scored"},
    "qa.status.disputed": {"zh-CN": "申诉中", "en": "Disputed"},
    "qa.find": {"zh-CN": "查找", "en": "Find"},
    "qa.more": {"zh-CN": "更多", "en": "More"},
    "qa.none": {"zh-CN": "没有符合条件的录音", "en": "No recordings match"},
    "qa.started": {"zh-CN": "通话时间", "en": "Started"},
    "qa.duration": {"zh-CN": "时长", "en": "Length"},
    "qa.play": {"zh-CN": "播放", "en": "Play"},
    "qa.player": {"zh-CN": "播放器", "en": "Player"},
    "qa.pick": {"zh-CN": "请从列表中选择一条录音", "en": "Pick a recording from the list"},
    "qa.timeline": {"zh-CN": "通话经过", "en": "Call timeline"},
    "qa.scorecard": {"zh-CN": "评分表", "en": "Scorecard"},
    "qa.comment": {"zh-CN": "评语", "en": "Comment"},
    "qa.submit": {"zh-CN": "提交评分", "en": "Submit score"},
    "qa.total": {"zh-CN": "总分", "en": "Total"},
    "qa.saved": {"zh-CN": "评分已保存", "en": "Score saved"},
    "qa.error": {"zh-CN": "出错了", "en": "Something went wrong"},
    "qa.listen_for": {"zh-CN": "注意用语", "en": "Listen for"},
    "event.call_arrived": {"zh-CN": "来电", "en": "Call arrived"},
    "event.menu_chosen": {"zh-CN": "菜单选择", "en": "Menu choice"},
    "event.digits_collected": {"zh-CN": "输入号码", "en": "Digits entered"},
    "event.call_queued": {"zh-CN": "进入队列", "en": "Queued"},
    "event.agent_offered": {"zh-CN": "分配坐席", "en": "Offered to agent"},
    "event.agent_answered": {"zh-CN": "坐席接听", "en": "Agent answered"},
    "event.held": {"zh-CN": "保持", "en": "On hold"},
    "event.unheld": {"zh-CN": "恢复通话", "en": "Off hold"},
    "event.transferred": {"zh-CN": "转接", "en": "Transferred"},
    "event.recording_started": {"zh-CN": "开始录音", "en": "Recording started"},
    "event.recording_stopped": {"zh-CN": "录音结束", "en": "Recording stopped"},
    "event.caller_hung_up": {"zh-CN": "客户挂机", "en": "Caller hung up"},
    "event.agent_hung_up": {"zh-CN": "坐席挂机", "en": "Agent hung up"},
    "event.call_ended": {"zh-CN": "通话结束", "en": "Call ended"},
}


def t(key: str, lang: str) -> str:
    entry = MESSAGES.get(key)
    if entry is None:
        return shared_t(key, lang)
    return entry.get(lang) or entry.get("en") or key


def _name(names: Any, lang: str) -> str:
    return str(names.zh if lang == "zh-CN" else names.en)


@router.get("/qa", response_class=HTMLResponse)
def qa_page(request: Request, ctx: Annotated[AppContext, Depends(get_ctx)]) -> HTMLResponse:
    lang = lang_of(request)
    qa_file = ctx.config.qa
    card = qa_file.scorecards[qa_file.default_scorecard]
    scorecard = {
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
    queues = [
        {"code": code, "name": _name(queue.name, lang)}
        for code, queue in ctx.config.queues.queues.items()
    ]
    return templates.TemplateResponse(
        request,
        "qa.html",
        {
            "request": request,
            "lang": lang,
            "other_lang": "en" if lang == "zh-CN" else "zh-CN",
            "t": lambda key: t(key, lang),
            "queues": queues,
            "scorecard": scorecard,
            "messages": {key: t(key, lang) for key in MESSAGES},
            "timezone": ctx.settings.timezone,
        },
    )
