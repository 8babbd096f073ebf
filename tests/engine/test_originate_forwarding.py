"""Originate commands on the nodes' shared stream go to a node with an idle slot: a node whose
slots are all busy leaves them to the others, and a command no node can take fails quickly
(so routing puts the caller back in line instead of waiting for its ring timer).

The supervisors here run no slot processes: each gets slot handles in the state its pool
would report (ready and idle, or busy), and the test reads what lands on the real Redis."""

from __future__ import annotations

import time
from typing import Any, cast

from callcenter.context import AppContext, build_context
from callcenter.streams import CallEvent, Command, CommandType
from ivr.slot_handle import SlotHandle
from ivr.spec import SlotSpec
from ivr.supervisor import Supervisor


def node(ctx: AppContext, name: str, *, idle: int, busy: int = 0) -> Supervisor:
    context = (
        ctx
        if ctx.settings.node_id == name
        else build_context(ctx.settings.model_copy(update={"node_id": name}))
    )
    sup = Supervisor(context, {}, with_edge=False, with_records=False)
    for index in range(idle + busy):
        sup.pool.slots[index] = SlotHandle(
            index=index,
            spec=SlotSpec(f"{name}-s{index:02d}", index, "127.0.0.1", 0, 0, 0, ()),
            process=cast(Any, None),
            conn=cast(Any, None),
            status="ready" if index < idle else "busy",
            call={} if index < idle else {"call_id": f"busy-{index}"},
        )
    sup.originates.ensure_group()
    return sup


def originate(ctx: AppContext, call_id: str) -> None:
    command = Command(
        type=CommandType.originate, call_id=call_id, id=f"cmd-{call_id}", data={"number": "1"}
    )
    client: Any = ctx.redis
    client.xadd(ctx.keys.engine_commands, command.to_fields())


def slot_commands(ctx: AppContext, slot: str) -> list[str]:
    entries: Any = ctx.redis.xrange(ctx.keys.slot_commands(slot))
    return [Command.from_fields(f).call_id for _id, f in entries]


def failures(ctx: AppContext) -> list[tuple[str, str]]:
    entries: Any = ctx.redis.xrange(ctx.keys.events)
    events = [CallEvent.from_fields(f) for _id, f in entries]
    return [(e.call_id, str(e.data["reason"])) for e in events if e.type == "command_failed"]


def test_a_busy_node_leaves_originates_to_a_node_with_idle_slots(ctx: AppContext) -> None:
    full = node(ctx, ctx.settings.node_id, idle=0, busy=2)
    spare = node(ctx, "node-b", idle=2)
    for call_id in ("cb-1", "cb-2", "cb-3"):
        originate(ctx, call_id)
    full.originates.forward()  # takes nothing: it has no idle slot
    spare.originates.forward()  # two idle slots: takes two, one each
    assert slot_commands(ctx, "node-b-s00") == ["cb-1"]
    assert slot_commands(ctx, "node-b-s01") == ["cb-2"]
    spare.originates.forward()  # both just reserved: the third waits on the stream
    assert failures(ctx) == []
    assert slot_commands(ctx, "node-b-s00") == ["cb-1"]
    for handle in spare.pool.slots.values():
        handle.reserved_until = 0.0  # the two calls ended; the slots are idle again
    spare.originates.forward()
    assert slot_commands(ctx, "node-b-s00") == ["cb-1", "cb-3"]
    assert failures(ctx) == []


def test_an_originate_no_node_can_take_fails_after_the_wait(ctx: AppContext) -> None:
    full = node(ctx, ctx.settings.node_id, idle=0, busy=3)
    full.originates.wait = 0.3  # 2 s in production
    originate(ctx, "cb-late")
    full.originates.forward()
    assert failures(ctx) == []  # another node may still take it
    deadline = time.monotonic() + 5
    while not failures(ctx) and time.monotonic() < deadline:
        time.sleep(0.1)
        full.originates.forward()
    assert failures(ctx) == [("cb-late", "no idle slot")]
    pending: Any = ctx.redis.xpending(ctx.keys.engine_commands, "engine")
    assert pending["pending"] == 0  # taken and acknowledged: no node will place it later
