"""The metric engine's read side: the live snapshot (wallboard JSON, Prometheus) from the Redis
state, per window (today, the shift in force, the last 15 and 60 minutes, each shift's latest
occurrence).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from callcenter.context import AppContext
from metrics.agent_states import AgentState
from metrics.counters import CALL_COUNTERS, STATE_PREFIX, add_into
from metrics.figures import figures
from metrics.live_alerts import alerts
from metrics.live_config import TEAM_NAMES, TEAMS, load_teams, metric_config, team_names
from metrics.live_keys import EDGE_DIM, MetricKeys
from metrics.metric_config import NO_TEAM, MetricConfig
from metrics.time_windows import NO_SHIFT, shift_in_force, shift_occurrence

log = logging.getLogger(__name__)

WINDOWS = ("today", "shift", "15m", "60m")
ROLLING = {"15m": 15, "60m": 60}


@dataclass(frozen=True)
class Window:
    name: str
    start: datetime  # UTC, inclusive
    keys: list[str]  # hashes to sum
    shift: str | None  # only fields of this shift (None: all)


def windows(config: MetricConfig, mk: MetricKeys, now: datetime) -> dict[str, Window]:
    local = config.local(now)
    current = shift_in_force(config.shifts, local)
    midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=config.tz)
    result = {
        "today": Window(
            "today", midnight.astimezone(UTC), [mk.day(local.date().isoformat())], None
        ),
    }
    # The current shift: everything since the start of the occurrence of the shift in force.
    occurrence = shift_occurrence(config.shifts, current, local)
    if occurrence:
        occ_key = f"{current}:{occurrence[0].date().isoformat()}"
        result["shift"] = Window("shift", occurrence[0].astimezone(UTC), [mk.occ(occ_key)], current)
    else:  # no shift covers this moment: an empty window
        result["shift"] = Window("shift", now, [], NO_SHIFT)
    this_minute = int(now.timestamp() // 60)
    for name, minutes in ROLLING.items():
        first = this_minute - minutes + 1
        result[name] = Window(
            name,
            datetime.fromtimestamp(first * 60, UTC),
            [mk.minute(m) for m in range(first, this_minute + 1)],
            None,
        )
    return result


def parse_fields(
    raw: Mapping[str, str], shift: str | None
) -> dict[str, dict[str, dict[str, float]]]:
    """``{dim: {shift: {counter: value}}}`` from a metrics hash."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for name, value in raw.items():
        dim, _, rest = name.partition("|")
        field_shift, _, counter = rest.partition("|")
        if shift is not None and field_shift != shift:
            continue
        bucket = out[dim][field_shift]
        bucket[counter] = bucket.get(counter, 0.0) + float(value)
    return out


def collapse(
    parsed: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, float]]:
    """Sum over shifts: ``{dim: {counter: value}}``."""
    result: dict[str, dict[str, float]] = {}
    for dim, by_shift in parsed.items():
        total: dict[str, float] = {}
        for counters in by_shift.values():
            add_into(total, counters)
        result[dim] = total
    return result


