"""Shifts from ``shifts.toml``: which shift is in force, whether an agent is on shift, staffing.

Times in the file are local wall-clock times in the deployment's timezone (settings.timezone).

Overlapping shifts (day 08:00–20:00 and middle 09:00–21:00 share 09:00–20:00, middle and night
share 20:00–21:00). The rule for attributing a call (and its metrics) to one shift:

1. An answered call belongs to the answering agent's shift when that shift is in force at the
   moment the call arrived (the people who took the call own it).
2. Otherwise (unanswered calls, agents without a shift or working off-shift) it belongs to the
   shift in force that started most recently; a tie goes to the shift listed first.

So with the defaults a call at 10:00 answered by a day agent counts for day, an abandoned call at
10:00 counts for middle (started 09:00), and one at 20:30 counts for night.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from config.schemas import ShiftsFile

MINUTES_PER_DAY = 24 * 60


def minute_of_day(value: time) -> int:
    return value.hour * 60 + value.minute


def local_now(timezone: str, at: datetime | None = None) -> datetime:
    moment = at or datetime.now(UTC)
    return moment.astimezone(ZoneInfo(timezone))


def _contains(start: int, end: int, minute: int) -> bool:
    """[start, end) on the clock face; an interval with end < start wraps past midnight."""
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def _minutes_since_start(start: int, minute: int) -> int:
    return (minute - start) % MINUTES_PER_DAY


def shift_window(shifts: ShiftsFile, code: str | None) -> tuple[int, int]:
    """(start, end) minutes of day of an agent's shift; (-1, -1) for none (always on shift)."""
    if not code or code not in shifts.shifts:
        return -1, -1
    shift = shifts.shifts[code]
    return minute_of_day(shift.start), minute_of_day(shift.end)


def shifts_in_force(shifts: ShiftsFile, local: datetime) -> list[str]:
    """Codes of every shift in force at ``local`` (a wall-clock time), most recent start first."""
    minute = local.hour * 60 + local.minute
    found = [
        (code, _minutes_since_start(minute_of_day(s.start), minute), index)
        for index, (code, s) in enumerate(shifts.shifts.items())
        if _contains(minute_of_day(s.start), minute_of_day(s.end), minute)
    ]
    found.sort(key=lambda item: (item[1], item[2]))
    return [code for code, _since, _index in found]


def shift_for_call(
    shifts: ShiftsFile, local: datetime, agent_shift: str | None = None
) -> str | None:
    """The one shift a call arriving at ``local`` is attributed to (rule in the module doc)."""
    in_force = shifts_in_force(shifts, local)
    if agent_shift and agent_shift in in_force:
        return agent_shift
    return in_force[0] if in_force else None


def on_shift(shifts: ShiftsFile, code: str | None, local: datetime) -> bool:
    start, end = shift_window(shifts, code)
    if start < 0:
        return True
    return _contains(start, end, local.hour * 60 + local.minute)


def minimum_agents(shifts: ShiftsFile, local: datetime) -> int:
    """The staffing minimum at ``local`` (the largest of the [[minimums]] covering it; 0: none)."""
    minute = local.hour * 60 + local.minute
    covering = [
        m.agents
        for m in shifts.minimums
        if _contains(minute_of_day(m.start), minute_of_day(m.end), minute)
    ]
    return max(covering, default=0)


@dataclass(frozen=True)
class Staffing:
    at: str
    shifts_in_force: list[str]
    minimum: int
    logged_in: int
    available: int  # logged in and not in "not ready"
    alert: bool
    ready: int = 0  # waiting for a call now
    scheduled: int | None = None  # active agents whose own shift is in force (None: not counted)

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at,
            "shifts_in_force": self.shifts_in_force,
            "minimum": self.minimum,
            "logged_in": self.logged_in,
            "available": self.available,
            "ready": self.ready,
            "scheduled": self.scheduled,
            "alert": self.alert,
            "message": (
                f"在线坐席 {self.logged_in} 人，低于最低要求 {self.minimum} 人 / "
                f"{self.logged_in} agents online, below the minimum of {self.minimum}"
                if self.alert
                else ""
            ),
        }


def staffing(
    shifts: ShiftsFile,
    local: datetime,
    *,
    logged_in: int,
    available: int,
    ready: int = 0,
    scheduled: int | None = None,
) -> Staffing:
    minimum = minimum_agents(shifts, local)
    return Staffing(
        at=local.isoformat(),
        shifts_in_force=shifts_in_force(shifts, local),
        minimum=minimum,
        logged_in=logged_in,
        available=available,
        alert=logged_in < minimum,
        ready=ready,
        scheduled=scheduled,
    )
