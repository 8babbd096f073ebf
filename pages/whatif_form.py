"""The what-if page's form: two staffing plans typed by a lead, read into ``PlanFile``s.

Pure (no I/O): the form's fields in, the plans and every problem out, each problem naming the
plan, the row and the field in the page's language, so a lead can fix it in place (the page
shows the form again with what they typed).

A plan's fields: ``<p>_ring_seconds`` and, per row ``i``, ``<p>_shift_<i>``, ``<p>_count_<i>``,
``<p>_queues_<i>`` (``general:6,repair:8``, as on the lead console; a queue without a level
gets 5). A row with no count and no queues is ignored.
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


@dataclass
class PlanForm:
    """A plan as the form shows it (strings, as typed) and the plan it makes, if valid."""

    key: str
    ring_seconds: str = "4"
    rows: list[dict[str, str]] = field(default_factory=list)
    plan: PlanFile | None = None


def form_of(key: str, plan: PlanFile, blank_rows: int = 2) -> PlanForm:
    """A plan as the form's initial values, with ``blank_rows`` empty rows to add groups."""
    rows = [
        {
            "shift": group.shift,
            "count": str(group.count),
            "queues": ",".join(f"{q}:{level}" for q, level in group.queues.items()),
        }
        for group in plan.agents
    ]
    rows += [{"shift": "", "count": "", "queues": ""} for _ in range(blank_rows)]
    return PlanForm(key, f"{plan.ring_seconds:g}", rows, plan)


def read_plan(
    form: Mapping[str, Any],
    key: str,
    lang: str,
    *,
    shifts: Collection[str],
    queues: Collection[str],
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
