"""``/lead/whatif``: a lead compares two staffing plans over the same day of callers.

The lead picks the callers (a stored local day's, replayed from the call records, or the
built-in synthetic day with a seed and a volume factor), edits plan A and plan B (both start
as the staffing in force: :func:`metrics.whatif_inputs.plan_in_force`) and runs both through
the what-if simulator (:mod:`metrics.whatif`: the real routing script on a scratch key
space). Each plan may also change each queue's wrap-up time and, for a queue that overflows,
when it does (a copy of the configuration for that run; nothing is stored).
The page shows, for A and B side by side, the day's answer rate, service level, abandons and
occupancy, then per hour the same figures with the Erlang C / Erlang A figures for the hour,
and the answer rate and service level per hour as server-drawn SVG charts
(:func:`pages.charts.hourly_rate_svg`, the wallboard's drawing).

Signed in like every page (:mod:`pages.http`): leads and admins (others get the 403 page);
the form posts with the session's CSRF token. Bad input shows the form again, as typed, with
every problem naming the plan, row and field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from callcenter.context import AppContext
from callcenter.errors import CallCenterError
from config.loader import CenterConfig
from metrics.live_config import metric_config
from metrics.whatif import simulate
from metrics.whatif_inputs import Arrival, plan_in_force, stored_arrivals, synthetic_arrivals
from pages.charts import Series, hourly_rate_svg
from pages.i18n import t
from pages.page import FormPage, Page, signed_form, signed_page
from pages.whatif_form import PLANS, PlanForm, QueueSetting, form_of, read_plan

router = APIRouter(include_in_schema=False)

PAGE = "whatif"
SYNTHETIC_DAY = date(2026, 1, 5)  # the built-in day is the same whatever today is (a Monday)
COLOURS = {"a": "#4f9ddb", "b": "#f0a35e"}
MAX_VOLUME = 5.0


def _yesterday(ctx: AppContext) -> date:
    return (
        datetime.now(UTC).astimezone(ZoneInfo(ctx.settings.timezone)) - timedelta(days=1)
    ).date()


def settings_in_force(config: CenterConfig) -> dict[str, QueueSetting]:
    """Each queue's wrap-up and overflow time as queues.toml has them."""
    return {
        code: QueueSetting(q.wrap_up_seconds, q.overflow.after_seconds if q.overflow else None)
        for code, q in config.queues.queues.items()
    }


def config_for(config: CenterConfig, settings: Mapping[str, QueueSetting]) -> CenterConfig:
    """The center's configuration with a plan's queue settings (a copy; nothing stored)."""
    queues = {}
    for code, queue in config.queues.queues.items():
        setting = settings.get(code)
        if setting is None:
            queues[code] = queue
            continue
        update: dict[str, Any] = {"wrap_up_seconds": setting.wrap_up_seconds}
        if queue.overflow is not None and setting.overflow_after_seconds is not None:
            update["overflow"] = queue.overflow.model_copy(
                update={"after_seconds": setting.overflow_after_seconds}
            )
        queues[code] = queue.model_copy(update=update)
    return dataclasses.replace(config, queues=config.queues.model_copy(update={"queues": queues}))


def _choices(ctx: AppContext, lang: str) -> dict[str, Any]:
    def name(names: Any) -> str:
        return str(names.zh if lang == "zh-CN" else names.en)

    return {
        "shifts": [
            {"code": code, "name": name(s.name), "hours": f"{s.start:%H:%M}-{s.end:%H:%M}"}
            for code, s in ctx.config.shifts.shifts.items()
        ],
        "queues": [
            {
                "code": code,
                "name": name(q.name),
                "overflow_to": q.overflow.to if q.overflow else "",
            }
            for code, q in ctx.config.queues.queues.items()
        ],
    }