class LiveReader:
    """Builds the live snapshot (wallboard JSON, Prometheus) from the Redis state."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.redis: Any = ctx.redis
        self.mk = MetricKeys(ctx.keys)
        self.config = metric_config(ctx)

    def agents(self) -> dict[str, AgentState]:
        raw = self.redis.hgetall(self.mk("agents"))
        return {k: AgentState.from_json(v) for k, v in raw.items()}

    def queues(self) -> list[str]:
        configured = list(self.ctx.config.queues.queues)
        seen = sorted(set(self.redis.smembers(self.mk("queues"))) - set(configured))
        return configured + seen

    def totals(self) -> dict[str, dict[str, dict[str, float]]]:
        return parse_fields(self.redis.hgetall(self.mk("total")), None)

    def histogram(self, metric: str) -> dict[str, dict[str, float]]:
        raw: Mapping[str, str] = self.redis.hgetall(self.mk(f"hist:{metric}"))
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for name, value in raw.items():
            queue, _, part = name.rpartition("|")
            out[queue][part] = float(value)
        return out

    def snapshot(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        config = self.config
        queues = self.queues()
        wins = windows(config, self.mk, now)
        local = config.local(now)
        for code in config.shifts.shifts:  # each shift's latest occurrence, for "per shift"
            occurrence = shift_occurrence(config.shifts, code, local)
            if occurrence:
                key = f"{code}:{occurrence[0].date().isoformat()}"
                wins[f"shift:{code}"] = Window(
                    key, occurrence[0].astimezone(UTC), [self.mk.occ(key)], code
                )
        pipe = self.redis.pipeline(transaction=False)
        order: list[tuple[str, Window]] = []
        for window in wins.values():
            for key in window.keys:
                pipe.hgetall(key)
                order.append((key, window))
        for queue in queues:
            pipe.zrange(self.mk.waiting(queue), 0, 0, withscores=True)
            pipe.zcard(self.mk.waiting(queue))
        pipe.hgetall(self.mk("agents"))
        pipe.get(self.mk("version"))
        results = pipe.execute()
        by_window: dict[str, dict[str, dict[str, float]]] = {w.name: {} for w in wins.values()}
        for (_key, window), raw in zip(order, results[: len(order)], strict=True):
            for dim, counters in collapse(parse_fields(raw, window.shift)).items():
                add_into(by_window[window.name].setdefault(dim, {}), counters)
        rest = results[len(order) :]
        waiting: dict[str, tuple[int, float | None]] = {}
        for index, queue in enumerate(queues):
            first, count = rest[2 * index], rest[2 * index + 1]
            longest = max(now.timestamp() - first[0][1], 0.0) if first else None
            waiting[queue] = (int(count), longest)
        agent_states = {
            k: AgentState.from_json(v) for k, v in (rest[2 * len(queues)] or {}).items()
        }
        version = int(rest[2 * len(queues) + 1] or 0)
        return self._assemble(now, queues, wins, by_window, waiting, agent_states, version)

    def _open_state_seconds(
        self, agents: Mapping[str, AgentState], start: datetime, now: datetime, team: str | None
    ) -> dict[str, float]:
        """Time in the current state not yet closed by a transition, inside [start, now)."""
        totals: dict[str, float] = {}
        for agent in agents.values():
            if agent.state == "logged_out" or agent.since is None:
                continue
            if team is not None and (self.team_of(agent.agent) or NO_TEAM) != team:
                continue
            begin = max(agent.since, start)
            if begin < now:
                name = STATE_PREFIX + agent.state
                totals[name] = totals.get(name, 0.0) + (now - begin).total_seconds()
        return totals

    def team_name(self, team: str) -> str:
        names = self.ctx.services.get(TEAM_NAMES)
        if names is None or team not in names:
            try:
                names = team_names(self.ctx)
            except Exception:  # boundary: SQL down must not stop the wallboard
                log.exception("metrics: could not load team names")
                names = {}
            self.ctx.services.set(TEAM_NAMES, names)
        return str(names.get(team, team))

    def team_of(self, agent: str) -> str | None:
        loaded = self.ctx.services.get(TEAMS)
        if loaded is None or time.monotonic() - loaded[0] > 60:
            try:
                teams = load_teams(self.ctx)
            except Exception:  # boundary: SQL down must not stop the wallboard
                log.exception("metrics: could not load agent teams")
                teams = {}
            loaded = self.ctx.services.set(TEAMS, (time.monotonic(), teams))
        value = loaded[1].get(agent)
        return str(value) if value is not None else None

    def _assemble(
        self,
        now: datetime,
        queues: list[str],
        wins: Mapping[str, Window],
        by_window: Mapping[str, Mapping[str, Mapping[str, float]]],
        waiting: Mapping[str, tuple[int, float | None]],
        agents: Mapping[str, AgentState],
        version: int,
    ) -> dict[str, Any]:
        config = self.config
        local = config.local(now)
        agents_by_queue, center_agents = _agent_counts(queues, agents)
        queue_figures = {
            queue: self._queue_entry(queue, waiting, agents_by_queue, by_window) for queue in queues
        }
        center_windows, teams = self._center_and_teams(now, wins, by_window, agents)
        total_waiting = sum(c for c, _ in waiting.values())
        longest_all = max((w for _, w in waiting.values() if w is not None), default=None)
        snapshot: dict[str, Any] = {
            "at": now.isoformat(),
            "local_time": local.isoformat(),
            "timezone": str(config.tz),
            "version": version,
            "answer_rate_target": config.answer_rate_target,
            "service_level_target": config.service_level_target,
            "current_shift": shift_in_force(config.shifts, local),
            "windows": {n: {"start": wins[n].start.isoformat()} for n in WINDOWS},
            "center": {
                "waiting": total_waiting,
                "longest_wait_seconds": longest_all,
                "agents": center_agents,
                "logged_in": sum(center_agents.values()),
                "windows": center_windows,
            },
            "queues": queue_figures,
            "teams": teams,
        }
        snapshot["shifts"] = _shift_figures(wins, by_window, queues)
        snapshot["alerts"] = alerts(self.ctx, snapshot, local)
        return snapshot

    def _queue_entry(
        self,
        queue: str,
        waiting: Mapping[str, tuple[int, float | None]],
        agents_by_queue: Mapping[str, dict[str, int]],
        by_window: Mapping[str, Mapping[str, Mapping[str, float]]],
    ) -> dict[str, Any]:
        config = self.config
        cfg_queues = self.ctx.config.queues.queues
        count, longest = waiting.get(queue, (0, None))
        return {
            "name": {
                "zh-CN": cfg_queues[queue].name.zh if queue in cfg_queues else queue,
                "en": cfg_queues[queue].name.en if queue in cfg_queues else queue,
            },
            "waiting": count,
            "longest_wait_seconds": longest,
            "long_wait_alert_seconds": config.long_wait_alert_seconds.get(queue),
            "service_level_seconds": config.sl_seconds(queue),
            "agents": agents_by_queue.get(queue, {}),
            "windows": {name: figures(by_window[name].get(f"q:{queue}", {})) for name in WINDOWS},
        }

    def _center_and_teams(
        self,
        now: datetime,
        wins: Mapping[str, Window],
        by_window: Mapping[str, Mapping[str, Mapping[str, float]]],
        agents: Mapping[str, AgentState],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The center's figures and each team's, per window (states still open included)."""
        center_windows: dict[str, Any] = {}
        team_dims = sorted(
            {dim for counters in by_window.values() for dim in counters if dim.startswith("t:")}
            | {
                f"t:{self.team_of(a) or NO_TEAM}"
                for a, s in agents.items()
                if s.state != "logged_out"
            }
        )
        teams: dict[str, Any] = {}
        for name in WINDOWS:
            window = wins[name]
            counters = _center_counters(by_window[name], call_counters_only=True)
            add_into(counters, self._open_state_seconds(agents, window.start, now, None))
            center_windows[name] = figures(counters)
            for dim in team_dims:
                team = dim[2:]
                team_counters = dict(by_window[name].get(dim, {}))
                add_into(team_counters, self._open_state_seconds(agents, window.start, now, team))
                entry = teams.setdefault(team, {"name": self.team_name(team), "windows": {}})
                entry["windows"][name] = figures(team_counters)
        return center_windows, teams


