"""The what-if page's form: two staffing plans typed by a lead, read into ``PlanFile``s.

Pure (no I/O): the form's fields in, the plans and every problem out, each problem naming the
plan, the row and the field in the page's language, so a lead can fix it in place (the page
shows the form again with what they typed).

A plan's fields: ``<p>_ring_seconds`` and, per row ``i``, ``<p>_shift_<i>``, ``<p>_count_<i>``,
``<p>_queues_<i>`` (``general:6,repair:8``, as on the lead console; a queue without a level
gets 5). A row with no count and no queues is ignored. The queue settings to try, per queue
``q``: ``<p>_wrap_<q>`` (wrap-up seconds) and, for a queue that overflows, ``<p>_overflow_<q>``
(seconds before it does); they start as queues.toml has them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from metrics.whatif_inputs import PlanFile
from pages.i18n import t

PLANS = ("a", "b")
MAX_ROWS = 40
DEFAULT_LEVEL = 5
MAX_COUNT = 1000
MAX_WRAP_UP = 1800  # as queues.toml allows
OVERFLOW_RANGE = (5, 3600)


@dataclass(frozen=True)
class QueueSetting:
    """What a plan may change of a queue: its wrap-up, and when it overflows (None: it does
    not)."""

    wrap_up_seconds: int
    overflow_after_seconds: int | None


@dataclass
class PlanForm:
    """A plan as the form shows it (strings, as typed) and the plan it makes, if valid."""

    key: str
    ring_seconds: str = "4"
    rows: list[dict[str, str]] = field(default_factory=list)
    plan: PlanFile | None = None
    queue_fields: dict[str, dict[str, str]] = field(default_factory=dict)  # as typed
    queue_settings: dict[str, QueueSetting] = field(default_factory=dict)  # when valid


def form_of(
    key: str, plan: PlanFile, settings: Mapping[str, QueueSetting], blank_rows: int = 2
) -> PlanForm:
    """A plan and the queue settings in force as the form's initial values, with
    ``blank_rows`` empty rows to add groups."""
    rows = [
        {
            "shift": group.shift,
            "count": str(group.count),
            "queues": ",".join(f"{q}:{level}" for q, level in group.queues.items()),
        }
        for group in plan.agents
    ]
    rows += [{"shift": "", "count": "", "queues": ""} for _ in range(blank_rows)]
    fields = {
        code: {
            "wrap": str(setting.wrap_up_seconds),
            "overflow": ""
            if setting.overflow_after_seconds is None
            else str(setting.overflow_after_seconds),
        }
        for code, setting in settings.items()
    }
    return PlanForm(key, f"{plan.ring_seconds:g}", rows, plan, fields, dict(settings))


def read_plan(
    form: Mapping[str, Any],
    key: str,
    lang: str,
    *,
    shifts: Collection[str],
    queues: Mapping[str, QueueSetting],
) -> tuple[PlanForm, list[str]]:
    """Plan ``key`` from the posted form, and the problems found (empty when it is valid)."""
    name = f"{t('whatif.plan', lang)} {key.upper()}"
    problems: list[str] = []

    def problem(where: str, text: str) -> None:
        problems.append(f"{name} · {where}: {text}")

    ring_text = str(form.get(f"{key}_ring_seconds") or "").strip()
    parsed = PlanForm(key, ring_text)
    ring = 4.0
    try:
        ring = float(ring_text) if ring_text else 4.0
        if not 0 <= ring <= 120:
            raise ValueError
    except ValueError:
        problem(t("whatif.ring_seconds", lang), f"{t('whatif.bad_ring', lang)} ({ring_text!r})")
    groups: list[dict[str, Any]] = []
    for index in range(MAX_ROWS):
        shift = str(form.get(f"{key}_shift_{index}") or "").strip()
        count_text = str(form.get(f"{key}_count_{index}") or "").strip()
        queues_text = str(form.get(f"{key}_queues_{index}") or "").strip()
        if f"{key}_count_{index}" not in form and f"{key}_shift_{index}" not in form:
            continue
        parsed.rows.append({"shift": shift, "count": count_text, "queues": queues_text})
        if not count_text and not queues_text:
            continue
        row = f"{t('whatif.row', lang)} {index + 1}"
        ok = True
        if shift not in shifts:
            problem(
                f"{row} · {t('whatif.shift', lang)}", f"{t('whatif.bad_shift', lang)} ({shift!r})"
            )
            ok = False
        if not count_text.isdigit() or int(count_text) > MAX_COUNT:
            problem(
                f"{row} · {t('whatif.count', lang)}",
                f"{t('whatif.bad_count', lang)} ({count_text!r})",
            )
            ok = False
        skills, queue_problems = _queues(queues_text, queues, lang)
        for text in queue_problems:
            problem(f"{row} · {t('whatif.queues', lang)}", text)
        if ok and not queue_problems:
            groups.append({"shift": shift, "count": int(count_text), "queues": skills})
    if not groups and not problems:
        problem(t("whatif.agents", lang), t("whatif.no_rows", lang))
    for code, in_force in queues.items():
        wrap_text = str(form.get(f"{key}_wrap_{code}") or "").strip()
        over_text = str(form.get(f"{key}_overflow_{code}") or "").strip()
        parsed.queue_fields[code] = {"wrap": wrap_text, "overflow": over_text}
        wrap, overflow = in_force.wrap_up_seconds, in_force.overflow_after_seconds
        if wrap_text:
            if wrap_text.isdigit() and int(wrap_text) <= MAX_WRAP_UP:
                wrap = int(wrap_text)
            else:
                problem(
                    f"{code} · {t('whatif.wrap_up', lang)}",
                    f"{t('whatif.bad_wrap', lang)} ({wrap_text!r})",
                )
        if overflow is not None and over_text:
            low, high = OVERFLOW_RANGE
            if over_text.isdigit() and low <= int(over_text) <= high:
                overflow = int(over_text)
            else:
                problem(
                    f"{code} · {t('whatif.overflow_after', lang)}",
                    f"{t('whatif.bad_overflow', lang)} ({over_text!r})",
                )
        parsed.queue_settings[code] = QueueSetting(wrap, overflow)
    if problems:
        return parsed, problems
    try:
        parsed.plan = PlanFile.model_validate({"ring_seconds": ring, "agents": groups})
    except ValidationError as exc:  # the form checks above should leave nothing for this
        for error in exc.errors():
            problem(".".join(str(p) for p in error["loc"]), str(error["msg"]))
    return parsed, problems


def _queues(text: str, known: Collection[str], lang: str) -> tuple[dict[str, int], list[str]]:
    skills: dict[str, int] = {}
    problems: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        code, _, level_text = (x.strip() for x in part.partition(":"))
        if code not in known:
            problems.append(f"{t('whatif.bad_queue', lang)} ({code!r})")
            continue
        if level_text and not (level_text.isdigit() and 1 <= int(level_text) <= 100):
            problems.append(f"{t('whatif.bad_level', lang)} ({part!r})")
            continue
        skills[code] = int(level_text) if level_text else DEFAULT_LEVEL
    if not skills and not problems:
        problems.append(t("whatif.no_queues", lang))
    return skills, problems
