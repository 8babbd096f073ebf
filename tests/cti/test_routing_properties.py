"""Property-based (stateful) test of routing against the real Redis.

Random caller arrivals, hang-ups, call-back requests, agent state changes, answers, missed
offers, time passing (ring timeouts, overflow, wrap-up ends, call-back offers) and router
restarts (a new Routing and Router on the same Redis, sometimes before the events were read).
After every step:
- replaying the ordered agent event log, no agent ever held two offers and no call was ever
  offered to two agents at once; the live Redis state agrees;
- every change of a call's phase is a move of callcenter/call_phases.py's table;
- conservation: every queue entry of every call is exactly once answered, abandoned,
  overflowed, called back (or closed), or is still waiting / ringing, and the per-queue
  counters add up.
"""

from __future__ import annotations

import json
from typing import Any, cast

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from callcenter import call_phases
from callcenter.context import AppContext
from callcenter.errors import Conflict
from cti import services
from cti.router import Router
from cti.routing import Routing
from tests.cti.conftest import MORNING, EngineSide, TestClock, agent_ids

QUEUES = ["general", "repair", "complaint", "fees", "callback"]
EXTENSIONS = ["1001", "1002", "1003", "1005", "1006", "1012"]
OUTCOMES = {"answered", "abandoned", "overflowed", "called_back", "closed"}
PENDING_STATES = {"waiting", "reserved"}


