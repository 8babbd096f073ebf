"""Every Redis key this product uses, in one place, under the deployment's prefix.

The engine and the rest of the system meet here: call events flow out of the engine on one
stream, commands flow into each slot on its own stream, and the routing state (waiting calls,
agent states, reservations) lives under ``routing``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "cc"

    # ---- engine <-> everything else
    @property
    def events(self) -> str:
        """Stream of call events from every engine node (XADD by slots, consumer groups read)."""
        return f"{self.prefix}:events"

    @property
    def agent_events(self) -> str:
        """Stream of agent state transitions (published by cti/ routing)."""
        return f"{self.prefix}:agent-events"

    def slot_commands(self, slot: str) -> str:
        """Stream of commands for one slot (``node1-s07``)."""
        return f"{self.prefix}:slot:{slot}:cmd"

    @property
    def engine_commands(self) -> str:
        """Commands not tied to a live call's slot (``originate`` for callbacks, click-to-call,
        surveys). Every engine node's supervisor reads it in consumer group ``engine``, so each
        command is taken by exactly one node, which hands it to one of its idle slots."""
        return f"{self.prefix}:engine:cmd"

    def call_slot(self, call_id: str) -> str:
        """Which slot carries a call (string; set by the slot on arrival, expires after end)."""
        return f"{self.prefix}:call:{call_id}:slot"

    def node_heartbeat(self, node: str) -> str:
        """Renewed by a media node joined to an edge; its lapse means the node is dead."""
        return f"{self.prefix}:node:{node}:alive"

    def engine_pool(self, node: str) -> str:
        """One engine node's slot pool summary (hash; written by its supervisor)."""
        return f"{self.prefix}:engine:pool:{node}"

    def process_heartbeat(self, name: str) -> str:
        """Set with a TTL by each long-running process (api, worker, engine); /healthz reads it."""
        return f"{self.prefix}:proc:{name}:alive"

    # ---- routing state (owned by cti/)
    def routing(self, name: str) -> str:
        return f"{self.prefix}:routing:{name}"

    # ---- tickets (owned by ticketing/)
    def tickets(self, name: str) -> str:
        return f"{self.prefix}:tickets:{name}"

    # ---- metrics (owned by metrics/)
    def metrics(self, name: str) -> str:
        return f"{self.prefix}:metrics:{name}"

    # ---- page sign-in sessions (callcenter/sessions.py); keyed by a digest of the cookie
    def page_session(self, digest: str) -> str:
        return f"{self.prefix}:session:{digest}"

    # ---- agent desktop pub/sub
    def user_revoked(self, user_id: int) -> str:
        """Pub/sub channel: the user's credentials stopped speaking for them (disabled, new
        password, new role); open sockets of that user close at once (cti/sockets.py)."""
        return f"{self.prefix}:user:{user_id}:revoked"

    def agent_channel(self, agent_id: int) -> str:
        return f"{self.prefix}:agent:{agent_id}:events"

    # ---- configuration versions (callcenter/config_watch.py)
    @property
    def config_changed(self) -> str:
        """Pub/sub: a new version of a declarative file was stored; processes reload."""
        return f"{self.prefix}:config:changed"
