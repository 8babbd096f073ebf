"""Time as the figures see it: an event's instant, the shifts in force at a moment and their
occurrences, and intervals cut at minute boundaries (shift and day boundaries are minutes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

from config.schemas import ShiftsFile

NO_SHIFT = "none"  # the shift label of a moment no shift covers


def parse_at(value: str) -> datetime:
    """An event's ``at`` (ISO 8601); naive values are taken as UTC."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _covers(start: time, end: time, moment: time) -> bool:
    if start < end:
        return start <= moment < end
    return moment >= start or moment < end  # overnight: 20:00-08:00


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def shifts_in_force(shifts: ShiftsFile, local: datetime) -> list[str]:
    """Every shift whose hours cover ``local`` (start inclusive, end exclusive), the one that
    started most recently first; a tie goes to the shift listed first in shifts.toml."""
    moment = local.time()
    minute = _minutes(moment)
    found = [
        ((minute - _minutes(shift.start)) % 1440, index, code)
        for index, (code, shift) in enumerate(shifts.shifts.items())
        if _covers(shift.start, shift.end, moment)
    ]
    return [code for _since, _index, code in sorted(found)]


def shift_in_force(shifts: ShiftsFile, local: datetime) -> str:
    """The one shift a moment is attributed to (the ``shift`` label of the Prometheus counters,
    the wallboard's current shift): of the shifts in force, the one that started most recently
    — the same rule as cti/ for calls nobody answered. With the seed's shifts: day 08:00-09:00,
    mid 09:00-20:00, night 20:00-08:00. ``none`` when no shift covers the moment."""
    in_force = shifts_in_force(shifts, local)
    return in_force[0] if in_force else NO_SHIFT


def shift_occurrence(
    shifts: ShiftsFile, code: str, local: datetime
) -> tuple[datetime, datetime] | None:
    """The occurrence of shift ``code`` containing ``local``, or else the latest one that
    started before it (local, timezone-aware bounds). Overnight shifts end the next day."""
    shift = shifts.shifts.get(code)
    if shift is None:
        return None
    tz = local.tzinfo
    for day_offset in (0, -1, -2):
        day = local.date() + timedelta(days=day_offset)
        start = datetime.combine(day, shift.start, tzinfo=tz)
        end_day = day + timedelta(days=1) if shift.end <= shift.start else day
        end = datetime.combine(end_day, shift.end, tzinfo=tz)
        if start <= local:
            return start, end
    return None  # pragma: no cover - a day back always has a start


def occurrence_key(shifts: ShiftsFile, code: str, local: datetime) -> str:
    """``<shift>:<YYYY-MM-DD of the occurrence's start>``: the key of a shift's occurrence."""
    occurrence = shift_occurrence(shifts, code, local)
    return f"{code}:{occurrence[0].date().isoformat()}" if occurrence else f"{code}:-"


def split_by_minute(start: datetime, end: datetime) -> Iterator[tuple[datetime, float]]:
    """Pieces of [start, end) cut at minute boundaries (shift and day boundaries are minutes)."""
    cursor = start
    while cursor < end:
        boundary = cursor.replace(second=0, microsecond=0) + timedelta(minutes=1)
        piece_end = min(boundary, end)
        yield cursor, (piece_end - cursor).total_seconds()
        cursor = piece_end
