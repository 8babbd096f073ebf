"""``callcenter.auth`` names the two columns of cti's ``agents`` table it joins (the kernel
imports no domain): they must be the model's."""

from __future__ import annotations

from callcenter import auth
from cti.models import Agent


def test_the_agents_columns_auth_names_are_the_models() -> None:
    model = Agent.__table__
    assert auth._AGENTS.name == Agent.__tablename__
    for col in auth._AGENTS.columns:
        assert col.name in model.c, f"agents.{col.name}"
    assert {fk.column.table.name for fk in model.c.user_id.foreign_keys} == {"users"}
