"""Agents made for a benchmark: ``bench3000``… with 1001's password, in the general queue at
skill 5, on no shift (so a bench can log in as many desktops as it needs)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.models import Role, User
from cti.models import Agent, AgentQueue


def add_bench_agents(session: Session, count: int) -> list[tuple[User, Agent]]:
    """``count`` new users with their agent rows (flushed: their ids are set)."""
    template = session.scalar(select(User).where(User.username == "1001"))
    assert template is not None, "the demo center is not seeded (no user 1001)"
    made = []
    for n in range(count):
        extension = str(3000 + n)
        user = User(
            username=f"bench{extension}",
            display_name=f"bench {extension}",
            password_hash=template.password_hash,
            role=Role.agent,
        )
        session.add(user)
        session.flush()
        agent = Agent(user_id=user.id, extension=extension, sip_ha1="-")
        session.add(agent)
        session.flush()
        session.add(AgentQueue(agent_id=agent.id, queue_code="general", skill_level=5))
        made.append((user, agent))
    return made
