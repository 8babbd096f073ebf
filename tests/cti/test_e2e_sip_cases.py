"""Routing's cases end to end with real SIP: the engine (pjsua2 slots) behind its Kamailio edge,
the router as it runs in production, SIPp callers dialling the hotline and walking the menu
(1 = repair, # = no room number), SIPp softphones registered at the edge, a SIPp customer
behind the outbound trunk.

A missed offer rings the next agent; a call overflows to a staffed queue; a caller who takes
the call-back offer keeps their place and is called back agent first; a member's call is
offered before an earlier caller's; a queue nobody serves plays its message and hangs up (or,
by default, offers a call-back). The same cases against the Redis contract alone are in
test_routing.py; here every fact comes from the engine over SIP.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession

from callcenter.app import create_app
from callcenter.context import AppContext
from callcenter.streams import CallEvent, Command
from callcenter.testkit.config import queues_toml
from callcenter.testkit.scenarios import (
    agent_scenario,
    caller_scenario,
    customer_scenario,
    ringing_scenario,
)
from callcenter.testkit.sipp import finished, sipp
from cti.routing import Routing
from ivr import wav
from ivr.prompts import text_prompt
from tests.conftest import auth
from tests.cti.conftest import Running, agent_ids, until
from tests.cti.sipcases import (
    Plan,
    e2e_config,
    morning_routing,
    register,
    start_plan,
)
from tests.engine.conftest import (  # noqa: F401 (fixtures used by name)
    EngineProcess,
    call_events,
    call_of,
    engine_config_dir,
    events,
    pcaps,
    prompt_cache,
    start_engine,
    wait_for,
)

pytestmark = pytest.mark.sip

# Menu: 1 (repair), then # at the room number question (skip): the caller waits in "repair".
TO_REPAIR: list[tuple[str, object]] = [("pause", 800), ("dtmf", "1"), ("pause", 1500)]
TO_REPAIR += [("dtmf", "#")]


@pytest.fixture
def plan(request: pytest.FixtureRequest) -> Plan:
    marker = request.node.get_closest_marker("sip_plan")
    assert marker is not None, "every end-to-end SIP test names its own ports (sip_plan)"
    return cast(Plan, marker.args[0])


@pytest.fixture
def config_dir(tmp_path: Path, request: pytest.FixtureRequest, plan: Plan) -> Path:
    """One config for routing and the engine: both must see the same queues."""
    marker = request.node.get_closest_marker("queues_toml")
    return e2e_config(tmp_path / "config", plan, marker.args[0] if marker else None)


@dataclass
class Center:
    """The running call center and the SIP peers of one test."""

    ctx: AppContext
    routing: Routing
    engine: EngineProcess
    plan: Plan
    client: TestClient
    tmp_path: Path
    pcaps: dict[str, Path]
    ids: dict[str, int]
    peers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _headers: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def redis(self) -> redis.Redis:
        return cast(redis.Redis, self.ctx.redis)

    # ------------------------------------------------------------ SIP peers
    def softphone(self, n: int, extension: str, scenario: Path) -> subprocess.Popen[bytes]:
        """Agent ``extension``'s phone: registered at the edge, then a SIPp UAS there."""
        port = self.plan.softphone_port(n)
        register(self.tmp_path, self.plan.edge, extension, f"pw{extension}",
                 ip=self.plan.agents_ip, contact_port=port, local_port=port + 1)  # fmt: skip
        return self._peer(
            sipp(
                scenario,
                "127.0.0.1:9",
                local_port=port,
                media_port=self.plan.media(n),
                cwd=self.tmp_path,
                local_ip=self.plan.agents_ip,
            )
        )

    def answering(self, n: int, extension: str) -> subprocess.Popen[bytes]:
        path = self.tmp_path / f"agent{extension}.xml"
        return self.softphone(n, extension, agent_scenario(path, self.pcaps["agent"], 500))

    def caller(
        self, n: int, number: str, steps: list[tuple[str, object]]
    ) -> subprocess.Popen[bytes]:
        scenario = caller_scenario(self.tmp_path / f"caller{n}.xml", steps, caller=number)
        return self._peer(
            sipp(
                scenario,
                self.plan.edge,
                local_port=self.plan.caller_port(n),
                media_port=self.plan.media(5 + n),
                cwd=self.tmp_path,
                local_ip=self.plan.callers_ip,
            )
        )

    def customer(self, scenario: Path) -> subprocess.Popen[bytes]:
        """The customer's phone behind the outbound trunk (the trunk's address)."""
        return self._peer(
            sipp(
                scenario,
                "127.0.0.1:9",
                local_port=self.plan.trunk_port,
                media_port=self.plan.media(9),
                cwd=self.tmp_path,
                local_ip=self.plan.trunk_ip,
            )
        )

    def _peer(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.peers.append(process)
        return process

    # ------------------------------------------------------------ desktops (the API)
    def headers(self, extension: str) -> dict[str, str]:
        if extension not in self._headers:
            self._headers[extension] = auth(self.client, extension)
        return self._headers[extension]

    def login(self, extension: str) -> None:
        """Logged in, not ready (reason login): the agent's queues are staffed."""
        response = self.client.post("/api/v1/agents/me/login", headers=self.headers(extension))
        assert response.status_code == 200, response.text

    def ready(self, extension: str) -> str:
        """Ready; the answer is the state after routing matched (reserved for a waiting call)."""
        response = self.client.put(
            "/api/v1/agents/me/state", headers=self.headers(extension), json={"state": "ready"}
        )
        state = cast(str, response.json()["state"])
        assert state in {"ready", "reserved"}, response.text
        return state

    @contextmanager
    def desktop(self, extension: str) -> Iterator[WebSocketTestSession]:
        with self.client.websocket_connect(
            "/api/v1/agents/me/events", headers=self.headers(extension)
        ) as ws:
            assert until(ws, "state")["snapshot"]
            yield ws

    def agent(self, extension: str) -> dict[str, Any]:
        return self.routing.agent(self.ids[extension])

    # ------------------------------------------------------------ facts
    def call_of(self, number: str, timeout: float = 20) -> str:
        found = wait_for(lambda: call_of(self.redis, number), timeout, f"a call from {number}")
        return cast(str, found)

    def events(self, call_id: str, kind: str | None = None) -> list[CallEvent]:
        found = call_events(self.redis, call_id)
        return [e for e in found if kind is None or e.type == kind]

    def engine_events(self, call_id: str, kind: str) -> list[CallEvent]:
        return [e for e in self.events(call_id, kind) if e.node != "routing"]

    def commands(self, call_id: str, kind: str | None = None) -> list[Command]:
        """Commands routing sent to the slot that carried the call."""
        slot = next(e.slot for e in self.events(call_id) if e.type == "call_arrived")
        entries: Any = self.redis.xrange(self.ctx.keys.slot_commands(slot))
        found = [Command.from_fields(f) for _id, f in entries]
        return [c for c in found if c.call_id == call_id and (kind is None or c.type == kind)]

    def engine_commands(self, kind: str) -> list[Command]:
        entries: Any = self.redis.xrange(self.ctx.keys.engine_commands)
        return [c for c in (Command.from_fields(f) for _id, f in entries) if c.type == kind]

    def waiting(self, queue: str) -> list[str]:
        return cast(
            list[str], self.redis.zrange(self.ctx.keys.routing(f"queue:{queue}:waiting"), 0, -1)
        )

    def engine_event(self, call_id: str, kind: str, timeout: float) -> CallEvent:
        """The engine's first ``kind`` event of the call, waiting up to ``timeout``."""
        found = self.wait(
            lambda: self.engine_events(call_id, kind), timeout, f"{kind} of {call_id}"
        )
        return cast(list[CallEvent], found)[0]

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll until ``predicate`` holds; on timeout, show every event and the engine log."""
        try:
            return wait_for(predicate, timeout, what)
        except AssertionError as exc:
            seen = [(e.call_id[:8], e.type, e.node, e.data) for _i, e in events(self.redis)]
            raise AssertionError(
                f"{exc}\nevents: {seen}\nengine log:\n{self.engine.log()}"
            ) from None


@pytest.fixture
def center(
    start_engine: Callable[..., EngineProcess],  # noqa: F811
    ctx: AppContext,
    plan: Plan,
    tmp_path: Path,
    pcaps: dict[str, Path],  # noqa: F811
) -> Iterator[Center]:
    engine = start_plan(start_engine, ctx, plan, lines=3, spares=3)
    routing = morning_routing(ctx)
    running = Running(ctx, routing, "router-e2e-cases")
    center: Center | None = None
    try:
        with TestClient(create_app(ctx)) as client:
            center = Center(ctx, routing, engine, plan, client, tmp_path, pcaps, agent_ids(ctx))
            yield center
    finally:
        running.halt()
        for process in center.peers if center else []:
            if process.poll() is None:  # a failed test's peer still waiting: ours to end
                process.kill()
                process.communicate(timeout=5)


def at(event: CallEvent) -> float:
    return datetime.fromisoformat(event.at).timestamp()


# ---------------------------------------------------------------- 1. missed offer


@pytest.mark.sip_plan(Plan(18000, 43000, 48000))
@pytest.mark.queues_toml(
    queues_toml(repair={"ring_timeout_seconds": 3, "overflow": None, "callback_offer": None})
)
def test_missed_offer_makes_the_agent_not_ready_and_rings_the_next_one(center: Center) -> None:
    never = center.softphone(0, "1001", ringing_scenario(center.tmp_path / "never.xml"))
    answers = center.answering(1, "1002")
    with center.desktop("1001") as desktop:
        center.ready("1001")  # the longest idle of repair's two ready agents
        time.sleep(0.05)
        center.ready("1002")
        caller = center.caller(0, "13911110001", [*TO_REPAIR, ("pause", 9000)])
        call_id = center.call_of("13911110001")
        missed = until(desktop, "missed", seconds=30)
        assert (missed["call_id"], missed["reason"]) == (call_id, "ring_timeout")
    center.engine_event(call_id, "agent_answered", 20)
    finished(never)  # its phone rang, then the engine cancelled the INVITE (SIPp got CANCEL)

    offered = center.engine_events(call_id, "agent_offered")
    assert [e.data["agent_id"] for e in offered] == [center.ids["1001"], center.ids["1002"]]
    assert offered[0].data["ring_timeout"] == 3
    (gave_up,) = center.engine_events(call_id, "agent_missed")
    assert gave_up.data["agent_id"] == center.ids["1001"]
    assert gave_up.data["reason"] == "ring_timeout"  # the engine's timer, not routing's backstop
    assert 2.9 <= at(gave_up) - at(offered[0]) < 5
    reserved = center.events(call_id, "call_reserved")
    assert [e.data["agent_id"] for e in reserved] == [center.ids["1001"], center.ids["1002"]]
    (answered,) = center.engine_events(call_id, "agent_answered")
    assert answered.data["agent_id"] == center.ids["1002"]

    first = center.agent("1001")
    assert (first["state"], first["reason"], first["misses_in_a_row"]) == (
        "not_ready", "missed", 1,
    )  # fmt: skip
    assert center.agent("1002")["state"] == "on_call"
    assert center.routing.call(call_id)["outcome:1"] == "answered"
    assert not center.events(call_id, "command_failed")
    finished(caller)
    finished(answers)


# ---------------------------------------------------------------- 2. overflow


@pytest.mark.sip_plan(Plan(18100, 43200, 48100))
@pytest.mark.queues_toml(
    queues_toml(repair={"overflow": {"after_seconds": 5, "to": "general"}, "callback_offer": None})
)
def test_waiting_call_overflows_to_a_queue_with_a_ready_agent(center: Center) -> None:
    center.login("1001")  # repair is staffed, nobody in it is ready
    answers = center.answering(0, "1003")  # general and complaint, not repair
    with center.desktop("1003") as desktop:
        center.ready("1003")
        caller = center.caller(0, "13911110002", [*TO_REPAIR, ("pause", 12000)])
        call_id = center.call_of("13911110002")
        pop = until(desktop, "offer", seconds=30)
    assert (pop["call_id"], pop["queue"]["code"]) == (call_id, "general")
    center.engine_event(call_id, "agent_answered", 20)

    (moved,) = center.events(call_id, "call_overflowed")
    assert (moved.data["from_queue"], moved.data["to_queue"]) == ("repair", "general")
    assert moved.data["reason"] == "wait" and moved.data["waited"] >= 5
    assert [c.type for c in center.commands(call_id)] == ["requeue", "offer"]
    assert center.commands(call_id, "requeue")[0].data["queue"] == "general"
    queued = center.engine_events(call_id, "call_queued")
    assert [e.data["queue"] for e in queued] == ["repair", "general"]
    assert queued[1].data["previous_queue"] == "repair"  # the engine moved the caller
    (answered,) = center.engine_events(call_id, "agent_answered")
    assert (answered.data["agent_id"], answered.data["queue"]) == (center.ids["1003"], "general")
    call = center.routing.call(call_id)
    assert (call["outcome:1"], call["outcome:2"]) == ("overflowed", "answered")
    assert center.agent("1001")["state"] == "not_ready"
    finished(caller)
    finished(answers)


@pytest.mark.sip_plan(Plan(18600, 44200, 48600))
@pytest.mark.queues_toml(
    queues_toml(repair={"overflow": {"after_seconds": 5, "to": "general"}, "callback_offer": None})
)
def test_hanging_up_just_after_an_overflow_is_an_abandon_everywhere(center: Center) -> None:
    """The caller waited ~5 s in repair, overflowed, and gave up ~3 s later: 8 s of waiting
    in all, over short_abandon_seconds (5). The call record and the metric definitions both
    say abandoned (the metrics used to judge the 3 s in general alone: a short abandon)."""
    from metrics.call_state import CallState
    from metrics.call_tracker import CallTracker
    from metrics.counters import sum_counters
    from metrics.live_config import metric_config

    center.login("1001")  # repair staffed, not ready
    center.login("1003")  # general staffed, not ready: nobody answers
    caller = center.caller(0, "13911110006", [*TO_REPAIR, ("pause", 8000)])
    call_id = center.call_of("13911110006")
    finished(caller)
    wait_for(lambda: center.engine_events(call_id, "call_ended"), 15, "the call to end")
    (moved,) = center.events(call_id, "call_overflowed")
    assert (moved.data["from_queue"], moved.data["to_queue"]) == ("repair", "general")
    (ended,) = center.engine_events(call_id, "call_ended")
    assert ended.data["outcome"] == "abandoned"  # what the call record stores

    # The metric definitions over the engine's own events (the engine moved the caller: a
    # second call_queued naming general). Routing's events carry this test's fixed morning
    # clock, so they are left out here; the definitions treat both forms of overflow alike.
    tracker, state = CallTracker(metric_config(center.ctx)), CallState(call_id)
    deltas = [
        delta
        for event in center.events(call_id)
        if event.node != "routing"
        for delta in tracker.apply(state, event).deltas
    ]
    counted = sum_counters({f"{d.cohort.queue}|{d.counter}": d.value} for d in deltas)
    assert counted["repair|offered"] == counted["repair|overflowed"] == 1
    assert counted["general|offered"] == counted["general|abandoned"] == 1
    assert "general|short_abandoned" not in counted


# ---------------------------------------------------------------- 3. call-back


@pytest.mark.sip_plan(Plan(18200, 43400, 48200))
@pytest.mark.queues_toml(
    queues_toml(
        repair={"ring_timeout_seconds": 3, "overflow": None, "callback_offer": {"after_seconds": 5}}
    )
)
def test_callback_keeps_the_place_and_calls_the_agent_then_the_customer(center: Center) -> None:
    for extension in ("1001", "1002"):
        center.login(extension)  # repair is staffed, nobody is ready
    never = center.softphone(0, "1002", ringing_scenario(center.tmp_path / "never.xml"))
    softphone = center.answering(1, "1001")
    customer = center.customer(
        customer_scenario(
            center.tmp_path / "customer.xml",
            center.pcaps["caller"],
            4000,
            via=center.plan.edge,  # the slot dials out through the edge, not around it
        )
    )
    # Waits, hears the call-back offer (after 5 s), presses 1 (SIP INFO: SIPp's RFC 2833
    # pcaps cannot send a 1 after the # of the menu) and hangs up.
    first = center.caller(
        0, "13911110003", [*TO_REPAIR, ("pause", 8000), ("info", "1"), ("pause", 1500)]
    )
    call_id = center.call_of("13911110003")
    time.sleep(1.0)
    later = center.caller(1, "13911110033", [*TO_REPAIR, ("pause", 22000)])  # stays in line
    later_id = center.call_of("13911110033")
    finished(first)
    center.engine_event(call_id, "call_ended", 10)
    offer, confirmation = center.commands(call_id, "play")
    assert (offer.data["prompt"], offer.data["reason"]) == ("callback_offer", "wait")
    assert (confirmation.data["prompt"], confirmation.data["outcome"]) == (
        "system.callback", "callback",
    )  # fmt: skip
    pressed = [e for e in center.engine_events(call_id, "digit_received") if e.node == "waiting"]
    assert [(e.data["digit"], e.data["method"]) for e in pressed] == [("1", 1)]
    (scheduled,) = center.events(call_id, "callback_scheduled")
    assert (scheduled.data["queue"], scheduled.data["position"]) == ("repair", 1)
    # Hanging up after taking the call-back is not abandoning.
    assert not center.engine_events(call_id, "abandoned")
    assert center.engine_events(call_id, "call_ended")[0].data["outcome"] == "callback"
    kept = center.routing.call(call_id)
    assert (kept["state"], kept["callback"], kept["number"]) == ("waiting", "1", "13911110003")
    assert center.waiting("repair") == [call_id, later_id]  # its place, ahead of the later one

    # Its turn: 1002 is rung first and does not answer; the placed call ends (the slot is
    # free again) and the caller is back at their place.
    center.ready("1002")
    missed_leg = f"{call_id}:cb1"
    center.engine_event(missed_leg, "call_ended", 15)
    finished(never)  # rang, then CANCEL
    (missed,) = center.engine_events(missed_leg, "agent_missed")
    assert missed.data["reason"] == "ring_timeout"
    (offered,) = center.engine_events(missed_leg, "agent_offered")
    assert 2.9 <= at(missed) - at(offered) < 5  # the offer's ring_timeout, not 30 s
    assert "originated" not in [e.type for e in center.events(missed_leg)]  # customer not called
    assert (center.agent("1002")["state"], center.agent("1002")["reason"]) == (
        "not_ready",
        "missed",
    )
    center.wait(lambda: center.waiting("repair") == [call_id, later_id], 5, "the place kept")

    center.ready("1001")  # agent first, then the customer through the trunk
    leg = f"{call_id}:cb2"
    center.engine_event(leg, "call_ended", 30)
    finished(customer)
    finished(softphone)

    originates = center.engine_commands("originate")
    assert [c.call_id for c in originates] == [missed_leg, leg]
    originate = originates[1]
    assert originate.data["purpose"] == "callback"
    assert (originate.data["number"], originate.data["parent_call_id"]) == ("13911110003", call_id)
    assert originate.data["agent_uri"] == f"sip:1001@{center.plan.edge}"
    types = [e.type for e in center.events(leg) if e.node != "routing"]
    assert types.index("agent_answered") < types.index("originated") < types.index("bridged")
    (arrived,) = center.engine_events(leg, "call_arrived")
    assert (arrived.data["direction"], arrived.data["caller"]) == ("out", "13911110003")
    assert center.engine_events(leg, "call_ended")[0].data["outcome"] == "answered"
    assert center.routing.call(call_id)["outcome:1"] == "called_back"
    assert center.routing.call(later_id)["state"] == "waiting"  # not offered: 1001 was taken
    assert center.agent("1001")["state"] == "wrap_up"
    # Both legs connected: the call-back's recording has the agent's 1 kHz tone and the
    # customer's 440 Hz tone.
    (stopped,) = center.engine_events(leg, "recording_stopped")
    pcm, rate = wav.samples(Path(stopped.data["path"]))
    part = pcm[-3 * rate : -rate]
    noise = max(wav.tone_power(part, rate, 2500), 1)
    assert wav.tone_power(part, rate, 440) > 100 * noise
    assert wav.tone_power(part, rate, 1000) > 100 * noise
    assert not [e for e in center.events(call_id, "command_failed")]
    finished(later)


# ---------------------------------------------------------------- 4. priority


@pytest.mark.sip_plan(Plan(18300, 43600, 48300))
def test_member_call_is_offered_before_an_earlier_normal_call(center: Center) -> None:
    for extension in ("1001", "1002"):
        center.login(extension)
    phones = [center.answering(0, "1001"), center.answering(1, "1002")]
    normal = center.caller(0, "13911110004", [*TO_REPAIR, ("pause", 9000)])
    normal_id = center.call_of("13911110004")
    center.wait(lambda: center.waiting("repair") == [normal_id], 10, "the first call to queue")
    member = center.caller(1, "13800138000", [*TO_REPAIR, ("pause", 7000)])  # 张伟, a member
    member_id = center.call_of("13800138000")

    def member_first() -> bool:
        raised = center.routing.call(member_id).get("priority") == "1"
        return raised and center.waiting("repair") == [member_id, normal_id]

    center.wait(member_first, 10, "the member's call to go ahead")
    calls = center.routing.call(normal_id), center.routing.call(member_id)
    assert [c["priority"] for c in calls] == ["0", "1"]  # repair's member_priority
    assert int(calls[0]["seq"]) < int(calls[1]["seq"])  # the normal call came first

    with center.desktop("1001") as desktop:
        center.ready("1001")
        pop = until(desktop, "offer", seconds=10)
    assert (pop["call_id"], pop["priority"]) == (member_id, 1)
    assert pop["customer"]["member"] is True
    center.ready("1002")
    for call_id in (member_id, normal_id):
        center.engine_event(call_id, "agent_answered", 20)
    reserved = [e for _i, e in events(center.redis) if e.type == "call_reserved"]
    assert [(e.call_id, e.data["agent_id"]) for e in reserved] == [
        (member_id, center.ids["1001"]),
        (normal_id, center.ids["1002"]),
    ]
    for call_id in (member_id, normal_id):
        assert center.routing.call(call_id)["outcome:1"] == "answered"
    finished(member)
    finished(normal)
    for phone in phones:
        finished(phone)


# ---------------------------------------------------------------- 5. no agents


@pytest.mark.sip_plan(Plan(18400, 43800, 48400))
@pytest.mark.queues_toml(
    queues_toml(repair={"no_agents": "message", "overflow": None, "callback_offer": None})
)
def test_no_agents_message_is_played_then_the_engine_hangs_up(center: Center) -> None:
    # Nobody is logged in. The caller stays on the line until the engine's BYE.
    caller = center.caller(0, "13911110005", [*TO_REPAIR, ("wait_bye", 0)])
    call_id = center.call_of("13911110005")
    finished(caller, timeout=40)
    center.engine_event(call_id, "call_ended", 10)

    (message,) = center.commands(call_id, "play")
    assert message.data["prompt"] == "no_agents"
    assert not center.events(call_id, "command_failed")  # rendered and played
    (queued,) = center.engine_events(call_id, "call_queued")
    (ended,) = center.engine_events(call_id, "call_ended")
    # The engine hung up when the message had played, not on routing's 30 s backstop.
    assert (ended.data["reason"], ended.data["outcome"]) == ("message_played", "closed")
    assert not center.commands(call_id, "hangup")
    played = text_prompt(message.data["text"], center.engine.settings.state_dir, "zh-CN")
    assert played.duration <= at(ended) - at(queued) < played.duration + 5
    # What the caller heard is in the recording (the music is not recorded): the message.
    (stopped,) = center.engine_events(call_id, "recording_stopped")
    (started,) = center.engine_events(call_id, "recording_started")
    pcm, rate = wav.samples(Path(stopped.data["path"]))
    after_queued = pcm[int((at(queued) - at(started)) * rate) :]
    step = rate // 10
    voiced = sum(
        wav.rms(after_queued[i : i + step]) > 300 for i in range(0, len(after_queued), step)
    )
    assert voiced / 10 >= 0.8 * played.duration  # seconds of speech after the caller queued
    assert center.routing.call(call_id)["outcome:1"] == "closed"
    stats = center.redis.hgetall(center.ctx.keys.routing("stats:repair"))
    assert stats == {"entered": "1", "closed": "1"}
    assert not center.engine_events(call_id, "announced")  # no "you are number 1" after it


@pytest.mark.sip_plan(Plan(18500, 44000, 48500))
def test_no_agents_by_default_offers_a_callback(center: Center) -> None:
    # The shipped repair queue (no_agents = "callback"), nobody logged in.
    caller = center.caller(0, "13911110006", [*TO_REPAIR, ("pause", 2500), ("info", "1"),
                                              ("pause", 1000)])  # fmt: skip
    call_id = center.call_of("13911110006")
    finished(caller)
    center.wait(lambda: center.events(call_id, "callback_scheduled"), 10, "the call-back")
    (offer,) = center.commands(call_id, "play")[:1]
    assert (offer.data["prompt"], offer.data["reason"]) == ("callback_offer", "no_agents")
    kept = center.routing.call(call_id)
    assert (kept["state"], kept["callback"]) == ("waiting", "1")
    center.engine_event(call_id, "call_ended", 10)
    assert center.engine_events(call_id, "call_ended")[0].data["outcome"] == "callback"
    assert not center.engine_events(call_id, "abandoned")
