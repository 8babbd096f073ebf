"""What the definitions need from the configuration, and the cohort it puts each instant in.

Every figure of a queue leg is attributed to the *cohort* of the instant it entered the queue:
its local day, the shift in force then, and its minute (for rolling windows). So a call that
queued at 19:59:50 and was answered at 20:00:10 belongs to the day shift, and an answer rate
never exceeds 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from config.schemas import QueuesFile, ShiftsFile
from metrics.alerts import AlertPolicy
from metrics.time_windows import NO_SHIFT, occurrence_key, shifts_in_force

NO_TEAM = "none"  # the team label of an increment with no team (no agent, or a teamless one)


@dataclass(frozen=True)
class Cohort:
    """Where a counter increment belongs: its time, queue, shift, team and agent."""

    at: datetime  # UTC
    queue: str | None
    shift: str  # the one shift it is attributed to (shift_in_force)
    day: date  # local calendar day
    # Every shift occurrence whose hours cover it: per-shift figures are "what happened during
    # the shift's hours", so overlapping shifts (day and mid at 10:00) both include it.
    occurrences: tuple[tuple[str, str], ...]
    team: str | None = None
    agent: str | None = None


@dataclass(frozen=True)
class MetricConfig:
    """What the definitions need from the configuration."""

    tz: ZoneInfo
    shifts: ShiftsFile
    short_abandon_seconds: int
    service_level_seconds: Mapping[str, int]
    long_wait_alert_seconds: Mapping[str, int]
    answer_rate_target: float
    service_level_target: float = 0.8
    alert_policy: AlertPolicy = field(default_factory=AlertPolicy)
    default_service_level_seconds: int = 20
    _cache: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_files(cls, queues: QueuesFile, shifts: ShiftsFile, timezone: str) -> MetricConfig:
        return cls(
            tz=ZoneInfo(timezone),
            shifts=shifts,
            short_abandon_seconds=queues.short_abandon_seconds,
            service_level_seconds={c: q.service_level_seconds for c, q in queues.queues.items()},
            long_wait_alert_seconds={
                c: q.long_wait_alert_seconds for c, q in queues.queues.items()
            },
            answer_rate_target=shifts.answer_rate_target,
            service_level_target=shifts.service_level_target,
            alert_policy=AlertPolicy(
                min_resolved_calls=shifts.alerts.min_resolved_calls,
                raise_after_seconds=shifts.alerts.raise_after_seconds,
                clear_after_seconds=shifts.alerts.clear_after_seconds,
            ),
        )

    def sl_seconds(self, queue: str) -> int:
        return self.service_level_seconds.get(queue, self.default_service_level_seconds)

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.tz)

    def cohort(
        self, at: datetime, queue: str | None, team: str | None = None, agent: str | None = None
    ) -> Cohort:
        shift, day, occurrences = self._time_cohort(int(at.timestamp() // 60))
        return Cohort(at, queue, shift, day, occurrences, team, agent)

    def _time_cohort(self, minute: int) -> tuple[str, date, tuple[tuple[str, str], ...]]:
        """Shift, day and occurrences only depend on the minute: cached (hot path)."""
        cache: dict[int, tuple[str, date, tuple[tuple[str, str], ...]]] = self._cache
        hit = cache.get(minute)
        if hit is None:
            local = datetime.fromtimestamp(minute * 60, UTC).astimezone(self.tz)
            in_force = shifts_in_force(self.shifts, local)
            hit = (
                in_force[0] if in_force else NO_SHIFT,
                local.date(),
                tuple((code, occurrence_key(self.shifts, code, local)) for code in in_force),
            )
            if len(cache) > 100_000:
                cache.clear()
            cache[minute] = hit
        return hit
