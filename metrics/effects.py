"""What one event adds to the figures: counter increments with their cohort, histogram
observations, and changes to the calls waiting in each queue (all plain, frozen data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from metrics.metric_config import Cohort


@dataclass(frozen=True)
class Delta:
    cohort: Cohort
    counter: str
    value: float


@dataclass(frozen=True)
class Observation:
    """One histogram observation (seconds) for the Prometheus histograms."""

    metric: str  # "wait" or "handle"
    queue: str
    value: float


@dataclass(frozen=True)
class WaitingChange:
    queue: str
    call_id: str
    entered_at: datetime | None  # None: left the queue


@dataclass
class Effects:
    deltas: list[Delta] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    waiting: list[WaitingChange] = field(default_factory=list)

    def extend(self, other: Effects) -> None:
        self.deltas += other.deltas
        self.observations += other.observations
        self.waiting += other.waiting