def _agent_counts(
    queues: list[str], agents: Mapping[str, AgentState]
) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Logged-in agents per state: per queue they serve, and for the center."""
    agents_by_queue: dict[str, dict[str, int]] = {q: {} for q in queues}
    center_agents: dict[str, int] = {}
    for agent in agents.values():
        if agent.state == "logged_out":
            continue
        center_agents[agent.state] = center_agents.get(agent.state, 0) + 1
        for queue in agent.queues:
            counts = agents_by_queue.setdefault(queue, {})
            counts[agent.state] = counts.get(agent.state, 0) + 1
    return agents_by_queue, center_agents


def _center_counters(
    by_dim: Mapping[str, Mapping[str, float]], *, call_counters_only: bool
) -> dict[str, float]:
    """The center's counters summed over dimensions: calls from the queues (only the call
    counters, when ``call_counters_only``) and the edge, agent states from the teams."""
    counters: dict[str, float] = {}
    for dim, values in by_dim.items():
        if dim.startswith("q:"):
            add_into(
                counters,
                {k: v for k, v in values.items() if k in CALL_COUNTERS}
                if call_counters_only
                else values,
            )
        elif dim == EDGE_DIM:
            add_into(counters, values)
        else:
            add_into(counters, {k: v for k, v in values.items() if k.startswith(STATE_PREFIX)})
    return counters


def _shift_figures(
    wins: Mapping[str, Window],
    by_window: Mapping[str, Mapping[str, Mapping[str, float]]],
    queues: list[str],
) -> dict[str, Any]:
    """Each shift's latest occurrence: the center's and every queue's figures."""
    shifts: dict[str, Any] = {}
    for name, window in wins.items():
        if not name.startswith("shift:"):
            continue
        shift_counters = by_window[window.name]
        shifts[name.split(":", 1)[1]] = {
            "occurrence": window.name,
            "start": window.start.isoformat(),
            "center": figures(_center_counters(shift_counters, call_counters_only=False)),
            "queues": {q: figures(shift_counters.get(f"q:{q}", {})) for q in queues},
        }
    return shifts
