"""``callcenter edge``: the SIP edge alone, in front of the media nodes that join it.

Media nodes (``callcenter engine --node NAME --host ADDRESS``) announce their running slots in
Redis (``ivr/edge/membership.py``); this process runs Kamailio with no slot, and every quarter
second makes its dispatcher match the announcements: a slot announced is added, a slot no
longer announced (its node stopped, or died and its announcement expired) is removed; a node
whose liveness key lapsed too is dead, and the calls it carried are ended (``node_failed``,
``ivr/node_calls.py``); the callers' and agents' phones on its slots' calls get a BYE from the
edge (the dialogs this edge routed, ``Edge.end_slot_dialogs``). A slot that dies alone (its node
lives on and restarts it on the same address) is reported by its node on the lost-slots stream
(``membership.report_lost_slot``), and its dialogs are ended the same way. Every second it
publishes the readiness record ``/readyz`` reads (node name ``edge``), and every 30 s it syncs
the agents' SIP credentials, as an engine running its own edge does. A stored ``telephony``
version reaches it through the configuration watcher (``config_watch``): DIDs, trunks, dial
plan and domain at once, without restarting Kamailio (``Edge.follow_config``).

Each dispatcher change waits out Kamailio's ``reload_delta`` (``sip.edge.reload_delta_seconds``),
so a node's slots join at that pace; nodes announce only running slots, and the pool's warm
spares are enough to take calls while the rest are added.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from typing import Any

import redis

from callcenter.config_watch import ConfigWatcher
from callcenter.context import AppContext, build_context
from callcenter.health import Rotation, beat, clear_rotation, publish_rotation
from config.loader import CenterConfig
from config.settings import Settings
from ivr.edge.cfgtext import EdgeConfigError
from ivr.edge.dispatcher import normalize_slot_uri
from ivr.edge.membership import LostSlots, SlotsSeen, dead_nodes, members, rotation_of
from ivr.edge.process import Edge, EdgeError
from ivr.edge.subscribers import sync_subscribers
from ivr.node_calls import alive_key, reap

log = logging.getLogger(__name__)

RECONCILE_EVERY_SECONDS = 0.25
ROTATION_EVERY_SECONDS = 1.0
SUBSCRIBER_SYNC_EVERY_SECONDS = 30.0
NODE_NAME = "edge"  # the readiness record's node


class StandaloneEdge:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.r: Any = ctx.redis
        self.edge = Edge(ctx.settings, ctx.config, [])
        self.stopping = False
        self.seen = SlotsSeen()
        self.lost = LostSlots(ctx.keys.prefix)

    def announced(self) -> dict[str, str]:
        """slot URI -> the node announcing it."""
        return {
            normalize_slot_uri(uri): node
            for node, uris in members(self.r, self.ctx.keys.prefix).items()
            for uri in uris
        }

    def hang_up_lost_slots(self) -> int:
        """BYE to both phones on the calls of slots their nodes reported dead (the node lives
        on): the dialogs this edge routed for them are ended. Returns how many."""
        ended = 0
        for uri in self.lost.read(self.r):
            log.warning("slot %s died on its node: ending its calls' dialogs", uri)
            try:
                ended += self.edge.end_slot_dialogs(uri)
            except EdgeError:  # already read off the stream: say so, go on with the others
                log.exception("ending the dialogs of lost slot %s failed", uri)
        return ended

    def hang_up_lost_nodes(self) -> int:
        """BYE to the callers' and agents' phones on the calls of nodes that are gone (no
        longer announced, liveness key lapsed or withdrawn): the dialogs this edge routed for
        their slots are ended. Returns how many. A node merely stalled (announcement lapsed,
        still alive) keeps its calls."""
        announced = {
            node: [normalize_slot_uri(uri) for uri in uris]
            for node, uris in members(self.r, self.ctx.keys.prefix).items()
        }
        quiet = self.seen.saw(announced)
        if not quiet:
            return 0
        alive = self.r.mget([alive_key(self.ctx.keys, node) for node in quiet])
        ended = 0
        for node, flag in zip(quiet, alive, strict=True):
            if flag is not None:
                continue
            for uri in self.seen.forget(node):
                ended += self.edge.end_slot_dialogs(uri)
        return ended

    def reconcile(self) -> int:
        """Make the dispatcher match the announcements; the number of changes made."""
        wanted = self.announced()
        current = set(self.edge.slots)
        changes = 0
        for uri in sorted(current - set(wanted)):
            if self.stopping:
                break
            log.info("slot %s is no longer announced: out of rotation", uri)
            self.edge.remove_slot(uri)
            changes += 1
        for uri in sorted(set(wanted) - current):
            if self.stopping:
                break
            log.info("slot %s announced by node %s: into rotation", uri, wanted[uri])
            self.edge.add_slot(uri)
            changes += 1
        return changes

    def reap_dead_nodes(self) -> list[str]:
        """End the calls of nodes found dead (``node_failed``); the call ids ended."""
        ended: list[str] = []
        for node in dead_nodes(self.r, self.ctx.keys.prefix):
            log.warning("media node %s is dead (its liveness key lapsed)", node)
            ended.extend(reap(self.r, self.ctx.keys, node, by="edge"))
        return ended

    def rotation(self) -> Rotation:
        if not self.edge.is_running():
            return Rotation(NODE_NAME, 0, 0, 0, "SIP edge not running")
        announced = set(self.announced())
        try:
            states = self.edge.slot_states()
        except EdgeError:
            log.exception("reading the dispatcher failed")
            return Rotation(NODE_NAME, 0, 0, len(announced), "SIP edge not answering its RPC")
        if not announced:
            return Rotation(NODE_NAME, 0, 0, 0, "no media node has joined the edge")
        # A node does not say which of its slots carry a call: the dispatcher's load does.
        return rotation_of(NODE_NAME, states, announced, busy=set())

    def follow_config(self, config: CenterConfig) -> None:
        try:
            self.edge.follow_config(config)
        except (EdgeError, EdgeConfigError):  # the edge keeps the rules it has
            log.exception("applying the new telephony settings to the edge failed")

    def run(self) -> None:
        sync_subscribers(self.ctx)
        self.lost.start(self.r)
        self.edge.start()
        watcher = ConfigWatcher(self.ctx, [self.follow_config]).start()
        log.info(
            "SIP edge alone on %s:%s; media nodes join it through Redis",
            self.ctx.settings.sip.edge_host,
            self.ctx.settings.sip.edge_port,
        )
        next_rotation = 0.0
        next_sync = time.monotonic() + SUBSCRIBER_SYNC_EVERY_SECONDS
        try:
            while not self.stopping:
                try:
                    self.reconcile()
                    self.reap_dead_nodes()
                    self.hang_up_lost_nodes()
                    self.hang_up_lost_slots()
                    now = time.monotonic()
                    if now >= next_rotation:
                        publish_rotation(self.r, self.ctx.keys.prefix, self.rotation())
                        beat(self.ctx, "edge")
                        next_rotation = now + ROTATION_EVERY_SECONDS
                    if now >= next_sync:
                        sync_subscribers(self.ctx)
                        next_sync = now + SUBSCRIBER_SYNC_EVERY_SECONDS
                except (redis.RedisError, EdgeError):
                    log.exception("edge round failed; retrying")
                    time.sleep(1.0)
                if not self.edge.is_running():
                    raise EdgeError(f"kamailio exited; log {self.edge.paths.log}")
                time.sleep(RECONCILE_EVERY_SECONDS)
        finally:
            watcher.stop()
            self.edge.stop()
            with contextlib.suppress(Exception):
                clear_rotation(self.r, self.ctx.keys.prefix, NODE_NAME)
                self.r.delete(self.ctx.keys.process_heartbeat("edge"))


def main(settings: Settings) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s edge %(levelname)s %(name)s %(message)s"
    )
    ctx = build_context(settings)
    runner = StandaloneEdge(ctx)

    def _stop(_signum: int, _frame: Any) -> None:
        runner.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        runner.run()
    finally:
        ctx.close()
