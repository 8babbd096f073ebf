"""Originate commands (outbound callbacks) from the nodes' shared stream to this node's idle
slots.

Every node's supervisor reads ``keys.engine_commands`` in consumer group ``engine`` (its node
id the consumer name), so each command goes to exactly one node. A node takes as many as it
has idle slots, one per slot; a node with none takes none and leaves them to the others; a
command no node has taken within ``wait`` seconds is taken and failed ("no idle slot"), so
routing puts the caller back in line at once instead of waiting for its ring timer.

Why this is not a ``callcenter.consumers.ConsumerHost`` handler table: the host reads a fixed
count and hands each entry to the handler of its type. Here the read is gated by capacity
(nothing is read with no idle slot, and then the next unread entry's age is judged with the
server's clock without reading it), each entry is paired with a particular slot, and a command
one node cannot place is left for the others rather than handled. The host's recovery would
also change what happens here: it re-reads its own pending entries after a restart (a
command taken then could be minutes old and its caller already elsewhere) and recreates a
lost group where this code creates it once at start. It runs inside the supervisor's
non-blocking loop, not on a thread of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from callcenter.redis_keys import Keys
from callcenter.streams import CallEvent, Command, EventType
from ivr.slot_handle import SlotHandle

log = logging.getLogger("ivr.supervisor")

ENGINE_GROUP = "engine"  # consumer group of every node's supervisor on keys.engine_commands
ORIGINATE_WAIT_SECONDS = 2.0  # how long an originate waits for a node with an idle slot
RESERVE_SECONDS = 5.0  # a slot handed a command is not handed another until it reports busy


class OriginateForwarder:
    def __init__(
        self,
        client: Any,
        keys: Keys,
        node_id: str,
        idle_slots: Callable[[float], list[SlotHandle]],
    ) -> None:
        self.r = client
        self.keys = keys
        self.node_id = node_id
        self.idle_slots = idle_slots  # ready, no call, not reserved at the given time
        self.wait = ORIGINATE_WAIT_SECONDS

    def ensure_group(self) -> None:
        """Create the group at the stream's end the first time; later starts resume from the
        last command this group took, so a restarted engine loses none."""
        try:
            self.r.xgroup_create(self.keys.engine_commands, ENGINE_GROUP, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def forward_safely(self) -> None:
        try:
            self.forward()
        except Exception:  # boundary: the supervisor's loop carries on
            log.exception("forwarding originate commands failed")

    def forward(self) -> None:
        """Take as many commands as this node has idle slots and hand each to a slot; with
        none idle, fail a command no node took in time (see the module's docstring)."""
        stream = self.keys.engine_commands
        free = self.idle_slots(time.monotonic())
        if not free:
            self._fail_stale()
            return
        answer: Any = self.r.xreadgroup(ENGINE_GROUP, self.node_id, {stream: ">"}, count=len(free))
        for _stream, entries in answer or []:
            # at most one command per idle slot was read: each gets its own
            for (entry_id, fields), handle in zip(entries, free, strict=False):
                self._hand_to(handle, Command.from_fields(fields))
                self.r.xack(stream, ENGINE_GROUP, entry_id)

    def _fail_stale(self) -> None:
        stream = self.keys.engine_commands
        groups: Any = self.r.xinfo_groups(stream)
        last = next((g["last-delivered-id"] for g in groups if g["name"] == ENGINE_GROUP), None)
        if last is None:
            return
        oldest: Any = self.r.xrange(stream, min=f"({last}", count=1)
        if not oldest:
            return
        now_ms = _server_ms(self.r)
        if _age_seconds(now_ms, oldest[0][0]) < self.wait:
            return
        answer: Any = self.r.xreadgroup(ENGINE_GROUP, self.node_id, {stream: ">"}, count=1)
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                if _age_seconds(now_ms, entry_id) >= self.wait:
                    self._fail(Command.from_fields(fields), "no idle slot")
                else:  # another node took the old one meanwhile: leave this one for others
                    self.r.xadd(stream, fields)
                self.r.xack(stream, ENGINE_GROUP, entry_id)

    def _fail(self, command: Command, reason: str) -> None:
        event = CallEvent(
            type=EventType.command_failed,
            call_id=command.call_id,
            node="supervisor",
            data={"command_id": command.id, "command": command.type, "reason": reason},
        )
        self.r.xadd(self.keys.events, event.to_fields())

    def _hand_to(self, handle: SlotHandle, command: Command) -> None:
        handle.reserved_until = time.monotonic() + RESERVE_SECONDS
        log.info("originate %s for call %s -> %s", command.id, command.call_id, handle.spec.name)
        self.r.xadd(self.keys.slot_commands(handle.spec.name), command.to_fields())


def _server_ms(client: Any) -> int:
    """The Redis server's clock in milliseconds: the clock stream entry ids are made of."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _age_seconds(now_ms: int, entry_id: str) -> float:
    """How old a stream entry is at ``now_ms`` (see :func:`_server_ms`)."""
    return (now_ms - int(entry_id.split("-")[0])) / 1000
