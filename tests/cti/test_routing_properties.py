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

The machine is one rule (method) per random operation, which Hypothesis picks by name; the
invariants are checked in their own methods, with the offer log's replay in ``OfferLog``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

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
BUSY_STATES = {"reserved", "on_call", "on_hold"}
AGENT_INDEX = st.integers(0, len(EXTENSIONS) - 1)  # one agent per extension

SETTINGS = settings(
    max_examples=20,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_routing_invariants_hold_under_random_operations(
    ctx: AppContext, clock: TestClock, engine: EngineSide
) -> None:
    ids = agent_ids(ctx)

    # Hypothesis builds the machine without arguments: the fixtures ride on a subclass.
    class RoutingMachineOnFixtures(RoutingMachine):
        pass

    RoutingMachineOnFixtures.ctx = ctx
    RoutingMachineOnFixtures.clock = clock
    RoutingMachineOnFixtures.engine = engine
    RoutingMachineOnFixtures.agents = [ids[e] for e in EXTENSIONS]
    run_state_machine_as_test(RoutingMachineOnFixtures, settings=SETTINGS)


@dataclass
class OfferLog:
    """The ordered agent event log replayed: which call each agent holds an offer of."""

    cursor: str = "0-0"
    holding: dict[int, str] = field(default_factory=dict)  # agent -> call offered to it
    offered_to: dict[str, int] = field(default_factory=dict)  # call -> agent holding its offer

    def read_new(self, ctx: AppContext) -> None:
        entries = cast(
            list[tuple[str, dict[str, str]]],
            ctx.redis.xrange(ctx.keys.agent_events, f"({self.cursor}", "+"),
        )
        for entry_id, fields in entries:
            self.cursor = entry_id
            if fields["type"] == "agent_state_changed":
                self.apply(json.loads(fields["data"]))

    def apply(self, change: dict[str, Any]) -> None:
        agent, call_id = int(change["agent_id"]), change["call_id"]
        if change["to"] == "reserved":
            assert agent not in self.holding, f"agent {agent} offered two calls"
            assert call_id not in self.offered_to, f"{call_id} offered to two agents"
            self.holding[agent] = call_id
            self.offered_to[call_id] = agent
        elif change["from"] == "reserved":
            held = self.holding.pop(agent)
            assert self.offered_to.pop(held) == agent


class RoutingMachine(RuleBasedStateMachine):
    # Set on a subclass per test run (see the test above).
    ctx: ClassVar[AppContext]
    clock: ClassVar[TestClock]
    engine: ClassVar[EngineSide]
    agents: ClassVar[list[int]]

    router: Router
    routing: Routing

    def __init__(self) -> None:
        super().__init__()
        self.ctx.redis.flushdb()
        self.clock.now = MORNING
        self.generation = 0
        self.restart(read_first=True)
        self.calls: list[str] = []
        self.abandoned: set[str] = set()  # the model hung these up while queued
        self.answered: set[str] = set()
        self.callbacks: set[str] = set()
        self.offer_log = OfferLog()
        self.phases: dict[str, str] = {}  # call -> its phase at the last check
        for agent in self.agents:
            services.login(self.ctx, agent_id=agent, actor="prop")
        self.router.drain()

    # ------------------------------------------------------------ helpers

    def restart(self, *, read_first: bool) -> None:
        if read_first and self.generation:
            self.router.drain()
        self.generation += 1
        self.routing = Routing(self.ctx.redis, self.ctx.keys, self.ctx.config, clock=self.clock)
        services.use_routing(self.ctx, self.routing)
        # Half of the restarts come back under the same consumer name (a restarted
        # process), half under a new one (another process taking over).
        name = "router" if self.generation % 2 else f"router-{self.generation}"
        self.router = Router(self.ctx, routing=self.routing, consumer=name)

    def agents_in(self, state: str) -> list[int]:
        return [a for a in self.agents if self.routing.agent(a)["state"] == state]

    def calls_in(self, *states: str, callback: bool | None = None) -> list[str]:
        found = []
        for cid in self.calls:
            call = self.routing.call(cid)
            if call.get("state") in states and (
                callback is None or (call.get("callback") == "1") == callback
            ):
                found.append(cid)
        return found

    def new_call_id(self) -> str:
        cid = f"g{len(self.calls)}"
        self.calls.append(cid)
        return cid

    def set_agent_state(self, index: int, state: str, reason: str | None) -> None:
        agent = self.agents[index]
        try:
            services.set_state(self.ctx, agent_id=agent, state=state, reason=reason, actor="p")
        except Conflict:
            assert self.routing.agent(agent)["state"] in BUSY_STATES
        self.router.drain()

    def offered_call(self, agent: int) -> str:
        return str(self.routing.agent(agent)["call_id"])

    # ------------------------------------------------------------ rules (random operations)

    @rule(
        queue=st.sampled_from(QUEUES),
        priority=st.sampled_from([0, 0, 0, 3]),
        member=st.booleans(),
    )
    def arrive(self, queue: str, priority: int, member: bool) -> None:
        cid = self.new_call_id()
        caller = "13800138000" if member else f"139{len(self.calls):08d}"
        self.engine.queue(cid, queue, caller=caller, priority=priority)
        self.router.drain()

    @rule(index=AGENT_INDEX)
    def agent_ready(self, index: int) -> None:
        self.set_agent_state(index, "ready", None)

    @rule(index=AGENT_INDEX, reason=st.sampled_from(["break", "meal", "training"]))
    def agent_not_ready(self, index: int, reason: str) -> None:
        self.set_agent_state(index, "not_ready", reason)

    @rule(index=AGENT_INDEX)
    def agent_logout(self, index: int) -> None:
        agent = self.agents[index]
        try:
            services.logout(self.ctx, agent_id=agent, actor="p")
        except Conflict:
            assert self.routing.agent(agent)["state"] in {*BUSY_STATES, "logged_out"}
        self.router.drain()

    @rule(
        index=AGENT_INDEX,
        queues=st.lists(st.sampled_from(QUEUES), min_size=1, max_size=3, unique=True),
    )
    def lead_moves_agent(self, index: int, queues: list[str]) -> None:
        self.routing.set_queues(self.agents[index], {q: 5 for q in queues}, actor="lead")
        self.router.drain()

    @precondition(lambda self: bool(self.agents_in("reserved")))
    @rule(data=st.data())
    def answer(self, data: st.DataObject) -> None:
        agent = data.draw(st.sampled_from(self.agents_in("reserved")))
        call_id = self.offered_call(agent)
        parent = call_id.split(":cb")[0]
        (self.callbacks if ":cb" in call_id else self.answered).add(parent)
        self.engine.publish("agent_answered", call_id, agent_id=agent)
        self.router.drain()

    @precondition(lambda self: bool(self.agents_in("reserved")))
    @rule(data=st.data())
    def miss(self, data: st.DataObject) -> None:
        agent = data.draw(st.sampled_from(self.agents_in("reserved")))
        call_id = self.offered_call(agent)
        self.engine.publish("agent_missed", call_id, agent_id=agent, reason="no_answer")
        self.router.drain()

    @precondition(lambda self: bool(self.agents_in("on_call")))
    @rule(data=st.data(), hold=st.booleans())
    def end_call(self, data: st.DataObject, hold: bool) -> None:
        agent = data.draw(st.sampled_from(self.agents_in("on_call")))
        call_id = self.offered_call(agent)
        if hold:
            self.engine.publish("held", call_id)
        self.engine.publish("call_ended", call_id, reason="hangup")
        self.router.drain()

    @precondition(lambda self: bool(self.calls_in(*PENDING_STATES, callback=False)))
    @rule(data=st.data())
    def caller_hangs_up(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.calls_in(*PENDING_STATES, callback=False)))
        self.abandoned.add(cid)
        self.engine.publish("abandoned", cid, queue=self.routing.call(cid)["queue"])
        self.engine.publish("call_ended", cid, reason="caller_hung_up")
        self.router.drain()

    @precondition(lambda self: bool(self.calls_in("waiting", callback=False)))
    @rule(data=st.data())
    def request_callback(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(self.calls_in("waiting", callback=False)))
        self.engine.publish(
            "callback_requested",
            cid,
            queue=self.routing.call(cid)["queue"],
            number="13800138000",
        )
        self.engine.publish("caller_hung_up", cid)
        self.engine.publish("call_ended", cid, reason="callback_requested")
        self.router.drain()

    @rule(seconds=st.sampled_from([1, 5, 17, 31, 61, 95]))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.router.drain()

    @rule(read_first=st.booleans(), queue=st.sampled_from(QUEUES))
    def router_restarts(self, read_first: bool, queue: str) -> None:
        if not read_first:
            # Events published while no router runs are picked up by the next one.
            self.engine.queue(self.new_call_id(), queue)
        self.restart(read_first=read_first)
        self.router.drain()

    # ------------------------------------------------------------ invariants

    @invariant()
    def never_two_offers(self) -> None:
        self.offer_log.read_new(self.ctx)
        live = {a: self.offered_call(a) for a in self.agents_in("reserved")}
        assert live == self.offer_log.holding
        offered = sum(len(self.engine.offers(cid)) for cid in self.calls)
        originated = self.engine.engine_commands("originate")
        reserves = self.engine.routing_events("call_reserved")
        assert offered + len(originated) == len(reserves)

    @invariant()
    def conservation(self) -> None:
        pending = {q: 0 for q in QUEUES}
        for cid in self.calls:
            call = self.routing.call(cid)
            if not int(call.get("entry") or 0):
                continue  # published but not yet read (restart without a read)
            if self.check_outcomes(cid, call):
                pending[call["queue"]] += 1
        assert not self.ctx.redis.hget(self.ctx.keys.routing("stats"), "duplicate_outcomes")
        for queue in QUEUES:
            self.check_queue_counters(queue, pending[queue])

    def check_outcomes(self, cid: str, call: dict[str, Any]) -> bool:
        """One outcome per queue entry, the model's own moves respected; True if pending."""
        outcomes = [call.get(f"outcome:{e}") for e in range(1, int(call["entry"]) + 1)]
        assert all(o == "overflowed" for o in outcomes[:-1]), (cid, outcomes)
        last = outcomes[-1]
        is_pending = call["state"] in PENDING_STATES
        if is_pending:
            assert last is None, (cid, call)
        else:
            assert last in OUTCOMES, (cid, call)
        if cid in self.abandoned and not is_pending:
            assert last in {"abandoned", "answered", "called_back"}, (cid, call)
        if cid in self.answered:
            assert last == "answered", (cid, call)
        if cid in self.callbacks:
            assert last == "called_back", (cid, call)
        return is_pending

    def check_queue_counters(self, queue: str, pending: int) -> None:
        raw = cast(dict[str, str], self.ctx.redis.hgetall(self.ctx.keys.routing(f"stats:{queue}")))
        stats = {k: int(v) for k, v in raw.items()}
        ended = sum(stats.get(o, 0) for o in OUTCOMES)
        totals = {"pending": pending} if pending else {}
        assert stats.get("entered", 0) == ended + pending, (queue, stats, totals)

    @invariant()
    def waiting_lists_hold_only_waiting_calls(self) -> None:
        """A queue's waiting list (what the lead's queue view counts) holds exactly the calls
        waiting in that queue: an offered, answered or ended call is not in it."""
        for queue in QUEUES:
            key = self.ctx.keys.routing(f"queue:{queue}:waiting")
            listed = cast(list[str], self.ctx.redis.zrange(key, 0, -1))
            for cid in listed:
                call = self.routing.call(cid)
                assert (call.get("state"), call.get("queue")) == ("waiting", queue), (
                    queue,
                    cid,
                    call,
                )

    @invariant()
    def call_phases_move_by_the_table(self) -> None:
        """Every write of a call's phase is one of the table's moves (the script counts any
        other), and each call's phase since the last step is one the table reaches."""
        stats = self.ctx.redis.hgetall(self.ctx.keys.routing("stats"))
        assert not stats.get("illegal_call_moves"), stats.get("last_illegal_call_move")
        for cid in self.calls:
            now = self.routing.call(cid).get("state", call_phases.ABSENT)
            before = self.phases.get(cid, call_phases.ABSENT)
            assert now in call_phases.reachable(before), (cid, before, now)
            self.phases[cid] = now
