"""A small message catalog for the pages: ``t(key, lang)``; zh-CN is the default language.

Other pages add their keys to ``MESSAGES``; a missing key falls back to English, then to the
key itself, so a page never breaks on a missing translation.
"""

from __future__ import annotations

from fastapi import Request

LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"

MESSAGES: dict[str, dict[str, str]] = {
    "app.title": {"zh-CN": "物业服务热线呼叫中心", "en": "Property service hotline"},
    "nav.index": {"zh-CN": "首页", "en": "Home"},
    "nav.wallboard": {"zh-CN": "实时监控墙", "en": "Wallboard"},
    "nav.login": {"zh-CN": "登录", "en": "Sign in"},
    "nav.logout": {"zh-CN": "退出", "en": "Sign out"},
    "nav.api": {"zh-CN": "接口文档", "en": "API documentation"},
    "nav.metrics": {"zh-CN": "Prometheus 指标", "en": "Prometheus metrics"},
    "nav.language": {"zh-CN": "English", "en": "中文"},
    "login.title": {"zh-CN": "登录", "en": "Sign in"},
    "login.username": {"zh-CN": "用户名", "en": "User name"},
    "login.password": {"zh-CN": "密码", "en": "Password"},
    "login.submit": {"zh-CN": "登录", "en": "Sign in"},
    "login.failed": {"zh-CN": "用户名或密码错误", "en": "Wrong user name or password"},
    "wb.title": {"zh-CN": "实时监控墙", "en": "Live wallboard"},
    "wb.queue": {"zh-CN": "队列", "en": "Queue"},
    "wb.center": {"zh-CN": "全中心", "en": "Whole center"},
    "wb.waiting": {"zh-CN": "排队数", "en": "Waiting"},
    "wb.longest": {"zh-CN": "最长等待", "en": "Longest wait"},
    "wb.answer_rate_shift": {"zh-CN": "本班接通率", "en": "Answer rate (shift)"},
    "wb.answer_rate_today": {"zh-CN": "今日接通率", "en": "Answer rate (today)"},
    "wb.service_level": {"zh-CN": "服务水平", "en": "Service level"},
    "wb.asa": {"zh-CN": "平均应答时间", "en": "ASA"},
    "wb.offered": {"zh-CN": "今日来电", "en": "Offered today"},
    "wb.abandoned": {"zh-CN": "今日放弃", "en": "Abandoned today"},
    "wb.agents": {"zh-CN": "坐席状态", "en": "Agents"},
    "wb.shifts": {"zh-CN": "各班次", "en": "Shifts"},
    "wb.shift_name": {"zh-CN": "班次", "en": "Shift"},
    "wb.hours": {"zh-CN": "时段", "en": "Hours"},
    "wb.answer_rate": {"zh-CN": "接通率", "en": "Answer rate"},
    "wb.answered": {"zh-CN": "接通", "en": "Answered"},
    "wb.offered_count": {"zh-CN": "来电", "en": "Offered"},
    "wb.abandoned_count": {"zh-CN": "放弃", "en": "Abandoned"},
    "wb.alerts": {"zh-CN": "告警", "en": "Alerts"},
    "wb.no_alerts": {"zh-CN": "无告警", "en": "No alerts"},
    "wb.target": {"zh-CN": "目标", "en": "Target"},
    "wb.shift": {"zh-CN": "当前班次", "en": "Current shift"},
    "wb.updated": {"zh-CN": "更新于", "en": "Updated"},
    "wb.connecting": {"zh-CN": "连接中…", "en": "Connecting…"},
    "wb.disconnected": {"zh-CN": "连接中断，正在重连", "en": "Disconnected, reconnecting"},
    "state.ready": {"zh-CN": "就绪", "en": "Ready"},
    "state.not_ready": {"zh-CN": "未就绪", "en": "Not ready"},
    "state.reserved": {"zh-CN": "振铃", "en": "Ringing"},
    "state.on_call": {"zh-CN": "通话", "en": "On call"},
    "state.on_hold": {"zh-CN": "保持", "en": "On hold"},
    "state.wrap_up": {"zh-CN": "话后处理", "en": "Wrap-up"},
    "index.intro": {
        "zh-CN": "呼叫中心各功能页面：",
        "en": "The call center's pages:",
    },
}


def t(key: str, lang: str = DEFAULT) -> str:
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    return entry.get(lang) or entry.get("en") or key


def lang_of(request: Request) -> str:
    """``?lang=en`` or ``?lang=zh-CN``; anything else means the default (Chinese)."""
    wanted = request.query_params.get("lang", DEFAULT)
    return wanted if wanted in LANGUAGES else DEFAULT


def catalog(lang: str, prefix: str = "") -> dict[str, str]:
    """Every message under ``prefix`` in ``lang`` (for the page's script)."""
    return {key: t(key, lang) for key in MESSAGES if key.startswith(prefix)}
