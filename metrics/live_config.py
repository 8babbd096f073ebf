"""What the live figures are computed against: the metric definitions of the configuration in
force, and the agents' teams and team names (SQL, owned by cti).
"""

from __future__ import annotations

from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.service_keys import Service
from config.loader import CenterConfig
from metrics.metric_config import MetricConfig

METRIC_CONFIG: Service[MetricConfig] = Service("metric definitions")
TEAM_NAMES: Service[dict[str, str]] = Service("team names")
TEAMS: Service[tuple[float, dict[str, str | None]]] = Service("agents' teams (loaded at, teams)")


def metric_config(ctx: AppContext) -> MetricConfig:
    """The metric definitions of the configuration in force (made again after a change)."""
    cached = ctx.services.get(METRIC_CONFIG)
    if cached is not None:
        return cached

    def forget(_config: CenterConfig) -> None:
        ctx.services.pop(METRIC_CONFIG)

    if not ctx.services.get(METRIC_CONFIG_FOLLOWS):
        ctx.config_listeners.append(forget)
        ctx.services.set(METRIC_CONFIG_FOLLOWS, True)
    built = MetricConfig.from_files(ctx.config.queues, ctx.config.shifts, ctx.settings.timezone)
    return ctx.services.set(METRIC_CONFIG, built)


METRIC_CONFIG_FOLLOWS: Service[bool] = Service("metric definitions follow config changes")


def team_names(ctx: AppContext) -> dict[str, str]:
    """Team id → name, from SQL."""
    from cti.models import Team

    with ctx.sessions() as session:
        return {str(i): name for i, name in session.execute(select(Team.id, Team.name)).all()}


def load_teams(ctx: AppContext) -> dict[str, str | None]:
    """Agent id → team id, from SQL (cti owns agents)."""
    from cti.models import Agent

    with ctx.sessions() as session:
        rows = session.execute(select(Agent.id, Agent.team_id)).all()
    return {str(agent): (str(team) if team is not None else None) for agent, team in rows}
