"""The agent state machine: every named transition, illegal ones refused with a clear message,
each transition an event on agent_events and a row in agent_state_changes."""

from __future__ import annotations

import json
from typing import cast

import pytest
from sqlalchemy import select

from callcenter.context import AppContext
from callcenter.errors import Conflict, InvalidInput
from cti import services
from cti.models import AgentStateChange
from cti.router import Router
from cti.routing import Routing
from cti.state import TRANSITIONS, AgentState, check, lua_rules, reason_for
from tests.cti.conftest import EngineSide, agent_ids

S = AgentState


@pytest.mark.parametrize(
    ("name", "source", "target"),
    [
        ("login", S.logged_out, S.not_ready),
        ("ready", S.not_ready, S.ready),
        ("ready", S.wrap_up, S.ready),
        ("not_ready", S.ready, S.not_ready),
        ("not_ready", S.not_ready, S.not_ready),
        ("reserve", S.ready, S.reserved),
        ("answer", S.reserved, S.on_call),
        ("miss", S.reserved, S.not_ready),
        ("cancel_offer", S.reserved, S.ready),
        ("hold", S.on_call, S.on_hold),
        ("unhold", S.on_hold, S.on_call),
        ("end_call", S.on_call, S.wrap_up),
        ("end_call", S.on_hold, S.wrap_up),
        ("end_wrap_up", S.wrap_up, S.ready),
        ("logout", S.ready, S.logged_out),
        ("logout", S.wrap_up, S.logged_out),
        ("originate", S.not_ready, S.reserved),
        ("end_consult", S.on_call, S.ready),
        ("end_consult", S.on_hold, S.ready),
    ],
)
def test_legal_transitions(name: str, source: AgentState, target: AgentState) -> None:
    assert check(name, source) is target


def test_every_illegal_transition_is_a_conflict_naming_state_and_transition() -> None:
    illegal = [(n, s) for n, t in TRANSITIONS.items() for s in AgentState if s not in t.sources]
    assert len(illegal) > 50
    for name, source in illegal:
        with pytest.raises(Conflict) as caught:
            check(name, source)
        assert caught.value.details["state"] == source
        assert caught.value.details["transition"] == name
        assert name.replace("_", " ") in caught.value.message


def test_unknown_transition_and_reason_are_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        check("teleport", S.ready)
    with pytest.raises(InvalidInput, match="reason"):
        reason_for("not_ready", None)
    with pytest.raises(InvalidInput, match="nap"):
        reason_for("not_ready", "nap")
    with pytest.raises(InvalidInput):
        reason_for("not_ready", "missed")  # set by the system only
    assert reason_for("not_ready", "break") == "break"


def test_lua_rules_are_the_python_table() -> None:
    text = json.loads(lua_rules())
    assert text.startswith(";") and text.endswith(";")
    rendered = {tuple(pair.replace(">", ":").split(":")) for pair in text.strip(";").split(";")}
    expected = {
        (name, str(source), str(t.target))
        for name, t in TRANSITIONS.items()
        for source in t.sources
    }
    assert rendered == expected


def test_the_script_refuses_what_the_table_refuses(routing: Routing) -> None:
    """The Lua lookup of the rendered rules agrees with check() for every name and state."""
    for name in TRANSITIONS:
        for state in S:
            args = {"agent": "9999", "transition": name, "actor": "test", "reason": "break"}
            routing.redis.hset(routing.key("agent:9999"), "state", str(state))
            allowed = state in TRANSITIONS[name].sources
            try:
                routing._run("transition", **args)
            except Conflict:
                assert not allowed, (name, state)
            else:
                assert allowed or (name == "ready" and state == S.ready), (name, state)