def test_routing_invariants_hold_under_random_operations(
    ctx: AppContext, clock: TestClock, engine: EngineSide
) -> None:
    ids = agent_ids(ctx)
    agents = [ids[e] for e in EXTENSIONS]

    class RoutingMachine(RuleBasedStateMachine):
        router: Router
        routing: Routing

        def __init__(self) -> None:
            super().__init__()
            ctx.redis.flushdb()
            clock.now = MORNING
            self.generation = 0
            self.restart(read_first=True)
            self.calls: list[str] = []
            self.abandoned: set[str] = set()  # the model hung these up while queued
            self.answered: set[str] = set()
            self.callbacks: set[str] = set()
            self.cursor = "0-0"
            self.holding: dict[int, str] = {}  # agent -> call offered to it (from the log)
            self.offered_to: dict[str, int] = {}  # call -> agent holding its offer
            for agent in agents:
                services.login(ctx, agent_id=agent, actor="prop")
            self.router.drain()

        # ------------------------------------------------------------ helpers

        def restart(self, *, read_first: bool) -> None:
            if read_first and self.generation:
                self.router.drain()
            self.generation += 1
            self.routing = Routing(ctx.redis, ctx.keys, ctx.config, clock=clock)
            services.use_routing(ctx, self.routing)
            # Half of the restarts come back under the same consumer name (a restarted
            # process), half under a new one (another process taking over).
            name = "router" if self.generation % 2 else f"router-{self.generation}"
            self.router = Router(ctx, routing=self.routing, consumer=name)

        def agents_in(self, state: str) -> list[int]:
            return [a for a in agents if self.routing.agent(a)["state"] == state]

        def calls_in(self, *states: str, callback: bool | None = None) -> list[str]:
            found = []
            for cid in self.calls:
                call = self.routing.call(cid)
                if call.get("state") in states and (
                    callback is None or (call.get("callback") == "1") == callback
                ):
                    found.append(cid)
            return found

        # ------------------------------------------------------------ rules

        @rule(
            queue=st.sampled_from(QUEUES),
            priority=st.sampled_from([0, 0, 0, 3]),
            member=st.booleans(),
        )
        def arrive(self, queue: str, priority: int, member: bool) -> None:
            cid = f"g{len(self.calls)}"
            self.calls.append(cid)
            caller = "13800138000" if member else f"139{len(self.calls):08d}"
            engine.queue(cid, queue, caller=caller, priority=priority)
            self.router.drain()

        @rule(index=st.integers(0, len(agents) - 1))
        def agent_ready(self, index: int) -> None:
            agent = agents[index]
            try:
                services.set_state(ctx, agent_id=agent, state="ready", reason=None, actor="p")
            except Conflict:
                assert self.routing.agent(agent)["state"] in {"reserved", "on_call", "on_hold"}
            self.router.drain()

        @rule(
            index=st.integers(0, len(agents) - 1),
            reason=st.sampled_from(["break", "meal", "training"]),
        )
        def agent_not_ready(self, index: int, reason: str) -> None:
            agent = agents[index]
            try:
                services.set_state(ctx, agent_id=agent, state="not_ready", reason=reason, actor="p")
            except Conflict:
                assert self.routing.agent(agent)["state"] in {"reserved", "on_call", "on_hold"}
            self.router.drain()

        @rule(index=st.integers(0, len(agents) - 1))
        def agent_logout(self, index: int) -> None:
            agent = agents[index]
            try:
                services.logout(ctx, agent_id=agent, actor="p")
            except Conflict:
                busy = {"reserved", "on_call", "on_hold", "logged_out"}
                assert self.routing.agent(agent)["state"] in busy
            self.router.drain()

        @rule(
            index=st.integers(0, len(agents) - 1),
            queues=st.lists(st.sampled_from(QUEUES), min_size=1, max_size=3, unique=True),
        )
        def lead_moves_agent(self, index: int, queues: list[str]) -> None:
            self.routing.set_queues(agents[index], {q: 5 for q in queues}, actor="lead")
            self.router.drain()

        @precondition(lambda self: bool(self.agents_in("reserved")))
        @rule(data=st.data())
        def answer(self, data: st.DataObject) -> None:
            agent = data.draw(st.sampled_from(self.agents_in("reserved")))
            call_id = str(self.routing.agent(agent)["call_id"])
            parent = call_id.split(":cb")[0]
            (self.callbacks if ":cb" in call_id else self.answered).add(parent)
            engine.publish("agent_answered", call_id, agent_id=agent)
            self.router.drain()

        @precondition(lambda self: bool(self.agents_in("reserved")))
        @rule(data=st.data())
        def miss(self, data: st.DataObject) -> None:
            agent = data.draw(st.sampled_from(self.agents_in("reserved")))
            call_id = str(self.routing.agent(agent)["call_id"])
            engine.publish("agent_missed", call_id, agent_id=agent, reason="no_answer")
            self.router.drain()

        @precondition(lambda self: bool(self.agents_in("on_call")))
        @rule(data=st.data(), hold=st.booleans())
        def end_call(self, data: st.DataObject, hold: bool) -> None:
            agent = data.draw(st.sampled_from(self.agents_in("on_call")))
            call_id = str(self.routing.agent(agent)["call_id"])
            if hold:
                engine.publish("held", call_id)
            engine.publish("call_ended", call_id, reason="hangup")
            self.router.drain()

        @precondition(lambda self: bool(self.calls_in(*PENDING_STATES, callback=False)))
        @rule(data=st.data())
        def caller_hangs_up(self, data: st.DataObject) -> None:
            cid = data.draw(st.sampled_from(self.calls_in(*PENDING_STATES, callback=False)))
            self.abandoned.add(cid)
            engine.publish("abandoned", cid, queue=self.routing.call(cid)["queue"])
            engine.publish("call_ended", cid, reason="caller_hung_up")
            self.router.drain()

        @precondition(lambda self: bool(self.calls_in("waiting", callback=False)))
        @rule(data=st.data())
        def request_callback(self, data: st.DataObject) -> None:
            cid = data.draw(st.sampled_from(self.calls_in("waiting", callback=False)))
            engine.publish(
                "callback_requested",
                cid,
                queue=self.routing.call(cid)["queue"],
                number="13800138000",
            )
            engine.publish("caller_hung_up", cid)
            engine.publish("call_ended", cid, reason="callback_requested")
            self.router.drain()

        @rule(seconds=st.sampled_from([1, 5, 17, 31, 61, 95]))
        def time_passes(self, seconds: int) -> None:
            clock.advance(seconds)
            self.router.drain()

        @rule(read_first=st.booleans(), queue=st.sampled_from(QUEUES))
        def router_restarts(self, read_first: bool, queue: str) -> None:
            if not read_first:
                # Events published while no router runs are picked up by the next one.
                cid = f"g{len(self.calls)}"
                self.calls.append(cid)
                engine.queue(cid, queue)
            self.restart(read_first=read_first)
            self.router.drain()

        # ------------------------------------------------------------ invariants

        @invariant()
        def never_two_offers(self) -> None:
            entries = cast(
                list[tuple[str, dict[str, str]]],
                ctx.redis.xrange(ctx.keys.agent_events, f"({self.cursor}", "+"),
            )
            for entry_id, fields in entries:
                self.cursor = entry_id
                if fields["type"] != "agent_state_changed":
                    continue
                change = json.loads(fields["data"])
                agent, call_id = int(change["agent_id"]), change["call_id"]
                if change["to"] == "reserved":
                    assert agent not in self.holding, f"agent {agent} offered two calls"
                    assert call_id not in self.offered_to, f"{call_id} offered to two agents"
                    self.holding[agent] = call_id
                    self.offered_to[call_id] = agent
                elif change["from"] == "reserved":
                    held = self.holding.pop(agent)
                    assert self.offered_to.pop(held) == agent
            live = {a: str(self.routing.agent(a)["call_id"]) for a in self.agents_in("reserved")}
            assert live == self.holding
            offers: dict[str, list[int]] = {}
            for cid in self.calls:
                offers[cid] = engine.offers(cid)
            originated = [c for c in engine.engine_commands("originate")]
            reserves = [e for e in engine.routing_events("call_reserved")]
            assert sum(len(v) for v in offers.values()) + len(originated) == len(reserves)

        @invariant()
        def conservation(self) -> None:
            totals: dict[str, dict[str, int]] = {q: {} for q in QUEUES}
            for cid in self.calls:
                call = self.routing.call(cid)
                entries = int(call.get("entry") or 0)
                if not entries:
                    continue  # published but not yet read (restart without a read)
                outcomes = [call.get(f"outcome:{e}") for e in range(1, entries + 1)]
                assert all(o == "overflowed" for o in outcomes[:-1]), (cid, outcomes)
                last = outcomes[-1]
                if call["state"] in PENDING_STATES:
                    assert last is None, (cid, call)
                    totals[call["queue"]]["pending"] = totals[call["queue"]].get("pending", 0) + 1
                else:
                    assert last in OUTCOMES, (cid, call)
                if cid in self.abandoned and call["state"] not in PENDING_STATES:
                    assert last in {"abandoned", "answered", "called_back"}, (cid, call)
                if cid in self.answered:
                    assert last == "answered", (cid, call)
                if cid in self.callbacks:
                    assert last == "called_back", (cid, call)
            assert not ctx.redis.hget(ctx.keys.routing("stats"), "duplicate_outcomes")
            for queue in QUEUES:
                stats = {
                    k: int(v)
                    for k, v in cast(
                        dict[str, str], ctx.redis.hgetall(ctx.keys.routing(f"stats:{queue}"))
                    ).items()
                }
                ended = sum(stats.get(o, 0) for o in OUTCOMES)
                assert stats.get("entered", 0) == ended + totals[queue].get("pending", 0), (
                    queue,
                    stats,
                    totals[queue],
                )

        @invariant()
        def call_phases_move_by_the_table(self) -> None:
            """Every write of a call's phase is one of the table's moves (the script counts any
            other), and each call's phase since the last step is one the table reaches."""
            stats = ctx.redis.hgetall(ctx.keys.routing("stats"))
            assert not stats.get("illegal_call_moves"), stats.get("last_illegal_call_move")
            phases = getattr(self, "phases", {})
            for cid in self.calls:
                now = self.routing.call(cid).get("state", call_phases.ABSENT)
                before = phases.get(cid, call_phases.ABSENT)
                assert now in call_phases.reachable(before), (cid, before, now)
                phases[cid] = now
            self.phases = phases

    RoutingMachine.TestCase.settings = settings(
        max_examples=20,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    runner: Any = RoutingMachine.TestCase("runTest")
    runner.runTest()
