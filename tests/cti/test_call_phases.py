"""A call's phase table (callcenter/call_phases.py): the rendered Lua reads the same table as
Python, and routing's writes of a call's phase are the table's moves."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter import call_phases
from callcenter.call_phases import ABSENT, EVENT_PHASE, MOVES, CallPhase, after, reachable
from callcenter.streams import EventType
from cti.router import Router
from cti.routing import SCRIPT, Routing
from tests.cti.conftest import EngineSide

P = CallPhase
PHASES = [ABSENT, *(str(p) for p in CallPhase)]


def test_the_rendered_rules_are_the_python_table() -> None:
    text = json.loads(call_phases.lua_rules())
    assert text.startswith(";") and text.endswith(";")
    rendered = set()
    for pair in text.strip(";").split(";"):
        name, rest = pair.split(":", 1)
        source, target = rest.split(">")
        rendered.add((name, source, target))
    expected = {(m.name, s, str(m.target)) for m in MOVES.values() for s in m.sources}
    assert rendered == expected
    assert "__CALL_MOVES__" not in SCRIPT and call_phases.lua_rules() in SCRIPT


def test_every_move_has_one_target_and_sources_the_routing_hash_can_hold() -> None:
    allowed = {ABSENT, *(str(p) for p in call_phases.ROUTING_PHASES)}
    for move in MOVES.values():
        assert move.sources and move.sources <= allowed, move
        assert move.target in call_phases.ROUTING_PHASES, move


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.one_of(st.sampled_from(sorted(MOVES)), st.sampled_from(["en", "end_", "answer_x"])),
    source=st.one_of(st.sampled_from(PHASES), st.text("abcdefgh_", max_size=8)),
)
def test_the_script_reads_the_table_as_python_does(
    routing: Routing, name: str, source: str
) -> None:
    """Property: for any move name and phase (real or not), the Lua lookup in Redis gives the
    phase Python's ``after`` gives, or none where Python refuses."""
    answer = routing._run("call_rule", move=name, **{"from": source})
    expected = after(name, source) if name in MOVES else None
    assert answer.get("to") == (str(expected) if expected else None), (name, source)


def test_every_pair_of_the_table_in_the_script(routing: Routing) -> None:
    for name in MOVES:
        for source in PHASES:
            answer = routing._run("call_rule", move=name, **{"from": source})
            expected = after(name, source)
            assert answer.get("to") == (str(expected) if expected else None), (name, source)


def test_a_queued_call_answered_and_ended_moves_by_the_table(
    routing: Routing, router: Router, engine: EngineSide
) -> None:
    seen: list[str] = []
    engine.queue("c-phase", "general")
    router.drain()
    seen.append(routing.call("c-phase")["state"])
    routing._run("hangup", call="c-phase", final=True)
    seen.append(routing.call("c-phase")["state"])
    assert seen == [P.waiting, P.ended]
    assert all(b in reachable(a) for a, b in zip([ABSENT, *seen], seen, strict=False))
    stats = routing.redis.hgetall(routing.key("stats"))
    assert int(stats.get("illegal_call_moves", 0)) == 0


def test_a_move_the_table_refuses_is_counted_not_lost(routing: Routing) -> None:
    """An answer for a call routing already ended (only a corrupted record gets there): the
    script still does what it decided, and the stats say a move left the table."""
    routing.redis.hset(routing.key("agent:9998"), mapping={"state": "reserved", "call_id": "c-odd"})
    routing.redis.hset(routing.key("call:c-odd"), mapping={"state": "ended", "kind": "inbound"})
    assert routing._run("answered", call="c-odd", agent="9998")["status"] == "answered"
    assert routing.call("c-odd")["state"] == P.connected
    stats = routing.redis.hgetall(routing.key("stats"))
    assert int(stats["illegal_call_moves"]) == 1
    assert stats["last_illegal_call_move"] == "answer:ended"


def test_event_phases_name_real_events_and_end_with_the_ending_ones() -> None:
    assert set(EVENT_PHASE) <= set(EventType)
    assert {
        EventType.call_ended,
        EventType.slot_failed,
        EventType.call_refused,
    } == call_phases.ENDING_EVENTS
    assert set(call_phases.SLOT_NAMES.values()) <= set(CallPhase)


def test_a_slot_phase_reads_the_same_by_its_slot_name_or_the_tables() -> None:
    assert call_phases.from_slot("queued") == call_phases.from_slot("waiting") == P.waiting
    assert call_phases.from_slot("bridged") == P.connected
    assert call_phases.from_slot("offering") == P.reserved
    assert call_phases.from_slot("main") is None  # a menu node, not a phase
