"""The supervisor's link to its SIP edge (Kamailio, ``ivr.edge``): starting it, restarting it
when it dies, keeping its dispatcher in step with the slots, its subscriber table in step with
SQL, and publishing what it has in rotation for /readyz (``callcenter.health``).

The edge is started with every line's slot address: its OPTIONS probes (1 s) take slots that
are not running out of rotation and bring started ones in, so growing the pool needs no
dispatcher change (each change is rate-limited by reload_delta and would stall the
supervisor's loop). Only a retired slot is removed, and a slot restarted after dying with a
call gets its edge call-load reset (the edge never saw that call's BYE).

A slot that dies unexpectedly cannot hang up its call: the edge ends the dialogs it tracks
for the slot's address (BYE to the caller and to the agent) before the slot is restarted on
that address (:meth:`EdgeLink.slot_lost`). A node joined to a standalone edge reports the slot
on the lost-slots stream instead, and every such edge ends its own dialogs of it.

A node that joins a standalone edge (``join``) has no edge of its own: it announces its
running slots (ivr/edge/membership.py) and the edge publishes the rotation.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import redis

from callcenter.context import AppContext
from callcenter.db import database_down
from callcenter.health import Rotation, publish_rotation
from ivr.edge.membership import announce, report_lost_slot, rotation_of
from ivr.live_config import EngineConfig
from ivr.slot_handle import SlotHandle

log = logging.getLogger("ivr.supervisor")


class EdgeLink:
    def __init__(self, ctx: AppContext, *, with_edge: bool, join: bool) -> None:
        self.ctx = ctx
        self.r: Any = ctx.redis
        self.settings = ctx.settings
        self.join = join
        self.with_edge = with_edge and not join
        self.edge: Any = None
        self.restarts = 0
        self.held: set[str] = set()  # busy slots a restarted edge must not dispatch to
        self.retry_at = 0.0
        self.removed: set[str] = set()

    def start(self) -> None:
        if not self.with_edge:
            return
        try:
            process_module = importlib.import_module("ivr.edge.process")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("ivr.edge"):
                log.warning(
                    "the SIP edge (ivr.edge) is not in this build: slots are reachable "
                    "only directly"
                )
                return
            raise
        uris = process_module.default_slot_uris(self.settings)
        self.edge = process_module.Edge(self.settings, self.ctx.config, uris)
        self.sync_subscribers()
        self.edge.start()
        log.info(
            "SIP edge started on %s:%s for %d slot addresses",
            self.settings.sip.edge_host,
            self.settings.sip.edge_port,
            len(uris),
        )

    def stop(self) -> None:
        if self.edge is None:
            return
        try:
            self.edge.stop()
        except Exception:
            log.exception("stopping the edge failed")

    def sync_subscribers(self) -> None:
        try:
            subscribers = importlib.import_module("ivr.edge.subscribers")
            subscribers.sync_subscribers(self.ctx)
        except Exception as exc:
            if database_down(exc):  # the edge keeps the table it has; tried again later
                log.warning("syncing SIP subscribers: the database did not answer (%s)", exc)
            else:
                log.exception("syncing SIP subscribers failed")

    # ------------------------------------------------------------ the dispatcher and the slots
    def release(self, handle: SlotHandle) -> None:
        """A slot held out of a restarted edge's dispatching (see :meth:`check`) is free
        again: dispatch to it."""
        uri = handle.spec.uri
        if self.edge is None or uri not in self.held:
            return
        try:
            self.edge.release_slot(uri)
            self.held.discard(uri)
        except Exception:
            log.exception("releasing %s at the edge failed", uri)

    def slot_ready(self, handle: SlotHandle) -> None:
        if self.edge is None:
            return
        self.release(handle)
        uri = handle.spec.uri
        try:
            if uri in self.removed:
                self.edge.add_slot(uri)
                self.removed.discard(uri)
            if handle.needs_load_reset:
                self.edge.reset_slot_load(uri)
                handle.needs_load_reset = False
        except Exception:
            log.exception("updating %s at the edge failed", uri)

    def remove(self, handle: SlotHandle) -> None:
        if self.edge is None:
            return
        try:
            self.edge.remove_slot(handle.spec.uri)
            self.removed.add(handle.spec.uri)
        except Exception:
            log.exception("removing %s from the edge failed", handle.spec.uri)

    def slot_lost(self, handle: SlotHandle) -> None:
        """A slot died unexpectedly: hang up the phones on its calls (it cannot). Called
        before a replacement starts on the same address, whose calls must not be ended."""
        uri = handle.spec.uri
        if self.edge is not None:
            started = time.monotonic()
            try:
                ended = self.edge.end_slot_dialogs(uri)
            except Exception:  # boundary: the edge down or not answering its RPC
                log.exception("ending the dialogs of lost slot %s at the edge failed", uri)
                return
            if ended:
                log.info(
                    "edge ended %d dialog(s) of lost slot %s in %.0f ms",
                    ended,
                    uri,
                    (time.monotonic() - started) * 1000,
                )
        elif self.join:
            try:
                report_lost_slot(self.r, self.ctx.keys.prefix, self.settings.node_id, uri)
            except redis.RedisError:
                log.warning("reporting lost slot %s to the edges failed", uri, exc_info=True)

    def follow(self, new: EngineConfig) -> None:
        if self.edge is None:
            return
        try:
            self.edge.follow_config(new.config)
        except Exception:
            log.exception("applying the new telephony settings to the edge failed")

    # ------------------------------------------------------------ restarting a dead edge
    def check(self, slots: Mapping[int, SlotHandle]) -> bool:
        """Restart a SIP edge that died (kill -9, crash): without it no call gets in, and
        nothing else would start it again. Calls in progress keep their media (slots and
        callers talk RTP directly) and their in-dialog requests are routed by Record-Route,
        which a restarted edge honours; the agents' registrations live in Redis (usrloc over
        db_redis), where the new edge finds them. True when it was restarted."""
        edge = self.edge
        if edge is None or edge.is_running():
            return False
        now = time.monotonic()
        if now < self.retry_at:
            return False
        code = edge.exit_code()
        log.error("SIP edge died (exit code %s); restarting it", code)
        try:
            edge.stop()  # ends what is left of its process group (workers hold the port)
            edge.start()
        except Exception:
            log.exception("restarting the SIP edge failed; trying again in 1 s")
            self.retry_at = time.monotonic() + 1.0
            return False
        self.restarts += 1
        self._hold_busy(slots)
        log.info(
            "SIP edge restarted in %.1f s (%d busy slots held out until their calls end)",
            time.monotonic() - now,
            len(self.held),
        )
        return True

    def _hold_busy(self, slots: Mapping[int, SlotHandle]) -> None:
        """The new edge's call-load table is empty: it would pick busy slots first (each
        answers 486) and give up after max_slot_attempts. Hold the busy ones out of its
        dispatching until their calls end."""
        self.held.clear()
        for handle in slots.values():
            if handle.call:
                try:
                    self.edge.hold_slot(handle.spec.uri)
                    self.held.add(handle.spec.uri)
                except Exception:
                    log.exception("holding busy %s out of the edge failed", handle.spec.uri)

    # ------------------------------------------------------------ readiness
    def rotation(self, slots: Mapping[int, SlotHandle]) -> Rotation:
        """What this node's own edge would do with a new call (``rotation_of``)."""
        running = {h.spec.uri: h for h in slots.values() if h.status in ("ready", "busy")}
        node = self.settings.node_id
        if not self.with_edge:
            free = sum(1 for h in running.values() if not h.call)
            return Rotation(node, len(running), free, len(slots))
        if self.edge is None or not self.edge.is_running():
            return Rotation(node, 0, 0, len(slots), "SIP edge not running")
        try:
            states = self.edge.slot_states()
        except Exception:  # boundary: an edge that does not answer its RPC takes no calls
            log.exception("reading the edge's dispatcher failed")
            return Rotation(node, 0, 0, len(slots), "SIP edge not answering its RPC")
        busy = {uri for uri, h in running.items() if h.call}
        return replace(rotation_of(node, states, set(running), busy), slots=len(slots))

    def publish_rotation(self, slots: Mapping[int, SlotHandle]) -> None:
        if self.join:  # the edge publishes the rotation; this node says which slots run
            running = [h.spec.uri for h in slots.values() if h.status in ("ready", "busy")]
            try:
                announce(self.r, self.ctx.keys.prefix, self.settings.node_id, running)
            except redis.RedisError:
                log.warning("announcing this node's slots failed", exc_info=True)
            return
        rotation = self.rotation(slots)
        try:
            publish_rotation(self.r, self.ctx.keys.prefix, rotation)
        except redis.RedisError:
            log.warning("publishing the readiness record failed", exc_info=True)