def test_transitions_in_redis_emit_events_and_sql_rows(
    ctx: AppContext, routing: Routing, router: Router
) -> None:
    agent = agent_ids(ctx)["1001"]
    services.login(ctx, agent_id=agent, actor="1001")
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="1001")
    services.set_state(ctx, agent_id=agent, state="not_ready", reason="meal", actor="1001")
    services.logout(ctx, agent_id=agent, actor="1001")
    router.drain()
    entries = cast(list[tuple[str, dict[str, str]]], ctx.redis.xrange(ctx.keys.agent_events))
    changes = [json.loads(f["data"]) for _id, f in entries if f["type"] == "agent_state_changed"]
    assert [(c["from"], c["to"], c["reason"]) for c in changes] == [
        ("logged_out", "not_ready", "login"),
        ("not_ready", "ready", ""),
        ("ready", "not_ready", "meal"),
        ("not_ready", "logged_out", "logout"),
    ]
    assert all(f["at"] for _id, f in entries)
    types = [f["type"] for _id, f in entries]
    assert types == [
        "agent_state_changed",
        "agent_logged_in",
        "agent_state_changed",
        "agent_state_changed",
        "agent_state_changed",
        "agent_logged_out",
    ]
    with ctx.sessions() as session:
        rows = session.scalars(
            select(AgentStateChange)
            .where(AgentStateChange.agent_id == agent)
            .order_by(AgentStateChange.id)
        ).all()
    assert [(r.from_state, r.to_state, r.reason, r.actor) for r in rows] == [
        ("logged_out", "not_ready", "login", "1001"),
        ("not_ready", "ready", None, "1001"),
        ("ready", "not_ready", "meal", "1001"),
        ("not_ready", "logged_out", "logout", "1001"),
    ]
    # A replay of the same stream entries adds nothing.
    router._log_states(entries)
    with ctx.sessions() as session:
        again = session.scalars(
            select(AgentStateChange).where(AgentStateChange.agent_id == agent)
        ).all()
    assert len(again) == 4


def test_illegal_transitions_through_routing_change_nothing(
    ctx: AppContext, routing: Routing, router: Router, engine: EngineSide
) -> None:
    agent = agent_ids(ctx)["1001"]
    with pytest.raises(Conflict, match="logged out"):
        routing.transition(agent, "ready", actor="t")
    services.login(ctx, agent_id=agent, actor="t")
    with pytest.raises(Conflict):
        routing.login(
            agent,
            extension="1001",
            uri="sip:x",
            queues={},
            shift=None,
            shift_window=(-1, -1),
            actor="t",
        )
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="t")
    engine.queue("c-1", "repair")
    router.drain()
    assert routing.agent(agent)["state"] == "reserved"
    # Ringing: cannot log out, cannot go ready again by transition, cannot end a wrap-up.
    with pytest.raises(Conflict, match="ringing"):
        routing.logout(agent, actor="t")
    with pytest.raises(Conflict):
        routing.transition(agent, "end_wrap_up", actor="t")
    with pytest.raises(Conflict):
        services.hangup(ctx, agent_id=agent)  # no call in progress yet
    assert routing.agent(agent)["state"] == "reserved"
    engine.publish("agent_answered", "c-1", agent_id=agent)
    router.drain()
    assert routing.agent(agent)["state"] == "on_call"
    with pytest.raises(Conflict):
        services.set_state(ctx, agent_id=agent, state="not_ready", reason="break", actor="t")
    engine.publish("held", "c-1")
    router.drain()
    assert routing.agent(agent)["state"] == "on_hold"
    engine.publish("unheld", "c-1")
    engine.publish("call_ended", "c-1", reason="caller_hung_up", outcome="answered")
    router.drain()
    snapshot = routing.agent(agent)
    assert snapshot["state"] == "wrap_up" and snapshot["wrap_up_until"]
    services.wrap_up(
        ctx,
        agent_id=agent,
        action="end",
        disposition="resolved",
        seconds=None,
        then_state="ready",
        reason=None,
        actor="t",
    )
    assert routing.agent(agent)["state"] == "ready"
    ended = engine.routing_events("wrap_up_ended")
    assert ended[-1].data["disposition"] == "resolved" and ended[-1].call_id == "c-1"


def test_state_log_skips_a_row_it_cannot_store_and_keeps_the_rest(
    ctx: AppContext, router: Router
) -> None:
    agent = agent_ids(ctx)["1002"]
    services.login(ctx, agent_id=agent, actor="1002")
    bogus = {
        "type": "agent_state_changed",
        "agent_id": "99999",  # no such agent in SQL
        "call_id": "",
        "slot": "",
        "node": "routing",
        "at": "2026-11-30T02:00:00+00:00",
        "data": json.dumps({"agent_id": 99999, "from": "ready", "to": "not_ready"}),
    }
    ctx.redis.xadd(ctx.keys.agent_events, bogus)  # type: ignore[arg-type]
    services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="1002")
    router.drain()
    with ctx.sessions() as session:
        rows = session.scalars(select(AgentStateChange).order_by(AgentStateChange.id)).all()
    assert [(r.agent_id, r.to_state) for r in rows] == [(agent, "not_ready"), (agent, "ready")]
    assert ctx.redis.xpending(ctx.keys.agent_events, "cti-log")["pending"] == 0
