"""Routing (ACD) state in Redis, changed only by ``cti/lua/routing.lua``.

Every decision (an agent goes ready, a call arrives, an offer is missed, a timer fires) is one
script call, and each script call ends by matching waiting calls with ready agents in the same
atomic step. So any number of processes (routers, API workers, on one machine or several) can
share one agent pool: an agent is never offered two calls and a call never offered to two agents.

Redis layout (all under ``{prefix}:routing:``; documented for operators in docs/cti.md):

    agent:{id}                 hash: state, reason, since, call_id, uri, extension, shift,
                               shift_start/shift_end (minute of day), idle_since, misses,
                               calls_today/calls_day, wrap_until, disposition
    agent:{id}:queues          hash: queue -> skill level (the agent's memberships)
    agents                     set: logged-in agent ids
    queues                     set: queue codes (from queues.toml)
    queue:{q}:config           hash: the queue's routing settings (synced from queues.toml)
    queue:{q}:members          hash: logged-in agent id -> skill level
    queue:{q}:ready            zset: ready agent id, score = idle since (epoch s)
    queue:{q}:waiting          zset: call id, score = (9 - priority) * 1e12 + arrival sequence
    queue:{q}:aht              average handle time (s), moving average
    call:{id}                  hash: state (a phase of callcenter/call_phases.py, moved only
                               by that table's moves: waiting/reserved/connected/…),
                               queue, priority, seq, entry, agent, callback, number, caller, slot,
                               menu_path, collected, position, expected_wait, outcome:{entry}
    stats:{q}                  hash: entered, answered, abandoned, overflowed, called_back, closed
    timers                     zset: "kind|…" -> due epoch (ring, wrap, overflow, cboffer, announce)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any, cast
from zoneinfo import ZoneInfo

import redis

from callcenter import call_phases
from callcenter.errors import Conflict, InvalidInput, NotFound
from callcenter.redis_keys import Keys
from config.loader import CenterConfig
from cti import state as agent_state
from cti.errors import AGENT_UNKNOWN_TRANSITION, CALL_ROUTING_REFUSED, QUEUE_NOT_FOUND

DEFAULT_HANDLE_SECONDS = 180.0  # expected-wait estimate before any call was handled
RING_GRACE_SECONDS = 3.0  # the engine reports a ring timeout first; this timer is the backstop
DEFAULT_WRAP_UP_SECONDS = 30  # after a click-to-call (no queue)

Clock = Callable[[], float]

# Texts of the announcements routing asks the engine to play (it renders ``text`` to speech);
# "system.callback" (the call-back confirmation) is one of the engine's own prompts.
PROMPTS: dict[str, dict[str, str]] = {
    "callback_offer": {
        "zh-CN": "当前排队人数较多。如需稍后由我们回电，请按1，您的排队位置将为您保留。",
        "en": "All our agents are busy. Press 1 to be called back; you keep your place in line.",
    },
    # the call-back offer when nobody serving the queue is logged in
    "callback_offer.no_agents": {
        "zh-CN": "现在没有客服人员值班。如需由我们回电，请按1，我们将按您的来电顺序为您回电。",
        "en": "No agent is on duty right now. Press 1 to be called back in the order you called.",
    },
    "no_agents": {
        "zh-CN": "抱歉，现在没有客服人员值班，请稍后再拨。再见。",
        "en": "Sorry, no agent is available now. Please call again later. Goodbye.",
    },
}
CALLBACK_DIGIT = "1"  # pressed while queued after a call-back offer


@dataclass(frozen=True)
class Offer:
    """Routing reserved ``agent_id`` for ``call_id`` from ``queue`` (the offer is on its way)."""

    call_id: str
    agent_id: int
    queue: str


def check_queues(config: CenterConfig, queues: Iterable[str]) -> None:
    """InvalidInput naming every queue queues.toml does not have."""
    unknown = sorted(set(queues) - set(config.queues.queues))
    if unknown:
        raise InvalidInput(
            f"unknown queue(s): {', '.join(unknown)}",
            details={"queues": unknown},
            error_id=QUEUE_NOT_FOUND,
        )


def _render_script() -> str:
    source = resources.files("cti").joinpath("lua/routing.lua").read_text(encoding="utf-8")
    return source.replace("__TRANSITIONS__", agent_state.lua_rules()).replace(
        "__CALL_MOVES__", call_phases.lua_rules()
    )


SCRIPT = _render_script()


class Routing:
    """One process's handle on the shared routing state. Cheap; make one per process."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        config: CenterConfig,
        *,
        timezone: str = "Asia/Shanghai",
        clock: Clock = time.time,
        language: str = "zh-CN",
    ) -> None:
        self.redis = client
        self.keys = keys
        self.config = config
        self.zone = ZoneInfo(timezone)
        self.clock = clock
        self.language = language if language in {"zh-CN", "en"} else "zh-CN"
        self._sha = self.redis.script_load(SCRIPT)
        self.sync_queues()

    # ------------------------------------------------------------ plumbing

    def key(self, name: str) -> str:
        return self.keys.routing(name)

    def local_now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).astimezone(self.zone)

    def _run(self, op: str, **args: Any) -> dict[str, Any]:
        now = self.clock()
        local = datetime.fromtimestamp(now, UTC).astimezone(self.zone)
        args.update(
            now=now,
            iso=datetime.fromtimestamp(now, UTC).isoformat(),
            mod=local.hour * 60 + local.minute,
            day=local.date().isoformat(),
            ring_grace=RING_GRACE_SECONDS,
            default_wrap=DEFAULT_WRAP_UP_SECONDS,
        )
        payload = json.dumps(args, ensure_ascii=False)
        try:
            raw = self.redis.evalsha(self._sha, 0, self.keys.prefix, op, payload)
        except redis.exceptions.NoScriptError:  # Redis restarted or SCRIPT FLUSH: load again
            self._sha = self.redis.script_load(SCRIPT)
            raw = self.redis.evalsha(self._sha, 0, self.keys.prefix, op, payload)
        result: dict[str, Any] = json.loads(cast(str, raw))
        error = result.get("error")
        if error == "illegal":
            raise agent_state.illegal(result["transition"], result["state"])
        if error == "unknown_queue":
            raise NotFound(
                f"队列不存在 / queue {result['queue']!r} does not exist",
                details={"queue": result["queue"]},
                error_id=QUEUE_NOT_FOUND,
            )
        if error:
            raise Conflict(
                f"routing refused {op}: {error}", details=result, error_id=CALL_ROUTING_REFUSED
            )
        return result

    @staticmethod
    def offers(result: dict[str, Any]) -> list[Offer]:
        return [Offer(str(c), int(a), str(q)) for c, a, q in result.get("offers") or []]

    def sync_queues(self) -> dict[str, Any]:
        """Copy each queue's routing settings from queues.toml into Redis (idempotent), and
        retire the queues it no longer defines (``retire_queues``: their settings removed,
        their waiting calls moved to their overflow queue, else to the first queue)."""
        pipe = self.redis.pipeline()
        for code, queue in self.config.queues.queues.items():
            callback = queue.callback_offer
            pipe.hset(
                self.key(f"queue:{code}:config"),
                mapping={
                    "strategy": queue.strategy,
                    "off_shift": "1" if queue.off_shift_agents_may_answer else "0",
                    "ring_timeout": queue.ring_timeout_seconds,
                    "wrap_up": queue.wrap_up_seconds,
                    "missed_logout": queue.missed_offers_to_logout,
                    "overflow_after": queue.overflow.after_seconds if queue.overflow else 0,
                    "overflow_to": queue.overflow.to if queue.overflow else "",
                    "callback_after": (callback.after_seconds or 0) if callback else 0,
                    "callback_expected_over": (
                        (callback.expected_wait_over_seconds or 0) if callback else 0
                    ),
                    "announce_every": queue.announce_every_seconds,
                    "no_agents": queue.no_agents,
                    "member_priority": queue.member_priority,
                },
            )
            pipe.sadd(self.key("queues"), code)
        pipe.hset(
            self.key("prompts"),
            mapping={key: texts[self.language] for key, texts in PROMPTS.items()},
        )
        pipe.execute()
        codes = list(self.config.queues.queues)
        if not codes:
            return {}
        return self._run("retire_queues", keep=codes, fallback=codes[0])

    # ------------------------------------------------------------ agents

    def login(
        self,
        agent_id: int,
        *,
        extension: str,
        uri: str,
        queues: dict[str, int],
        shift: str | None,
        shift_window: tuple[int, int],
        actor: str,
    ) -> dict[str, Any]:
        check_queues(self.config, queues)
        return self._run(
            "login",
            agent=agent_id,
            extension=extension,
            uri=uri,
            queues=queues,
            shift=shift or "",
            shift_start=shift_window[0],
            shift_end=shift_window[1],
            actor=actor,
        )

    def logout(self, agent_id: int, *, reason: str = "", actor: str) -> dict[str, Any]:
        return self._run("logout", agent=agent_id, reason=reason, actor=actor)

    def transition(
        self, agent_id: int, name: str, *, reason: str = "", actor: str, dispatch: bool = True
    ) -> dict[str, Any]:
        """An agent-requested change: ready, not_ready (with reason) or end_wrap_up."""
        if name not in {"ready", "not_ready", "end_wrap_up"}:
            raise InvalidInput(
                f"transition {name!r} cannot be requested directly",
                error_id=AGENT_UNKNOWN_TRANSITION,
            )
        return self._run(
            "transition",
            agent=agent_id,
            transition=name,
            reason=reason,
            actor=actor,
            dispatch=dispatch,
        )

    def set_queues(self, agent_id: int, queues: dict[str, int], *, actor: str) -> dict[str, Any]:
        check_queues(self.config, queues)
        return self._run("set_queues", agent=agent_id, queues=queues, actor=actor, dispatch=True)

    def wrap_end(
        self,
        agent_id: int,
        *,
        call_id: str = "",
        disposition: str | None = None,
        then_state: str = "ready",
        reason: str = "",
        actor: str = "routing",
        strict: bool = False,
    ) -> dict[str, Any]:
        args: dict[str, Any] = {
            "agent": agent_id,
            "call": call_id,
            "then_state": then_state,
            "reason": reason,
            "actor": actor,
            "strict": strict,
            "dispatch": True,
        }
        if disposition is not None:
            args["disposition"] = disposition
        return self._run("wrap_end", **args)

    def wrap_extend(
        self, agent_id: int, seconds: int, *, disposition: str | None = None
    ) -> dict[str, Any]:
        args: dict[str, Any] = {"agent": agent_id, "seconds": seconds}
        if disposition is not None:
            args["disposition"] = disposition
        return self._run("wrap_extend", **args)

    def set_disposition(self, agent_id: int, disposition: str) -> dict[str, Any]:
        return self._run("disposition", agent=agent_id, disposition=disposition)

    def agent(self, agent_id: int) -> dict[str, Any]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.key(f"agent:{agent_id}"))
        pipe.hgetall(self.key(f"agent:{agent_id}:queues"))
        raw, queues = cast(tuple[dict[str, str], dict[str, str]], pipe.execute())
        state = raw.get("state", "logged_out")
        return {
            "agent_id": agent_id,
            "state": state,
            "reason": raw.get("reason") or None,
            "since": _epoch_iso(raw.get("since")),
            "call_id": raw.get("call_id") or None,
            "extension": raw.get("extension"),
            "shift": raw.get("shift") or None,
            "queues": {q: int(level) for q, level in sorted(queues.items())},
            "misses_in_a_row": int(raw.get("misses") or 0),
            "calls_today": int(raw.get("calls_today") or 0)
            if raw.get("calls_day") == self.local_now().date().isoformat()
            else 0,
            "wrap_up_until": _epoch_iso(raw.get("wrap_until")),
            "disposition": raw.get("disposition") or None,
        }

    def logged_in_agents(self) -> list[int]:
        return sorted(int(a) for a in cast(set[str], self.redis.smembers(self.key("agents"))))

    def agent_states(self, agent_ids: list[int]) -> dict[int, str]:
        """Each agent's state in one round trip (wallboards, staffing)."""
        pipe = self.redis.pipeline(transaction=False)
        for agent_id in agent_ids:
            pipe.hget(self.key(f"agent:{agent_id}"), "state")
        states = cast(list[str | None], pipe.execute())
        return {a: s or "logged_out" for a, s in zip(agent_ids, states, strict=True)}

    # ------------------------------------------------------------ calls (engine facts)

    def enqueue(
        self,
        call_id: str,
        queue: str,
        *,
        priority: int = 0,
        caller: str | None = None,
        slot: str | None = None,
        menu_path: list[Any] | None = None,
        collected: dict[str, Any] | None = None,
        did: str | None = None,
    ) -> dict[str, Any]:
        args: dict[str, Any] = {
            "call": call_id,
            "queue": queue,
            "priority": max(0, min(int(priority), 9)),
            "dispatch": True,
        }
        for name, value in (
            ("caller", caller),
            ("slot", slot),
            ("menu_path", menu_path),
            ("collected", collected),
            ("did", did),
        ):
            if value is not None:
                args[name] = value
        return self._run("enqueue", **args)

    def reprioritize(self, call_id: str, priority: int) -> dict[str, Any]:
        """Raise a waiting call's priority (never lowers it); it keeps its arrival order."""
        return self._run("reprioritize", call=call_id, priority=max(0, min(int(priority), 9)))

    def callback_requested(
        self,
        call_id: str,
        queue: str,
        number: str,
        *,
        caller: str | None = None,
        confirm: bool = False,
    ) -> dict[str, Any]:
        """The caller wants a call-back (menu node, or the key press after routing's offer:
        then ``confirm`` plays the engine's confirmation and ends the caller's leg). An empty
        ``number`` means the number they called from."""
        args: dict[str, Any] = {
            "call": call_id,
            "queue": queue,
            "number": number,
            "confirm": confirm,
            "dispatch": True,
        }
        if caller:
            args["caller"] = caller
        return self._run("callback_requested", **args)

    def answered(
        self, call_id: str, agent_id: int | None, *, consult: bool = False
    ) -> dict[str, Any]:
        """The agent answered; ``consult``: a consultation target answered (they go on call,
        the call stays the consulting agent's until the hand-over)."""
        args: dict[str, Any] = {"call": call_id, "consult": consult}
        if agent_id is not None:
            args["agent"] = agent_id
        return self._run("answered", **args)

    def missed(
        self, call_id: str, agent_id: int | None, *, reason: str = "no_answer"
    ) -> dict[str, Any]:
        args: dict[str, Any] = {"call": call_id, "reason": reason, "dispatch": True}
        if agent_id is not None:
            args["agent"] = agent_id
        return self._run("missed", **args)

    def hangup(self, call_id: str, *, final: bool) -> dict[str, Any]:
        """The caller hung up (final=False) or the call ended (final=True)."""
        return self._run("hangup", call=call_id, final=final, dispatch=True)

    def hold(self, call_id: str, *, held: bool) -> dict[str, Any]:
        return self._run("hold" if held else "unhold", call=call_id)

    def transferred(
        self, call_id: str, *, kind: str, to: str, consult: bool = False
    ) -> dict[str, Any]:
        """The engine moved the caller away from the agent: blind, or a consultation
        completed (``consult``: the target agent already on the call keeps it)."""
        return self._run(
            "transferred", call=call_id, kind=kind, to=to, consult=consult, dispatch=True
        )

    def release_transfer(self, call_id: str, agent_id: int, *, reason: str) -> dict[str, Any]:
        """A consultation ended without a hand-over (``reason`` from the engine: no_answer,
        declined, cancelled, target_hung_up, …) or a transfer to ``agent_id`` was refused: the
        target reserved for the call goes back (missed-offer rules for no_answer, else ready)."""
        return self._run(
            "release_transfer", call=call_id, agent=agent_id, reason=reason, dispatch=True
        )

    def transfer_to_number(self, call_id: str, *, actor: str) -> dict[str, Any]:
        return self._run("transfer_number", call=call_id, actor=actor)

    def reserve_transfer_target(
        self, call_id: str, target_agent_id: int, *, actor: str
    ) -> dict[str, Any]:
        return self._run("transfer_agent", call=call_id, target=target_agent_id, actor=actor)

    def originate(
        self,
        agent_id: int,
        call_id: str,
        *,
        number: str,
        trunk: str,
        customer_id: int | None,
        actor: str,
        ring_timeout: int = 20,
    ) -> dict[str, Any]:
        return self._run(
            "originate",
            agent=agent_id,
            call=call_id,
            number=number,
            trunk=trunk,
            customer_id=customer_id,
            actor=actor,
            ring_timeout=ring_timeout,
        )

    def match(self) -> list[Offer]:
        return self.offers(self._run("match"))

    # ------------------------------------------------------------ timers

    def due_timers(self, limit: int = 200) -> list[str]:
        """Claim the timers that are due; each is handed to exactly one caller (ZREM wins)."""
        due = cast(
            list[str],
            self.redis.zrangebyscore(self.key("timers"), "-inf", self.clock(), 0, limit),
        )
        claimed = []
        for member in due:
            if self.redis.zrem(self.key("timers"), member):
                claimed.append(member)
        return claimed

    def fire_timer(self, member: str) -> dict[str, Any]:
        kind, _, rest = member.partition("|")
        if kind == "ring":
            call_id, agent = rest.rsplit("|", 1)
            return self._run("ring_timer", call=call_id, agent=int(agent), dispatch=True)
        if kind == "wrap":
            agent, call_id = rest.split("|", 1)
            return self.wrap_end(int(agent), call_id=call_id)
        if kind == "overflow":
            call_id, entry = rest.rsplit("|", 1)
            return self._run("overflow", call=call_id, entry=int(entry), dispatch=True)
        if kind == "cboffer":
            call_id, entry = rest.rsplit("|", 1)
            return self.offer_callback(call_id, int(entry), reason="wait")
        if kind == "announce":
            call_id, entry = rest.rsplit("|", 1)
            return self.announce(call_id, int(entry))
        if kind == "hangup":
            return self._run("hangup_caller", call=rest, reason="message_played")
        return {"status": "unknown_timer"}

    def offer_callback(
        self, call_id: str, entry: int, *, reason: str, expected_wait: int | None = None
    ) -> dict[str, Any]:
        return self._run(
            "offer_callback",
            call=call_id,
            entry=entry,
            reason=reason,
            expected_wait=expected_wait,
        )

    # ------------------------------------------------------------ position and expected wait

    def call(self, call_id: str) -> dict[str, str]:
        return cast(dict[str, str], self.redis.hgetall(self.key(f"call:{call_id}")))

    def position(self, call_id: str) -> tuple[int | None, int | None]:
        """(1-based place in its queue, expected wait in seconds) of a waiting call."""
        call = self.call(call_id)
        if call.get("state") != "waiting":
            return None, None
        queue = call["queue"]
        rank = self.redis.zrank(self.key(f"queue:{queue}:waiting"), call_id)
        if rank is None:
            return None, None
        position = int(cast(int, rank)) + 1
        return position, self.expected_wait(queue, position)

    def seconds_each(self, queue: str) -> float:
        """Expected seconds of waiting per place in line: average handle time / agents."""
        aht = float(cast(str | None, self.redis.get(self.key(f"queue:{queue}:aht"))) or 0)
        aht = aht or DEFAULT_HANDLE_SECONDS
        staffed = int(cast(int, self.redis.hlen(self.key(f"queue:{queue}:members"))))
        return aht / max(staffed, 1)

    def expected_wait(self, queue: str, position: int) -> int:
        """position x average handle time / agents serving the queue (at least one)."""
        return math.ceil(position * self.seconds_each(queue))

    def announce(self, call_id: str, entry: int) -> dict[str, Any]:
        """Refresh the figures the engine announces to a waiting caller; schedule the next.

        The engine plays the position announcements itself (every announce_every_seconds) from
        live data: the caller's rank in ``queue:{q}:waiting`` and ``seconds_each`` in the hash
        ``queue:{q}:stats``. Routing keeps ``seconds_each`` current and also writes
        ``position`` / ``expected_wait`` / ``position_at`` on the ``call:{id}`` hash.
        """
        call = self.call(call_id)
        if call.get("state") != "waiting" or call.get("entry") != str(entry):
            return {"status": "ignored"}
        position, expected = self.position(call_id)
        if position is None or expected is None:
            return {"status": "ignored"}
        self.write_position(call_id, position, expected)
        every = self.config.queues.queues[call["queue"]].announce_every_seconds
        if every > 0:
            self.redis.zadd(
                self.key("timers"), {f"announce|{call_id}|{entry}": self.clock() + every}
            )
        return {"status": "announced", "position": position, "expected_wait": expected}

    def write_position(self, call_id: str, position: int, expected: int) -> None:
        queue = self.call(call_id).get("queue")
        if queue:
            self.redis.hset(
                self.key(f"queue:{queue}:stats"), "seconds_each", f"{self.seconds_each(queue):.1f}"
            )
        self.redis.hset(
            self.key(f"call:{call_id}"),
            mapping={
                "position": position,
                "expected_wait": expected,
                "position_at": f"{self.clock():.3f}",
            },
        )

    # ------------------------------------------------------------ lead views

    def queue_status(self) -> list[dict[str, Any]]:
        now = self.clock()
        rows = []
        for code, queue in self.config.queues.queues.items():
            waiting = cast(
                list[tuple[str, float]],
                self.redis.zrange(self.key(f"queue:{code}:waiting"), 0, -1, withscores=True),
            )
            members = cast(dict[str, str], self.redis.hgetall(self.key(f"queue:{code}:members")))
            by_state: dict[str, int] = {}
            for agent_id in members:
                state = cast(str | None, self.redis.hget(self.key(f"agent:{agent_id}"), "state"))
                by_state[state or "logged_out"] = by_state.get(state or "logged_out", 0) + 1
            longest = 0.0
            for call_id, _score in waiting:
                entered = cast(
                    str | None, self.redis.hget(self.key(f"call:{call_id}"), "entered_at")
                )
                if entered:
                    longest = max(longest, now - float(entered))
            stats = cast(dict[str, str], self.redis.hgetall(self.key(f"stats:{code}")))
            rows.append(
                {
                    "queue": code,
                    "name": {"zh-CN": queue.name.zh, "en": queue.name.en},
                    "strategy": queue.strategy,
                    "waiting": len(waiting),
                    "longest_wait_seconds": round(longest, 1),
                    "agents_logged_in": len(members),
                    "agents_by_state": by_state,
                    "stats": {k: int(v) for k, v in stats.items()},
                }
            )
        return rows


def _epoch_iso(value: str | None) -> str | None:
    if not value:
        return None
    return datetime.fromtimestamp(float(value), UTC).isoformat()