def _page(
    page: Page,
    *,
    day: dict[str, str],
    plans: list[PlanForm],
    problems: list[str] | None = None,
    result: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    return page.render(
        "whatif.html",
        status_code,
        day=day,
        plans=plans,
        problems=problems or [],
        result=result,
        colours=COLOURS,
        **_choices(page.ctx, page.lang),
    )


@router.get("/lead/whatif", response_class=HTMLResponse, response_model=None)
def whatif_page(page: Annotated[Page, Depends(signed_page(PAGE))]) -> Response:
    ctx = page.ctx
    in_force = plan_in_force(ctx)
    day = {"source": "synthetic", "day": _yesterday(ctx).isoformat(), "seed": "1", "volume": "1"}
    return _page(
        page,
        day=day,
        plans=[form_of(key, in_force, settings_in_force(ctx.config)) for key in PLANS],
    )


def _read_day(form: Any, lang: str) -> tuple[dict[str, str], list[str]]:
    day = {
        "source": "stored" if str(form.get("source") or "") == "stored" else "synthetic",
        "day": str(form.get("day") or "").strip(),
        "seed": str(form.get("seed") or "1").strip(),
        "volume": str(form.get("volume") or "1").strip(),
    }
    problems = []
    if day["source"] == "stored":
        try:
            date.fromisoformat(day["day"])
        except ValueError:
            problems.append(
                f"{t('whatif.day', lang)}: {t('whatif.bad_day', lang)} ({day['day']!r})"
            )
    if not day["seed"].isdigit() or int(day["seed"]) > 2**31:
        problems.append(f"{t('whatif.seed', lang)}: {t('whatif.bad_seed', lang)} ({day['seed']!r})")
    try:
        volume = float(day["volume"])
        if not 0 < volume <= MAX_VOLUME:
            raise ValueError
    except ValueError:
        problems.append(
            f"{t('whatif.volume', lang)}: {t('whatif.bad_volume', lang)} ({day['volume']!r})"
        )
    return day, problems


def _arrivals(ctx: AppContext, day: dict[str, str]) -> tuple[date, list[Arrival]]:
    seed = int(day["seed"])
    if day["source"] == "stored":
        stored = date.fromisoformat(day["day"])
        return stored, stored_arrivals(ctx, stored, seed=seed)
    return SYNTHETIC_DAY, synthetic_arrivals(
        SYNTHETIC_DAY, ctx.settings.timezone, seed=seed, volume=float(day["volume"])
    )


def _run(ctx: AppContext, day: dict[str, str], plans: list[PlanForm]) -> dict[str, Any]:
    when, arrivals = _arrivals(ctx, day)
    if not arrivals:
        return {"calls": 0, "runs": {}}
    figures = metric_config(ctx)
    runs = {
        form.key: simulate(
            ctx.redis,
            config_for(ctx.config, form.queue_settings),
            figures,
            form.plan,
            arrivals,
            day=when,
            timezone=ctx.settings.timezone,
        )
        for form in plans
        if form.plan is not None
    }
    return {"calls": len(arrivals), "day": when.isoformat(), "runs": runs}


def compare(
    result: dict[str, Any], lang: str, *, target: float, sl_target: float
) -> dict[str, Any]:
    """The page's view of two runs: the day's figures side by side, the hours that had calls
    (each with both plans' figures and Erlang), and the two charts."""
    runs = result["runs"]
    hours = []
    for hour in range(24):
        rows = {key: run["hours"][hour] for key, run in runs.items()}
        if not any(row["offered"] for row in rows.values()):
            continue
        hours.append({"hour": hour, "plans": rows})

    def series(figure: str) -> list[Series]:
        return [
            Series(
                f"{t('whatif.plan', lang)} {key.upper()}",
                {row["hour"]: row[figure] for row in run["hours"] if row[figure] is not None},
                COLOURS[key],
            )
            for key, run in runs.items()
        ]

    return {
        "calls": result["calls"],
        "day": result["day"],
        "center": {key: run["center"] for key, run in runs.items()},
        "agents": {
            key: sum(g["count"] for g in run["plan"]["agents"]) for key, run in runs.items()
        },
        "hours": hours,
        "answer_rate_chart": hourly_rate_svg(
            series("answer_rate"),
            target=target,
            title=t("whatif.chart_answer_rate", lang),
            target_label=t("wb.target", lang),
        ),
        "service_level_chart": hourly_rate_svg(
            series("service_level"),
            target=sl_target,
            title=t("whatif.chart_service_level", lang),
            target_label=t("wb.target", lang),
        ),
    }


@router.post("/lead/whatif", response_class=HTMLResponse, response_model=None)
async def whatif_run(posted: Annotated[FormPage, Depends(signed_form(PAGE))]) -> Response:
    ctx, form, lang = posted.ctx, posted.form, posted.lang
    day, problems = _read_day(form, lang)
    shifts, queues = set(ctx.config.shifts.shifts), settings_in_force(ctx.config)
    plans = []
    for key in PLANS:
        plan, plan_problems = read_plan(form, key, lang, shifts=shifts, queues=queues)
        plans.append(plan)
        problems += plan_problems
    if problems:
        return _page(posted, day=day, plans=plans, problems=problems, status_code=422)
    try:
        result = await run_in_threadpool(_run, ctx, day, plans)
    except CallCenterError as exc:
        return _page(
            posted,
            day=day,
            plans=plans,
            problems=[exc.message],
            status_code=exc.status_code,
        )
    if not result["calls"]:
        problems = [f"{t('whatif.day', lang)}: {t('whatif.no_calls', lang)} ({day['day']})"]
        return _page(posted, day=day, plans=plans, problems=problems, status_code=422)
    view = compare(
        result,
        lang,
        target=ctx.config.shifts.answer_rate_target,
        sl_target=ctx.config.shifts.service_level_target,
    )
    return _page(posted, day=day, plans=plans, result=view)
