"""When a rate alert is raised and when it is cleared: a pure state machine, no I/O.

A shift lead must be able to act on an alert, so a rate alert (the answer rate and the
service level, each against its target) follows the condition with hysteresis instead of
every snapshot:

- it is judged only on *resolved* calls (answered, abandoned, failed): a caller still waiting
  is not yet a success or a failure, so one caller queued for a second cannot make the
  center "50 %";
- it is not judged at all until the shift has ``min_resolved_calls`` resolved calls;
- it is raised only after the rate has stayed under the target for ``raise_after_seconds``,
  and cleared only after it has stayed at or over it for ``clear_after_seconds``.

The state of each alert (``active`` and since when its condition has disagreed with that) is
kept by the caller (in Redis, so every API process shows the same alerts).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlertPolicy:
    min_resolved_calls: int = 10
    raise_after_seconds: float = 60.0
    clear_after_seconds: float = 120.0


@dataclass(frozen=True)
class AlertState:
    """``active``: the alert is shown. ``since``: when the condition started to disagree with
    ``active`` (None while it agrees). ``period``: the shift occurrence it judges; a new shift
    starts from a clear state."""

    active: bool = False
    since: float | None = None
    period: str = ""

    def to_text(self) -> str:
        since = "" if self.since is None else repr(self.since)
        return f"{int(self.active)}|{since}|{self.period}"

    @classmethod
    def from_text(cls, text: str | None, period: str) -> AlertState:
        """The stored state, or a clear one when none is stored or it judged another period."""
        if not text:
            return cls(period=period)
        active, since, stored_period = [*text.split("|", 2), "", ""][:3]
        if stored_period != period:
            return cls(period=period)
        return cls(active=active == "1", since=float(since) if since else None, period=period)


def rate_breached(rate: float | None, resolved: int, target: float, policy: AlertPolicy) -> bool:
    """The condition: enough resolved calls, and their rate (answer rate or service level)
    under the target."""
    return rate is not None and resolved >= policy.min_resolved_calls and rate < target


def step(state: AlertState, breached: bool, now: float, policy: AlertPolicy) -> AlertState:
    """The alert's state after observing the condition at ``now`` (epoch seconds).

    Observations may come from several processes slightly out of order: a ``now`` earlier
    than ``since`` simply does not complete a delay.
    """
    if breached == state.active:
        return state if state.since is None else AlertState(state.active, None, state.period)
    since = now if state.since is None else state.since
    delay = policy.clear_after_seconds if state.active else policy.raise_after_seconds
    if now - since >= delay:
        return AlertState(active=breached, since=None, period=state.period)
    return AlertState(active=state.active, since=since, period=state.period)
