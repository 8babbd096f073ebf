"""Which media nodes' slots a standalone edge dispatches to: announcements in Redis.

A media node joining an edge (``callcenter engine --node NAME --host ADDRESS``) cannot reach
the edge's control socket (it may run on another host), so it announces its running slots in
Redis every half second with a short TTL; the edge (``callcenter edge``) reads the
announcements and changes its dispatcher to match. A node that stops withdraws at once; a
node that dies stops being announced when its TTL runs out, and the edge takes its slots
out of rotation. Each announcement also renews the node's liveness key (a longer TTL,
``ivr.node_calls.NODE_DEAD_AFTER_MS``): once that lapses too the node is dead
(:func:`dead_nodes`) and the edge ends the calls it carried (``ivr/node_calls.py``).
A slot that dies alone (its node lives on and restarts it at once, on the same address) may
never be missing from an announcement: its node reports it on the lost-slots stream
(:func:`report_lost_slot`), which every standalone edge reads (:class:`LostSlots`) to end the
dialogs it routed for that slot.
Pure Redis: nothing here imports pjsua2 or runs Kamailio.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from callcenter.health import Rotation
from callcenter.redis_keys import Keys
from ivr.node_calls import NODE_DEAD_AFTER_MS, alive_key

if TYPE_CHECKING:  # process.py runs Kamailio; this module stays importable without it
    from ivr.edge.process import SlotState

ANNOUNCE_EVERY_SECONDS = 0.5
ANNOUNCE_TTL_MS = 1500  # three missed announcements and the node's slots leave rotation
LOST_SLOTS_KEEP = 1000  # entries kept on the lost-slots stream (edges read it 4 times a second)


def nodes_key(prefix: str) -> str:
    """The nodes that announced slots (a set; members whose announcement expired are pruned)."""
    return f"{prefix}:edge:nodes"


def node_slots_key(prefix: str, node: str) -> str:
    """One node's running slot URIs (JSON list), expiring unless announced again."""
    return f"{prefix}:edge:node:{node}:slots"


def lost_slots_key(prefix: str) -> str:
    """Slots that died mid-life on a node that lives on (a stream: node, uri)."""
    return f"{prefix}:edge:lost_slots"


def announce(client: Any, prefix: str, node: str, uris: list[str]) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.set(node_slots_key(prefix, node), json.dumps(sorted(uris)), px=ANNOUNCE_TTL_MS)
    pipe.set(alive_key(Keys(prefix), node), "1", px=NODE_DEAD_AFTER_MS)
    pipe.sadd(nodes_key(prefix), node)
    pipe.execute()


def withdraw(client: Any, prefix: str, node: str) -> None:
    pipe = client.pipeline(transaction=False)
    pipe.delete(node_slots_key(prefix, node), alive_key(Keys(prefix), node))
    pipe.srem(nodes_key(prefix), node)
    pipe.execute()


def report_lost_slot(client: Any, prefix: str, node: str, uri: str) -> None:
    """Tell every standalone edge that ``node``'s slot at ``uri`` died: each ends the dialogs
    it routed for it (BYE to the caller and to the agent)."""
    client.xadd(
        lost_slots_key(prefix), {"node": node, "uri": uri}, maxlen=LOST_SLOTS_KEEP, approximate=True
    )


@dataclass
class LostSlots:
    """One edge's reading position on the lost-slots stream. It starts at the stream's end:
    a slot lost before this edge started carried no dialog this edge holds, and its address
    may carry a live slot's calls by now."""

    prefix: str
    last_id: str = ""

    def start(self, client: Any) -> None:
        newest = client.xrevrange(lost_slots_key(self.prefix), count=1)
        self.last_id = _text(newest[0][0]) if newest else "0-0"

    def read(self, client: Any) -> list[str]:
        """The slot URIs reported lost since the last read, oldest first."""
        if not self.last_id:
            self.start(client)
        answer = client.xread({lost_slots_key(self.prefix): self.last_id}, count=100)
        uris: list[str] = []
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                self.last_id = _text(entry_id)
                uri = fields.get("uri") or fields.get(b"uri")
                if uri:
                    uris.append(_text(uri))
        return uris


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def members(client: Any, prefix: str) -> dict[str, list[str]]:
    """node -> its announced slot URIs, for every node whose announcement is current."""
    nodes = sorted(str(n) for n in client.smembers(nodes_key(prefix)))
    if not nodes:
        return {}
    found: dict[str, list[str]] = {}
    values = client.mget([node_slots_key(prefix, node) for node in nodes])
    for node, value in zip(nodes, values, strict=True):
        if value is not None:  # lapsed: out of rotation (dead_nodes decides if it is dead)
            found[node] = [str(uri) for uri in json.loads(value)]
    return found


def dead_nodes(client: Any, prefix: str) -> list[str]:
    """Nodes that joined and neither withdrew nor renewed their liveness key in time: each is
    removed from the set and returned to exactly one caller (two edges never both reap it)."""
    nodes = sorted(str(n) for n in client.smembers(nodes_key(prefix)))
    if not nodes:
        return []
    keys = Keys(prefix)
    alive = client.mget([alive_key(keys, node) for node in nodes])
    return [
        node
        for node, flag in zip(nodes, alive, strict=True)
        if flag is None and client.srem(nodes_key(prefix), node)
    ]


def rotation_of(
    node: str, states: dict[str, SlotState], running: set[str], busy: set[str]
) -> Rotation:
    """What an edge would do with a new call, from its dispatcher's ``states`` and the slot
    URIs really ``running`` behind it (``busy``: those carrying a call). An address active in
    the dispatcher with no running slot behind it (the edge starts with every line's address
    active; a dead slot stays active until an OPTIONS probe times out) would take a call, fail
    over a few times and answer 486: the edge is not ready while it has one."""
    active = [uri for uri, state in states.items() if state.active and uri in running]
    free = sum(1 for uri in active if uri not in busy and states[uri].load == 0)
    dead = sum(1 for uri, state in states.items() if state.active and uri not in running)
    if dead:
        problem = f"the edge still has {dead} address(es) with no running slot in rotation"
    elif not active:
        problem = f"{len(running)} slot(s) running, none active at the edge yet"
    else:
        problem = ""
    return Rotation(node, len(active), free, len(running), problem)


@dataclass
class SlotsSeen:
    """The slots each node announced while an edge watched it (pure bookkeeping).

    A node that is no longer announced is either stalled or gone: its liveness key decides
    (``ivr.node_calls.NODE_DEAD_AFTER_MS``). Once it is gone, the edge ends the agents' legs of
    the calls its slots had placed (``Edge.end_slot_dialogs``): nothing on the node can. Each
    edge keeps its own record, since each holds the dialogs of the calls it routed."""

    slots: dict[str, set[str]] = field(default_factory=dict)

    def saw(self, announced: dict[str, list[str]]) -> list[str]:
        """Record this round's announcements (node -> slot URIs); the nodes seen before and
        not announced now, whose liveness is to be checked."""
        for node, uris in announced.items():
            self.slots.setdefault(node, set()).update(uris)
        return sorted(node for node in self.slots if node not in announced)

    def forget(self, node: str) -> list[str]:
        """The slots of a node found gone (withdrawn or dead), which is then forgotten."""
        return sorted(self.slots.pop(node, set()))
