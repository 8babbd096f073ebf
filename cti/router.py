"""The routing service: reads the engine's events, fires routing timers, logs agent states.

``callcenter router`` runs :func:`main` (``callcenter up`` starts it). Any number may run: they
share the consumer group ``routing`` on the events stream (each event handled once), timers are
claimed one by one from a Redis sorted set (each fired once), and every decision is atomic in
Lua. A restarted router first re-reads the events it had received but not acknowledged, and the
timers are still in Redis, so nothing is lost across restarts.

Three loops in one:
1. events (group ``routing``): call_queued, callback_requested, agent_answered, agent_missed,
   caller_hung_up / abandoned, call_ended / slot_failed, held / unheld, transferred,
   consult_started / consult_answered / consult_ended (also told to both agents' desktops),
   command_failed (an originate; a transfer: its reserved target is released).
2. timers: ring timeout (backstop for the engine's agent_missed), wrap-up end, overflow,
   callback offer, position announcements.
3. agent_events (group ``cti-log``): one ``agent_state_changes`` row per transition; and every
   few seconds the staffing check against the shift minimums (``routing:staffing`` hash and a
   message on the ``{prefix}:routing:alerts`` channel when the alert starts or ends).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from callcenter import call_phases, events, heap
from callcenter.consumers import ConsumerHost
from callcenter.context import AppContext
from callcenter.db import database_down, transaction
from callcenter.errors import CallCenterError
from callcenter.health import beat
from callcenter.streams import AgentEventType, CommandType, EventType
from cti import numbers, screenpop, services, shifts
from cti.models import Agent, AgentStateChange, Call
from cti.routing import CALLBACK_DIGIT, Routing

log = logging.getLogger(__name__)

GROUP = "routing"
LOG_GROUP = "cti-log"
SHIFT_GROUP = "cti-shifts"
CLAIM_IDLE_MS = 30_000  # events another (dead) router received but did not finish
STAFFING_EVERY_SECONDS = 5.0
HEARTBEAT_EVERY_SECONDS = 3.0
CALL_INFO_TTL_SECONDS = 86400

Entry = tuple[str, dict[str, str]]
Result = dict[str, Any] | None  # what routing answered, for services.deliver
E = TypeVar("E", bound=events.Event)
WARM_UP_NUMBER = "01000000000"  # a well-formed landline no customer has


class Router:
    def __init__(
        self, ctx: AppContext, *, routing: Routing | None = None, consumer: str | None = None
    ) -> None:
        self.ctx = ctx
        self.routing = services.use_routing(ctx, routing) if routing else services.routing_for(ctx)
        self.keys = ctx.keys
        self.redis = ctx.redis
        self.consumer = consumer or f"router-{ctx.settings.node_id}"
        self._next_staffing = 0.0
        self._next_beat = 0.0
        self._last_alert: bool | None = None
        self._handlers: dict[EventType, Callable[[events.Event], Result]] = {}
        self._subscribe_all()
        # Three groups, each hosted by callcenter/consumers.py: what another (dead) router
        # received but did not finish is claimed; when Redis comes back without our groups
        # (no AOF, or its data lost) they are made again with the queues' settings, so new
        # calls are routed; what Redis lost is gone.
        common: dict[str, Any] = {
            "consumer": self.consumer,
            "claim_idle_ms": CLAIM_IDLE_MS,
            "on_group_lost": self.routing.sync_queues,
        }
        self.events_host = ConsumerHost(
            self.redis,
            streams=[self.keys.events],
            group=GROUP,
            handlers=dict.fromkeys(self._handlers, self.handle_entry),
            skip=(Exception,),  # one bad event must not stop routing
            **common,
        )
        # SQL writers: an error leaves the batch unacknowledged, retried
        self.log_host = ConsumerHost(
            self.redis,
            streams=[self.keys.agent_events],
            group=LOG_GROUP,
            batch=lambda _stream, entries: self._log_states(entries),
            **common,
        )
        self.shift_host = ConsumerHost(
            self.redis,
            streams=[self.keys.events],
            group=SHIFT_GROUP,
            batch=lambda _stream, entries: self._attribute_shifts(entries),
            **common,
        )
        self.ensure_groups()

    def warm_up(self) -> None:
        """One caller lookup before the first call: the pool connects and every query of the
        screen pop is compiled now, not while the day's first caller waits for their pop
        (that first pop took 40-70 ms in bench/cti_screenpop.py, the others 6-10 ms)."""
        try:
            with self.ctx.sessions() as session:
                screenpop.lookup(session, WARM_UP_NUMBER)
        except Exception as exc:
            if not database_down(exc):
                raise
            log.warning("warm-up skipped: the database did not answer (%s)", exc)

    def ensure_groups(self) -> None:
        for host in (self.events_host, self.log_host, self.shift_host):
            host.ensure_group()

    # ------------------------------------------------------------ one round

    def step(self, block_ms: int = 0) -> int:
        """Handle what is there (waiting up to ``block_ms`` for events); returns work done."""
        return self.routing_step(block_ms) + self.bookkeeping_step(0)

    def routing_step(self, block_ms: int) -> int:
        """Engine events and due timers: the latency-critical half."""
        block_ms = min(block_ms, self._ms_to_next_timer()) if block_ms else 0
        done = self.events_host.step(block_ms)
        return done + self.fire_timers()

    def bookkeeping_step(self, block_ms: int) -> int:
        """The heartbeat, the SQL state log and the staffing check: never in routing's way.
        The heartbeat comes first: it says routing is consuming, which it is while the
        database is down (the SQL writes wait for it)."""
        now = time.monotonic()
        if now >= self._next_beat:
            self._next_beat = now + HEARTBEAT_EVERY_SECONDS
            beat(self.ctx, "router")
        done = self.log_host.step(block_ms)
        done += self.shift_host.step(0)
        if now >= self._next_staffing:
            self._next_staffing = now + STAFFING_EVERY_SECONDS
            self.check_staffing()
        return done

    def _ms_to_next_timer(self) -> int:
        first = cast(
            list[tuple[str, float]],
            self.redis.zrange(self.keys.routing("timers"), 0, 0, withscores=True),
        )
        if not first:
            return 10_000
        return max(1, int((first[0][1] - self.routing.clock()) * 1000))

    def run(self, stop: threading.Event) -> None:
        """Two loops: routing (this thread) and bookkeeping (a helper thread)."""
        log.info("router %s running", self.consumer)
        helper = threading.Thread(
            target=self._loop, args=(stop, self.bookkeeping_step), name="router-bookkeeping"
        )
        helper.start()
        try:
            self._loop(stop, self.routing_step)
        finally:
            stop.set()
            helper.join()

    @staticmethod
    def _loop(stop: threading.Event, step: Callable[[int], int]) -> None:
        while not stop.is_set():
            try:
                step(200)
            except redis.ConnectionError as exc:
                log.warning("Redis unavailable (%s); retrying", exc)
                stop.wait(1.0)
            except Exception as exc:  # boundary: log and keep the service up
                if database_down(exc):
                    log.warning("the database did not answer (%s); retrying", exc)
                    stop.wait(1.0)
                    continue
                log.exception("router step failed")
                stop.wait(0.5)

    def drain(self, *, rounds: int = 50) -> int:
        """Run rounds until nothing is left to do (tests and tools)."""
        total = 0
        for _ in range(rounds):
            done = self.step()
            total += done
            if not done:
                break
        return total

    # ------------------------------------------------------------ events

    def handle_entry(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            event = events.from_wire(fields)  # the one place an entry is taken apart
        except events.InvalidEvent as exc:
            log.warning("event %s skipped: %s", entry_id, exc)
            return
        self.handle(event)

    def _subscribe(self, cls: type[E], handler: Callable[[E], Result]) -> None:
        self._handlers[cls.TYPE] = cast(Callable[[events.Event], Result], handler)

    def _subscribe_all(self) -> None:
        """The engine's facts routing acts on, one handler each (``handle`` dispatches)."""
        self._subscribe(events.CallArrived, self._arrived)
        self._subscribe(events.CallQueued, self._enqueue)
        self._subscribe(events.CallbackRequested, self._callback_requested)
        self._subscribe(events.DigitReceived, self._digit)
        self._subscribe(events.CommandFailed, self._command_failed)
        self._subscribe(events.AgentAnswered, self._agent_answered)
        self._subscribe(events.AgentMissed, self._agent_missed)
        self._subscribe(events.CallerHungUp, self._caller_left)
        self._subscribe(events.Abandoned, self._caller_left)
        self._subscribe(events.CallEnded, self._call_over)
        self._subscribe(events.SlotFailed, self._call_over)
        self._subscribe(events.Held, self._held)
        self._subscribe(events.Unheld, self._held)
        self._subscribe(events.Transferred, self._transferred)
        self._subscribe(events.ConsultStarted, self._consult)
        self._subscribe(events.ConsultAnswered, self._consult)
        self._subscribe(events.ConsultEnded, self._consult)

    def handle(self, event: events.Event) -> None:
        if event.node == "routing":
            return  # our own call_reserved / call_overflowed / ... facts
        handler = self._handlers.get(event.type)
        if handler is None:
            return
        result = handler(event)
        if result is not None:
            services.deliver(self.ctx, result)

    def _arrived(self, event: events.CallArrived) -> Result:
        key = self.keys.routing(f"call:{event.call_id}")
        self.redis.hset(key, mapping={"caller": str(event.caller), "did": str(event.did)})
        if not self.redis.hexists(key, "state"):
            self.redis.expire(key, CALL_INFO_TTL_SECONDS)
        return None

    def _callback_requested(self, event: events.CallbackRequested) -> Result:
        number = numbers.normalize(str(event.number or ""))
        queue = str(event.queue or self.ctx.config.callbacks.queue)
        return self.routing.callback_requested(event.call_id, queue, number)

    def _digit(self, event: events.DigitReceived) -> Result:
        # node: the menu node, or the slot's phase when the caller is not in the menu
        if call_phases.from_slot(event.node) != call_phases.CallPhase.waiting:
            return None
        # A key pressed while waiting: "1" after routing offered a call-back takes it.
        call = self.routing.call(event.call_id)
        if (
            str(event.digit) == CALLBACK_DIGIT
            and call.get("cb_offered") == "1"
            and call.get("callback") != "1"
        ):
            return self.routing.callback_requested(event.call_id, call["queue"], "", confirm=True)
        return None

    def _command_failed(self, event: events.CommandFailed) -> Result:
        if event.command == CommandType.originate:
            # The engine could not place a call-back / click-to-call (no idle slot, …).
            return self.routing.hangup(event.call_id, final=True)
        if event.command == CommandType.transfer:
            return self._transfer_refused(event)
        return None

    def _agent_answered(self, event: events.AgentAnswered) -> Result:
        self.routing.answered(event.call_id, _int(event.agent_id))
        return None

    def _agent_missed(self, event: events.AgentMissed) -> Result:
        reason = str(event.reason or "no_answer")
        return self.routing.missed(event.call_id, _int(event.agent_id), reason=reason)

    def _caller_left(self, event: events.CallerHungUp | events.Abandoned) -> Result:
        return self.routing.hangup(event.call_id, final=False)

    def _call_over(self, event: events.CallEnded | events.SlotFailed) -> Result:
        return self.routing.hangup(event.call_id, final=True)

    def _held(self, event: events.Held | events.Unheld) -> Result:
        self.routing.hold(event.call_id, held=isinstance(event, events.Held))
        return None

    def _transferred(self, event: events.Transferred) -> Result:
        # both desktops (the engine's fact first, then routing's state changes): the agent
        # who handed the caller over, and an agent who took them
        before = _int(self.routing.call(event.call_id).get("agent"))
        told: dict[str, Any] = {"kind": event.kind, "to": event.to, "agent_id": event.agent_id}
        told.update(consult=bool(event.consult), from_agent_id=before)
        if event.answered is not None:  # a consultation completed before the target answered
            told["answered"] = bool(event.answered)
        self._tell(event, told, before, _int(event.agent_id))
        return self.routing.transferred(
            event.call_id,
            kind=str(event.kind or ""),
            to=str(event.to or ""),
            consult=bool(event.consult),
        )

    # ------------------------------------------------------------ consultation

    def _tell(self, event: events.Event, body: dict[str, Any], *agent_ids: int | None) -> None:
        """A desktop message (``type`` = the event's type) to each agent's socket."""
        message = json.dumps(
            {"type": str(event.type), "call_id": event.call_id, **body, "at": event.at},
            ensure_ascii=False,
        )
        for agent_id in dict.fromkeys(a for a in agent_ids if a is not None):
            self.redis.publish(self.keys.agent_channel(agent_id), message)

    def _consult(
        self, event: events.ConsultStarted | events.ConsultAnswered | events.ConsultEnded
    ) -> Result:
        """Routing's side of a consultation, and the two desktops told of each step."""
        call_id = event.call_id
        call = self.routing.call(call_id)
        consulting = _int(call.get("agent"))
        target = _int(event.agent_id) if event.kind == "agent" else None
        facts = {
            "kind": event.kind,
            "to": event.to,
            "from_agent_id": consulting,
            "target_agent_id": target,
        }
        # the desktops hear the engine's fact first, then routing's state changes
        if isinstance(event, events.ConsultStarted):
            self._tell(event, {**facts, "ring_timeout": event.ring_timeout}, consulting)
            if target is not None:
                # the target's desktop: who is asking, and about which caller
                offer = {**facts, "type": "consult_offer"}
                offer.update(caller=call.get("caller"), queue=call.get("queue"))
                self._tell(event, offer, target)
            return None
        if isinstance(event, events.ConsultAnswered):
            self._tell(event, facts, consulting, target)
            if target is not None:
                self.routing.answered(call_id, target, consult=True)
            return None
        extra = {"reason": event.reason, "answered": event.answered}
        self._tell(event, {**facts, **extra}, consulting, target)
        if target is None:
            return None
        return self.routing.release_transfer(call_id, target, reason=str(event.reason or ""))

    def _transfer_refused(self, event: events.CommandFailed) -> Result:
        """The engine refused a transfer: a target agent routing reserved for it is released,
        and the agent who asked is told why."""
        call = self.routing.call(event.call_id)
        result: dict[str, Any] | None = None
        target = _int(event.agent_id)
        if event.kind == "agent" and event.mode in {"blind", "consult"} and target:
            result = self.routing.release_transfer(event.call_id, target, reason="refused")
        body = {
            "command": event.command,
            "command_id": event.command_id,
            "mode": event.mode,
            "kind": event.kind,
            "reason": event.reason,
        }
        self._tell(event, body, _int(call.get("agent")))
        return result

    def _enqueue(self, event: events.CallQueued) -> Result:
        """Queue the call and offer it at once when an agent is free; the caller lookup (SQL)
        comes after, so it never delays the offer: for an offered call it feeds the screen
        pop, for a waiting one it raises a member's priority and is kept for the pop."""
        routing = self.routing
        queue = str(event.queue or "")
        caller = str(event.caller or routing.call(event.call_id).get("caller") or "")
        result = routing.enqueue(
            event.call_id,
            queue,
            priority=int(event.priority or 0),
            caller=caller or None,
            slot=event.slot or None,
            menu_path=list(event.menu_path or []),
            collected=dict(event.collected or {}),
        )
        offers = services.deliver(self.ctx, result)
        config = self.ctx.config.queues.queues.get(queue)
        if result.get("status") not in {"queued", "callback_offered"} or config is None:
            return {}  # a duplicate, or closed / overflowed at once
        if event.call_id in {o.call_id for o in offers}:
            return {}
        record = screenpop.prepare(self.ctx, event.call_id, caller)
        if record["customer"] and record["customer"]["member"]:
            routing.reprioritize(event.call_id, config.member_priority)  # members go first
        position, expected = routing.position(event.call_id)
        if position is not None and expected is not None:
            routing.write_position(event.call_id, position, expected)
            threshold = (
                config.callback_offer.expected_wait_over_seconds if config.callback_offer else None
            )
            if threshold and expected > threshold:
                routing.offer_callback(
                    event.call_id,
                    int(result["entry"]),
                    reason="expected_wait",
                    expected_wait=expected,
                )
        return {}

    # ------------------------------------------------------------ timers

    def fire_timers(self) -> int:
        fired = 0
        for member in self.routing.due_timers():
            try:
                services.deliver(self.ctx, self.routing.fire_timer(member))
            except CallCenterError as exc:
                log.info("timer %s refused: %s", member, exc.message)
            except Exception:  # boundary: a bad timer must not stop the others
                log.exception("timer %s failed", member)
            fired += 1
        return fired

    # ------------------------------------------------------------ agent state log

    def _log_states(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        rows = []
        for entry_id, fields in entries:
            if fields.get("type") != AgentEventType.state_changed:
                continue
            data = json.loads(fields.get("data") or "{}")
            rows.append(
                AgentStateChange(
                    agent_id=int(fields["agent_id"]),
                    at=datetime.fromisoformat(fields["at"]).astimezone(UTC),
                    from_state=str(data.get("from", "")),
                    to_state=str(data.get("to", "")),
                    reason=str(data.get("reason") or "") or None,
                    call_id=str(data.get("call_id") or "") or None,
                    stream_id=entry_id,
                    actor=str(data.get("actor") or "")[:64] or None,
                    transition=str(data.get("transition") or "") or None,
                )
            )
        if not rows:
            return
        try:
            self._insert_states(rows)
        except IntegrityError:
            # One bad row (an agent deleted meanwhile) must not block the log: row by row.
            for row in rows:
                try:
                    self._insert_states([row])
                except IntegrityError:
                    log.warning("state change %s not logged: agent %s", row.stream_id, row.agent_id)

    def _insert_states(self, rows: list[AgentStateChange]) -> None:
        with transaction(self.ctx.sessions) as session:
            seen = set(
                session.scalars(
                    select(AgentStateChange.stream_id).where(
                        AgentStateChange.stream_id.in_([r.stream_id for r in rows])
                    )
                )
            )
            session.add_all(
                [
                    AgentStateChange(
                        agent_id=r.agent_id,
                        at=r.at,
                        from_state=r.from_state,
                        to_state=r.to_state,
                        reason=r.reason,
                        call_id=r.call_id,
                        stream_id=r.stream_id,
                        actor=r.actor,
                        transition=r.transition,
                    )
                    for r in rows
                    if r.stream_id not in seen
                ]
            )

    def _attribute_shifts(self, entries: list[Entry]) -> None:
        """Each ended call gets the one shift it counts for (rule in cti/shifts.py)."""
        ended = [f["call_id"] for _id, f in entries if f.get("type") == EventType.call_ended]
        if not ended:
            return
        zone = self.ctx.settings.timezone
        with transaction(self.ctx.sessions) as session:
            calls = session.scalars(
                select(Call).where(Call.id.in_(ended), Call.shift_code.is_(None))
            ).all()
            for call in calls:
                agent_shift = (
                    session.scalar(select(Agent.shift_code).where(Agent.id == call.agent_id))
                    if call.agent_id is not None and call.answered_at is not None
                    else None
                )
                arrived = call.arrived_at or call.queued_at or call.ended_at
                if arrived is None:
                    continue
                call.shift_code = shifts.shift_for_call(
                    self.ctx.config.shifts, shifts.local_now(zone, arrived), agent_shift
                )

    # ------------------------------------------------------------ staffing

    def check_staffing(self) -> dict[str, Any]:
        report = services.staffing(self.ctx)
        key = self.keys.routing("staffing")
        self.redis.hset(
            key, mapping={k: json.dumps(v, ensure_ascii=False) for k, v in report.items()}
        )
        alert = bool(report["alert"])
        if alert != self._last_alert:
            self._last_alert = alert
            self.redis.publish(
                self.keys.routing("alerts"),
                json.dumps({"type": "staffing", **report}, ensure_ascii=False),
            )
            if alert:
                log.warning("staffing alert: %s", report["message"])
        return report


def _int(value: object) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def main(ctx: AppContext) -> None:
    """``callcenter router``: run until SIGTERM / Ctrl-C."""
    import signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    router = Router(ctx)
    router.warm_up()
    heap.settle()
    router.run(stop)
