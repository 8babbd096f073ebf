"""The overdue report page's figures (没有按规定时间完成的工作记录并上报), per period.

Pure: the form's dates are read and checked here, and the report's items
(:func:`ticketing.reports.overdue_report`) are counted per period (day, ISO week, month of the
center's local calendar) and department. :mod:`pages.views` reads the data, :mod:`pages.http`
renders it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month")
DEFAULT_DAYS = 7
MAX_DAYS = 366


class BadPeriod(ValueError):
    """The form's dates or period cannot make a report (the message names what is wrong)."""


@dataclass(frozen=True)
class Window:
    """Local dates, ``since`` included and ``until`` included (the form's meaning)."""

    since: date
    until: date
    period: str

    def utc_bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        start = datetime.combine(self.since, time(0), zone)
        end = datetime.combine(self.until + timedelta(days=1), time(0), zone)
        return start.astimezone(UTC), end.astimezone(UTC)


def parse_window(since: str, until: str, period: str, today: date) -> Window:
    """The report's window from the form (``YYYY-MM-DD`` dates; empty: the last 7 days)."""
    period = period or "day"
    if period not in PERIODS:
        raise BadPeriod(f"period must be one of {', '.join(PERIODS)}, not {period!r}")
    end = _date(until, "until") if until else today
    start = _date(since, "since") if since else end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise BadPeriod(f"since ({start}) is after until ({end})")
    if (end - start).days + 1 > MAX_DAYS:
        raise BadPeriod(f"at most {MAX_DAYS} days in one report")
    return Window(start, end, period)


def _date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadPeriod(f"{name} must be a date YYYY-MM-DD, not {text!r}") from None


def label(day: date, period: str) -> str:
    """A period's label: the day, the Monday of its ISO week, or the month."""
    if period == "month":
        return f"{day:%Y-%m}"
    if period == "week":
        return f"{day - timedelta(days=day.weekday()):%Y-%m-%d}"
    return f"{day:%Y-%m-%d}"


def period_of(moment: datetime, period: str, zone: ZoneInfo) -> str:
    """The label of the period ``moment`` falls in, on the center's calendar."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return label(moment.astimezone(zone).date(), period)


def periods_between(window: Window) -> list[str]:
    """Every period label of the window in order (periods without overdue work show 0)."""
    labels: list[str] = []
    day = window.since
    while day <= window.until:
        found = label(day, window.period)
        if not labels or labels[-1] != found:
            labels.append(found)
        day += timedelta(days=1)
    return labels


@dataclass
class PeriodRow:
    period: str
    counts: dict[str, int]
    total: int = 0
    open: int = 0


def by_period(
    items: list[dict[str, Any]], window: Window, departments: list[str], zone: ZoneInfo
) -> dict[str, Any]:
    """Counts per period and department (in ``departments`` order), the still-open count and
    the totals; ``items`` are the report's (each with ``overdue_at`` and ``department``)."""
    rows = {
        label: PeriodRow(label, dict.fromkeys(departments, 0)) for label in periods_between(window)
    }
    totals = dict.fromkeys(departments, 0)
    for item in items:
        if item.get("overdue_at") is None:
            continue
        row = rows.get(period_of(item["overdue_at"], window.period, zone))
        code = item["department"]
        if row is None or code not in row.counts:
            continue
        row.counts[code] += 1
        totals[code] += 1
        row.total += 1
        row.open += bool(item.get("still_open"))
    return {
        "rows": list(rows.values()),
        "totals": totals,
        "total": sum(totals.values()),
        "open": sum(r.open for r in rows.values()),
    }
