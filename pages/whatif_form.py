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


@dataclass
class _PlanReader:
    """One plan's posted fields and the problems found so far, each named plan · where."""

    form: Mapping[str, Any]
    key: str
    lang: str
    problems: list[str] = field(default_factory=list)

    def text(self, name: str) -> str:
        return str(self.form.get(f"{self.key}_{name}") or "").strip()

    def problem(self, where: str, text: str) -> None:
        name = f"{t('whatif.plan', self.lang)} {self.key.upper()}"
        self.problems.append(f"{name} · {where}: {text}")

    def ring(self, ring_text: str) -> float:
        try:
            ring = float(ring_text) if ring_text else 4.0
            if not 0 <= ring <= 120:
                raise ValueError
        except ValueError:
            lang = self.lang
            self.problem(
                t("whatif.ring_seconds", lang), f"{t('whatif.bad_ring', lang)} ({ring_text!r})"
            )
            return 4.0
        return ring

    def group(
        self, index: int, row: dict[str, str], shifts: Collection[str], queues: Collection[str]
    ) -> dict[str, Any] | None:
        """Row ``index`` as an agent group, or None when it has problems (now recorded)."""
        lang = self.lang
        where = f"{t('whatif.row', lang)} {index + 1}"
        shift, count_text = row["shift"], row["count"]
        ok = True
        if shift not in shifts:
            self.problem(
                f"{where} · {t('whatif.shift', lang)}",
                f"{t('whatif.bad_shift', lang)} ({shift!r})",
            )
            ok = False
        if not count_text.isdigit() or int(count_text) > MAX_COUNT:
            self.problem(
                f"{where} · {t('whatif.count', lang)}",
                f"{t('whatif.bad_count', lang)} ({count_text!r})",
            )
            ok = False
        skills, queue_problems = _queues(row["queues"], queues, lang)
        for text in queue_problems:
            self.problem(f"{where} · {t('whatif.queues', lang)}", text)
        if ok and not queue_problems:
            return {"shift": shift, "count": int(count_text), "queues": skills}
        return None

    def queue_setting(
        self, code: str, in_force: QueueSetting, typed: dict[str, str]
    ) -> QueueSetting:
        """Queue ``code``'s setting to try: what was typed when valid, else what is in force."""
        lang = self.lang
        wrap, overflow = in_force.wrap_up_seconds, in_force.overflow_after_seconds
        wrap_text, over_text = typed["wrap"], typed["overflow"]
        if wrap_text:
            if wrap_text.isdigit() and int(wrap_text) <= MAX_WRAP_UP:
                wrap = int(wrap_text)
            else:
                self.problem(
                    f"{code} · {t('whatif.wrap_up', lang)}",
                    f"{t('whatif.bad_wrap', lang)} ({wrap_text!r})",
                )
        if overflow is not None and over_text:
            low, high = OVERFLOW_RANGE
            if over_text.isdigit() and low <= int(over_text) <= high:
                overflow = int(over_text)
            else:
                self.problem(
                    f"{code} · {t('whatif.overflow_after', lang)}",
                    f"{t('whatif.bad_overflow', lang)} ({over_text!r})",
                )
        return QueueSetting(wrap, overflow)


def read_plan(
    form: Mapping[str, Any],
    key: str,
    lang: str,
    *,
    shifts: Collection[str],
    queues: Mapping[str, QueueSetting],
) -> tuple[PlanForm, list[str]]:
    """Plan ``key`` from the posted form, and the problems found (empty when it is valid)."""
    reader = _PlanReader(form, key, lang)
    ring_text = reader.text("ring_seconds")
    parsed = PlanForm(key, ring_text)
    ring = reader.ring(ring_text)
    groups: list[dict[str, Any]] = []
    for index in range(MAX_ROWS):
        if f"{key}_count_{index}" not in form and f"{key}_shift_{index}" not in form:
            continue
        row = {name: reader.text(f"{name}_{index}") for name in ("shift", "count", "queues")}
        parsed.rows.append(row)
        if not row["count"] and not row["queues"]:
            continue
        group = reader.group(index, row, shifts, queues)
        if group is not None:
            groups.append(group)
    if not groups and not reader.problems:
        reader.problem(t("whatif.agents", lang), t("whatif.no_rows", lang))
    for code, in_force in queues.items():
        typed = {"wrap": reader.text(f"wrap_{code}"), "overflow": reader.text(f"overflow_{code}")}
        parsed.queue_fields[code] = typed
        parsed.queue_settings[code] = reader.queue_setting(code, in_force, typed)
    if reader.problems:
        return parsed, reader.problems
    try:
        parsed.plan = PlanFile.model_validate({"ring_seconds": ring, "agents": groups})
    except ValidationError as exc:  # the form checks above should leave nothing for this
        for error in exc.errors():
            reader.problem(".".join(str(p) for p in error["loc"]), str(error["msg"]))
    return parsed, reader.problems


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
