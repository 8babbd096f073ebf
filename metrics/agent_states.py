"""Agent states as the figures see them: which states count as busy or available, each
agent's current state, and the agent tracker turning state changes into time spent in each
state (``state_seconds:<state>`` counters), split by minute (pure, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callcenter.streams import AgentEventType, CallEvent
from metrics.counters import STATE_PREFIX
from metrics.effects import Delta
from metrics.metric_config import MetricConfig
from metrics.time_windows import parse_at, split_by_minute

# Agent states as cti/ names them. Busy = handling a call; available = could take one.
BUSY_STATES = ("on_call", "on_hold", "wrap_up")
AVAILABLE_STATES = ("ready", "reserved")
AGENT_STATES = ("ready", "not_ready", "reserved", "on_call", "on_hold", "wrap_up")


@dataclass
class AgentState:
    agent: str
    state: str = "logged_out"
    since: datetime | None = None
    reason: str | None = None
    queues: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "agent": self.agent,
                "state": self.state,
                "since": self.since.isoformat() if self.since else None,
                "reason": self.reason,
                "queues": self.queues,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> AgentState:
        raw = json.loads(text)
        return cls(
            agent=raw["agent"],
            state=raw["state"],
            since=parse_at(raw["since"]) if raw.get("since") else None,
            reason=raw.get("reason"),
            queues=list(raw.get("queues") or []),
        )


def _queue_list(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        return sorted(str(k) for k in value)
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return None


class AgentTracker:
    """Agent state transitions → time spent in each state, split by minute (pure)."""

    def __init__(self, config: MetricConfig, team_of: Mapping[str, str | None] | None = None):
        self.config = config
        self.team_of = team_of if team_of is not None else {}

    def apply(self, state: AgentState, event: CallEvent) -> list[Delta]:
        at = parse_at(event.at)
        data = event.data
        deltas: list[Delta] = []
        queues = _queue_list(data.get("queues"))
        if queues is not None:
            state.queues = queues
        if event.type == AgentEventType.state_changed:
            deltas = self.close_interval(state, at)
            state.state = str(data.get("to") or "not_ready")
            state.reason = str(data["reason"]) if data.get("reason") else None
            state.since = at
        elif event.type == AgentEventType.logged_out:
            deltas = self.close_interval(state, at)
            state.state, state.reason, state.since = "logged_out", data.get("reason"), at
        elif event.type == AgentEventType.logged_in and state.state == "logged_out":
            state.since = at
        return deltas

    def close_interval(self, state: AgentState, until: datetime) -> list[Delta]:
        if state.since is None or state.state == "logged_out":
            return []
        team = self.team_of.get(state.agent)
        return [
            Delta(self.config.cohort(piece_start, None, team, state.agent), counter, seconds)
            for piece_start, seconds in split_by_minute(state.since, until)
            for counter in (STATE_PREFIX + state.state,)
        ]
