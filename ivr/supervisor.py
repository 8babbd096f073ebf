"""``callcenter engine``: the supervisor of the pjsua2 slot processes.

The supervisor imports pjsua2 once and then forks slot processes (``ivr.slot``), one
conversation each, on their own loopback SIP port and RTP port range: the wheel allows 4
calls per process, and a forked child shares the parent's pages (about 4-8 MB PSS each).
The supervisor itself never creates a pjsua2 object and runs no threads, so forking is safe.

It keeps ``warm_spares`` idle slots ready (growing up to ``sip.lines``) so a new call never
waits for a slot to start, restarts a slot that dies (its call is reported ended by
``slot_failed`` and its WAV header repaired), runs the SIP edge and the call-record consumer,
beats the ``engine`` heartbeat, and publishes what its edge's dispatcher has in rotation for
/readyz (``callcenter.health``). SIGTERM stops everything it started; its children end with it
even when it is killed (parent-death signal).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import redis

from callcenter import heap
from callcenter.admin.config_store import latest_versions
from callcenter.context import AppContext, build_context
from callcenter.db import database_down
from callcenter.health import Rotation, beat, clear_rotation, publish_rotation
from callcenter.streams import CallEvent, Command, EventType
from callcenter.supervision import die_with_parent
from config.settings import Settings
from ivr import node_calls, wav
from ivr.edge.membership import ANNOUNCE_EVERY_SECONDS, announce, rotation_of, withdraw
from ivr.engine_reload import ConfigFollower, clear_generations, write_generation
from ivr.live_config import EngineConfig
from ivr.prompts import PromptError, PromptFile, prepare_all
from ivr.spec import SlotSpec

log = logging.getLogger("ivr.supervisor")

HEARTBEAT_EVERY = 3.0
ROTATION_EVERY = 1.0  # how often the readiness record is refreshed from the dispatcher
SUBSCRIBER_SYNC_EVERY = 30.0
SHRINK_AFTER_SECONDS = 60.0
STOP_GRACE_SECONDS = 6.0
ENGINE_GROUP = "engine"  # consumer group of every node's supervisor on keys.engine_commands
ORIGINATE_WAIT_SECONDS = 2.0  # how long an originate waits for a node with an idle slot


@dataclass
class SlotHandle:
    index: int
    spec: SlotSpec
    process: BaseProcess
    conn: Connection
    control: Connection | None = None  # supervisor -> slot: new configuration generations
    generation: int = 0  # the configuration generation the slot runs its next call with
    status: str = "starting"  # starting, ready, busy, stopping
    call: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    idle_since: float = field(default_factory=time.monotonic)
    reserved_until: float = 0.0
    needs_load_reset: bool = False


class Supervisor:
    def __init__(
        self,
        ctx: AppContext,
        prompts: dict[str, PromptFile],
        *,
        with_edge: bool = True,
        with_records: bool = True,
        join: bool = False,
        versions: dict[str, int] | None = None,
    ) -> None:
        self.ctx = ctx
        self.r: Any = ctx.redis  # redis-py's stub types do not fit decoded streams
        self.settings = ctx.settings
        # The configuration new slots start with; a stored version changed live becomes the
        # next generation (ivr/engine_reload.py) once its prompts are rendered.
        self.current = EngineConfig(0, ctx.config, prompts, versions or {})
        self.follower = ConfigFollower(ctx, self.current)
        self.fork = multiprocessing.get_context("fork")
        self.slots: dict[int, SlotHandle] = {}
        self.stopping = False
        self.edge: Any = None
        self.with_edge = with_edge
        self.with_records = with_records
        # join: no edge of our own; the slots are announced to a standalone edge
        # (``callcenter edge``, ivr/edge/membership.py) and reach agents through it.
        self.join = join
        if join:
            self.with_edge = False
        self.records: BaseProcess | None = None
        self.originate_wait = ORIGINATE_WAIT_SECONDS
        self.allow_from = tuple(self.settings.sip.slot_allow_from) or (
            f"{self.settings.sip.edge_host}:{self.settings.sip.edge_port}",
        )
        self.restarts = 0
        # events about dead slots' calls that Redis did not take (away): published in order
        # before anything else the next time round the loop
        self.unpublished: list[CallEvent] = []
        self.edge_restarts = 0
        self.edge_held: set[str] = set()  # busy slots a restarted edge must not dispatch to
        self.edge_retry_at = 0.0
        self.pool_dirty = True
        self.edge_removed: set[str] = set()
        self.backoff: dict[int, tuple[float, float]] = {}  # index -> (not before, delay)
        self.pool_key = ctx.keys.engine_pool(self.settings.node_id)
        # one heartbeat per node when several join an edge (one stopping must not clear another's)
        self.beat_name = f"engine-{self.settings.node_id}" if join else "engine"

    # ------------------------------------------------------------ slots
    def _spec(self, index: int) -> SlotSpec:
        sip = self.settings.sip
        return SlotSpec(
            name=f"{self.settings.node_id}-s{index:02d}",
            index=index,
            sip_host=sip.slot_host,
            sip_port=sip.slot_base_port + index,
            rtp_port=sip.rtp_base_port + index * sip.rtp_ports_per_slot,
            rtp_range=sip.rtp_ports_per_slot,
            allow_from=self.allow_from,
            via_edge=self.with_edge or self.join,
        )

    def start_slot(self, index: int) -> SlotHandle:
        from ivr.slot import run_slot

        spec = self._spec(index)
        receiver, sender = self.fork.Pipe(duplex=False)
        control_in, control_out = self.fork.Pipe(duplex=False)
        current = self.current
        process = self.fork.Process(
            target=_slot_entry,
            args=(
                os.getpid(),
                self._inherited_fds(),
                run_slot,
                spec,
                self.settings,
                current.config,
                dict(current.prompts),
                sender,
                control_in,
                current.generation,
            ),
            name=spec.name,
        )
        process.start()
        sender.close()
        control_in.close()
        handle = SlotHandle(
            index=index,
            spec=spec,
            process=process,
            conn=receiver,
            control=control_out,
            generation=current.generation,
        )
        self.slots[index] = handle
        log.info("started slot %s (pid %s) on %s", spec.name, process.pid, spec.uri)
        return handle

    def _inherited_fds(self) -> tuple[int, ...]:
        """The supervisor's ends of the other slots' pipes and their process sentinels (3 per
        slot): a forked slot closes them first (``_slot_entry``)."""
        fds: list[int] = []
        for handle in self.slots.values():
            with contextlib.suppress(OSError, ValueError):
                fds.append(handle.conn.fileno())
                if handle.control is not None:
                    fds.append(handle.control.fileno())
                fds.append(handle.process.sentinel)
        return tuple(fds)

    def _idle_count(self) -> int:
        return sum(
            1 for h in self.slots.values() if h.status in ("starting", "ready") and not h.call
        )

    def ensure_capacity(self) -> None:
        lines = self.settings.sip.lines
        spares = min(self.settings.sip.warm_spares, lines)
        now = time.monotonic()
        while self._idle_count() < spares and len(self.slots) < lines:
            free = [
                i
                for i in range(lines)
                if i not in self.slots and self.backoff.get(i, (0.0, 0.0))[0] <= now
            ]
            if not free:
                break
            self.start_slot(free[0])
        # Shrink slowly: idle slots cost CPU; keep spares plus a margin.
        now = time.monotonic()
        idle = [h for h in self.slots.values() if h.status == "ready" and not h.call]
        if len(idle) > 2 * spares:
            oldest = max(idle, key=lambda h: h.index)
            if now - oldest.idle_since > SHRINK_AFTER_SECONDS:
                self._retire(oldest)

    def _retire(self, handle: SlotHandle) -> None:
        log.info("retiring idle slot %s", handle.spec.name)
        self._edge_remove(handle)
        handle.status = "stopping"
        with contextlib.suppress(ProcessLookupError):
            os.kill(handle.process.pid or 0, signal.SIGTERM)

    def _read_status(self, handle: SlotHandle) -> None:
        try:
            while handle.conn.poll():
                self._on_status(handle, handle.conn.recv())
        except (EOFError, OSError):
            pass

    def _on_status(self, handle: SlotHandle, message: dict[str, Any]) -> None:
        self.pool_dirty = True
        status = message.get("status")
        if status == "ready":
            if handle.status != "stopping":
                handle.status = "ready"
            handle.idle_since = time.monotonic()
            self._edge_add(handle)
        elif status == "busy":
            handle.status = "busy"
            handle.call = {"call_id": message["call_id"], "started": message["started"]}
        elif status == "recording":
            handle.call.update(
                {
                    "recording_id": message["recording_id"],
                    "path": message["path"],
                    "recording_started": message["started"],
                }
            )
        elif status == "config":
            handle.generation = int(message.get("generation", handle.generation))
        elif status == "idle":
            handle.call = {}
            if handle.status != "stopping":
                handle.status = "ready"
            handle.idle_since = time.monotonic()
            self._edge_release(handle)

    def _on_death(self, handle: SlotHandle) -> None:
        self._read_status(handle)
        code = handle.process.exitcode
        handle.conn.close()
        del self.slots[handle.index]
        if handle.control is not None:
            handle.control.close()
        expected = handle.status == "stopping" and not handle.call
        if not expected:
            log.error(
                "slot %s died (exit code %s)%s",
                handle.spec.name,
                code,
                f" carrying call {handle.call.get('call_id')}" if handle.call else "",
            )
        elif code != 0:
            log.warning("slot %s stopped with exit code %s", handle.spec.name, code)
        if handle.call:
            try:
                self.account_failed_call(handle, f"slot process exited with code {code}")
            except redis.RedisError:
                # Redis is away (restarting): the call stays in the node's live-call hash
                # and the next engine start accounts for it; this engine carries on.
                log.exception("accounting for call %s failed", handle.call.get("call_id"))
        if expected or self.stopping:
            return
        if handle.status == "starting":
            # died before it was ready (port taken, pjsua2 failed): back off, so a broken
            # slot index does not become a tight fork loop; other indices keep serving
            delay = min(2 * self.backoff.get(handle.index, (0.0, 0.5))[1], 30.0)
            self.backoff[handle.index] = (time.monotonic() + delay, delay)
            log.error("slot %s failed to start; index unused for %.0f s", handle.spec.name, delay)
            return
        self.backoff.pop(handle.index, None)
        self.restarts += 1
        replacement = self.start_slot(handle.index)
        replacement.needs_load_reset = bool(handle.call)

    def account_failed_call(self, handle: SlotHandle, reason: str) -> None:
        """The slot died with a call: say so, repair its recording, end the call."""
        self.account_cut_call(handle.spec.name, handle.call, reason)

    def account_cut_call(self, slot: str, call: dict[str, Any], reason: str) -> None:
        """A call whose slot is gone: ``slot_failed``, the recording repaired, ``call_ended``."""
        call_id = call["call_id"]

        def publish(type_: str, data: dict[str, Any]) -> None:
            event = CallEvent(type=type_, call_id=call_id, slot=slot, node="supervisor", data=data)
            self.unpublished.append(event)
            self._flush_unpublished()

        publish(EventType.slot_failed, {"reason": reason})
        if call.get("path") and call.get("recording_id"):
            path = Path(call["path"])
            try:
                facts = wav.repair(path)
                publish(
                    EventType.recording_stopped,
                    {
                        "recording_id": call["recording_id"],
                        "path": str(path),
                        "duration": facts.duration,
                        "bytes": facts.bytes,
                        "sha256": facts.sha256,
                        "status": "repaired",
                        "incomplete": True,
                    },
                )
            except (OSError, ValueError) as exc:
                log.exception("repairing %s failed", path)
                publish(
                    EventType.recording_stopped,
                    {
                        "recording_id": call["recording_id"],
                        "path": str(path),
                        "duration": 0,
                        "bytes": 0,
                        "sha256": None,
                        "status": "failed",
                        "error": str(exc),
                    },
                )
        publish(
            EventType.call_ended,
            {
                "reason": "slot_failed",
                "outcome": "slot_failed",
                "duration": round(time.time() - call["started"], 3),
            },
        )
        with contextlib.suppress(Exception):
            pipe = self.r.pipeline(transaction=False)
            pipe.expire(self.ctx.keys.call_slot(call_id), 3600)
            node_calls.forget(pipe, self.ctx.keys, self.settings.node_id, call_id)
            pipe.execute()

    # ------------------------------------------------------------ edge
    # The edge is started with every line's slot address: its OPTIONS probes (1 s) take slots
    # that are not running out of rotation and bring started ones in, so growing the pool
    # needs no dispatcher change (each change is rate-limited by reload_delta and would stall
    # this loop). Only a retired slot is removed, and a slot restarted after dying with a call
    # gets its edge call-load reset (the edge never saw that call's BYE).
    def _start_edge(self) -> None:
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
        self._sync_subscribers()
        self.edge.start()
        log.info(
            "SIP edge started on %s:%s for %d slot addresses",
            self.settings.sip.edge_host,
            self.settings.sip.edge_port,
            len(uris),
        )

    def _sync_subscribers(self) -> None:
        try:
            subscribers = importlib.import_module("ivr.edge.subscribers")
            subscribers.sync_subscribers(self.ctx)
        except Exception as exc:
            if database_down(exc):  # the edge keeps the table it has; tried again later
                log.warning("syncing SIP subscribers: the database did not answer (%s)", exc)
            else:
                log.exception("syncing SIP subscribers failed")

    def _edge_release(self, handle: SlotHandle) -> None:
        """A slot held out of a restarted edge's dispatching (see :meth:`_check_edge`) is
        free again: dispatch to it."""
        uri = handle.spec.uri
        if self.edge is None or uri not in self.edge_held:
            return
        try:
            self.edge.release_slot(uri)
            self.edge_held.discard(uri)
        except Exception:
            log.exception("releasing %s at the edge failed", uri)

    def _edge_add(self, handle: SlotHandle) -> None:
        if self.edge is None:
            return
        self._edge_release(handle)
        uri = handle.spec.uri
        try:
            if uri in self.edge_removed:
                self.edge.add_slot(uri)
                self.edge_removed.discard(uri)
            if handle.needs_load_reset:
                self.edge.reset_slot_load(uri)
                handle.needs_load_reset = False
        except Exception:
            log.exception("updating %s at the edge failed", uri)

    def _edge_remove(self, handle: SlotHandle) -> None:
        if self.edge is None:
            return
        try:
            self.edge.remove_slot(handle.spec.uri)
            self.edge_removed.add(handle.spec.uri)
        except Exception:
            log.exception("removing %s from the edge failed", handle.spec.uri)

    # ------------------------------------------------------------ records consumer
    def _start_records(self) -> None:
        if not self.with_records:
            return
        from ivr.records import run_consumer_process

        self.records = self.fork.Process(
            target=_with_parent,
            args=(os.getpid(), run_consumer_process, self.settings),
            name="call-records",
        )
        self.records.start()

    # ------------------------------------------------------------ originate forwarding
    def _idle_slots(self, now: float) -> list[SlotHandle]:
        return [
            h
            for h in self.slots.values()
            if h.status == "ready" and not h.call and h.reserved_until < now
        ]

    def _forward_originates(self) -> None:
        """Take commands from the nodes' shared stream, as many as this node has idle slots
        (the consumer group gives each to exactly one node), and hand each to a slot. A node
        with no idle slot takes none and leaves them to the other nodes; a command no node has
        taken within ``originate_wait`` seconds is taken and failed ("no idle slot"), so routing
        puts the caller back in line at once instead of waiting for its ring timer."""
        stream = self.ctx.keys.engine_commands
        free = self._idle_slots(time.monotonic())
        if not free:
            self._fail_stale_originate()
            return
        answer: Any = self.r.xreadgroup(
            ENGINE_GROUP, self.settings.node_id, {stream: ">"}, count=len(free)
        )
        for _stream, entries in answer or []:
            # at most one command per idle slot was read: each gets its own
            for (entry_id, fields), handle in zip(entries, free, strict=False):
                self._hand_to(handle, Command.from_fields(fields))
                self.r.xack(stream, ENGINE_GROUP, entry_id)

    def _fail_stale_originate(self) -> None:
        stream = self.ctx.keys.engine_commands
        groups: Any = self.r.xinfo_groups(stream)
        last = next((g["last-delivered-id"] for g in groups if g["name"] == ENGINE_GROUP), None)
        if last is None:
            return
        oldest: Any = self.r.xrange(stream, min=f"({last}", count=1)
        if not oldest:
            return
        now_ms = _server_ms(self.r)
        if _age_seconds(now_ms, oldest[0][0]) < self.originate_wait:
            return
        answer: Any = self.r.xreadgroup(ENGINE_GROUP, self.settings.node_id, {stream: ">"}, count=1)
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                if _age_seconds(now_ms, entry_id) >= self.originate_wait:
                    self._fail_originate(Command.from_fields(fields), "no idle slot")
                else:  # another node took the old one meanwhile: leave this one for others
                    self.r.xadd(stream, fields)
                self.r.xack(stream, ENGINE_GROUP, entry_id)

    def _fail_originate(self, command: Command, reason: str) -> None:
        event = CallEvent(
            type=EventType.command_failed,
            call_id=command.call_id,
            node="supervisor",
            data={"command_id": command.id, "command": command.type, "reason": reason},
        )
        self.r.xadd(self.ctx.keys.events, event.to_fields())

    def _hand_to(self, handle: SlotHandle, command: Command) -> None:
        handle.reserved_until = time.monotonic() + 5
        log.info("originate %s for call %s -> %s", command.id, command.call_id, handle.spec.name)
        self.r.xadd(self.ctx.keys.slot_commands(handle.spec.name), command.to_fields())

    def _ensure_engine_group(self) -> None:
        """Create the group at the stream's end the first time; later starts resume from the
        last command this group took, so a restarted engine loses none."""
        try:
            self.ctx.redis.xgroup_create(
                self.ctx.keys.engine_commands, ENGINE_GROUP, id="$", mkstream=True
            )
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # ------------------------------------------------------------ main loop
    def run(self) -> None:
        self._ensure_engine_group()
        self._reap_previous_life()
        next_beat = time.monotonic() + HEARTBEAT_EVERY
        next_sync = time.monotonic() + SUBSCRIBER_SYNC_EVERY
        next_rotation = 0.0
        try:
            self._start_records()
            self.ensure_capacity()
            self._wait_initial_pool(10.0)
            self._start_edge()
            beat(self.ctx, self.beat_name)
            while not self.stopping:
                conns = [h.conn for h in self.slots.values()]
                ready = wait(conns, timeout=0.2) if conns else []
                if not conns:
                    time.sleep(0.2)
                for handle in list(self.slots.values()):
                    if handle.conn in ready:
                        self._read_status(handle)
                for handle in list(self.slots.values()):
                    if not handle.process.is_alive():
                        self._on_death(handle)
                if self.stopping:
                    break
                self.ensure_capacity()
                self._check_records()
                self._check_edge()
                now = time.monotonic()
                if now >= next_beat:
                    self._beat()
                    self.pool_dirty = True
                    next_beat = now + HEARTBEAT_EVERY
                if self.pool_dirty:
                    self._write_pool_state()
                if now >= next_rotation:
                    self._publish_rotation()
                    next_rotation = time.monotonic() + (
                        ANNOUNCE_EVERY_SECONDS if self.join else ROTATION_EVERY
                    )
                if self.unpublished:
                    self._flush_unpublished()
                self._forward_originates_safely()
                self._follow_config()
                if self.edge is not None and now >= next_sync:
                    self._sync_subscribers()
                    next_sync = now + SUBSCRIBER_SYNC_EVERY
        finally:
            self.shutdown()

    def _flush_unpublished(self) -> None:
        """Publish the kept events in order; stop at the first Redis refuses (kept for later)."""
        while self.unpublished:
            event = self.unpublished[0]
            try:
                self.r.xadd(
                    self.ctx.keys.events, event.to_fields(), maxlen=500_000, approximate=True
                )
            except redis.RedisError as exc:
                log.warning("%s of %s kept for later (Redis: %s)", event.type, event.call_id, exc)
                return
            self.unpublished.pop(0)

    def _beat(self) -> None:
        """The heartbeat; Redis away (restarting) must not end the engine and every call on
        its slots: the beat resumes when Redis is back."""
        try:
            beat(self.ctx, self.beat_name)
        except redis.RedisError as exc:
            log.warning("engine heartbeat not written (Redis: %s); calls go on", exc)

    # ------------------------------------------------------------ live configuration
    def _follow_config(self) -> None:
        """A stored configuration version, its prompts already rendered, becomes the
        generation new slots start with and is handed to every running slot, which takes it
        when it carries no call (ivr/live_config.py): calls in progress keep theirs."""
        try:
            new = self.follower.poll()
        except Exception:  # boundary: a failed reload must not stop the engine
            log.exception("following the stored configuration failed")
            return
        if new is None:
            return
        try:
            path = write_generation(self.settings.state_dir, new)
        except OSError:
            log.exception("writing configuration generation %d failed", new.generation)
            return
        self.current = new
        self.pool_dirty = True
        for handle in self.slots.values():
            if handle.control is None or handle.status == "stopping":
                continue
            try:
                handle.control.send({"generation": new.generation, "path": str(path)})
            except OSError:  # the slot is dying; its replacement starts with ``new``
                log.warning("slot %s did not take generation %d", handle.spec.name, new.generation)
        self._edge_follow(new)

    def _edge_follow(self, new: EngineConfig) -> None:
        if self.edge is None:
            return
        try:
            self.edge.follow_config(new.config)
        except Exception:
            log.exception("applying the new telephony settings to the edge failed")

    def _reap_previous_life(self) -> None:
        """Calls this node's index still holds before any of its slots runs were carried by
        a previous life of this node that ended without reporting them (killed with its
        slots): end them now (``node_failed``) rather than leave them open."""
        try:
            node_calls.reap(self.r, self.ctx.keys, self.settings.node_id, by="node restarted")
        except redis.RedisError:
            log.warning("ending a previous life's calls failed", exc_info=True)

    def _wait_initial_pool(self, timeout: float) -> None:
        """Let the first slots answer before the edge starts sending calls."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if all(h.status == "ready" for h in self.slots.values()):
                return
            for conn in wait([h.conn for h in self.slots.values()], timeout=0.1):
                for handle in list(self.slots.values()):
                    if handle.conn is conn:
                        self._read_status(handle)
        log.warning("not every slot was ready within %.0f s", timeout)

    def _forward_originates_safely(self) -> None:
        try:
            self._forward_originates()
        except Exception:
            log.exception("forwarding originate commands failed")

    def _check_records(self) -> None:
        if self.records is not None and not self.records.is_alive() and not self.stopping:
            log.error("call-record consumer exited (%s); restarting", self.records.exitcode)
            self._start_records()

    def _check_edge(self) -> None:
        """Restart a SIP edge that died (kill -9, crash): without it no call gets in, and
        nothing else would start it again. Calls in progress keep their media (slots and
        callers talk RTP directly) and their in-dialog requests are routed by Record-Route,
        which a restarted edge honours; the agents' registrations live in Redis (usrloc over
        db_redis), where the new edge finds them."""
        edge = self.edge
        if edge is None or self.stopping or edge.is_running():
            return
        now = time.monotonic()
        if now < self.edge_retry_at:
            return
        code = edge.exit_code()
        log.error("SIP edge died (exit code %s); restarting it", code)
        try:
            edge.stop()  # ends what is left of its process group (workers hold the port)
            edge.start()
        except Exception:
            log.exception("restarting the SIP edge failed; trying again in 1 s")
            self.edge_retry_at = time.monotonic() + 1.0
            return
        self.edge_restarts += 1
        self.pool_dirty = True
        # The new edge's call-load table is empty: it would pick busy slots first (each
        # answers 486) and give up after max_slot_attempts. Hold the busy ones out of its
        # dispatching until their calls end.
        self.edge_held.clear()
        for handle in self.slots.values():
            if handle.call:
                try:
                    edge.hold_slot(handle.spec.uri)
                    self.edge_held.add(handle.spec.uri)
                except Exception:
                    log.exception("holding busy %s out of the edge failed", handle.spec.uri)
        log.info(
            "SIP edge restarted in %.1f s (%d busy slots held out until their calls end)",
            time.monotonic() - now,
            len(self.edge_held),
        )

    def rotation(self) -> Rotation:
        """What this node's own edge would do with a new call (``rotation_of``)."""
        running = {h.spec.uri: h for h in self.slots.values() if h.status in ("ready", "busy")}
        node = self.settings.node_id
        if not self.with_edge:
            free = sum(1 for h in running.values() if not h.call)
            return Rotation(node, len(running), free, len(self.slots))
        if self.edge is None or not self.edge.is_running():
            return Rotation(node, 0, 0, len(self.slots), "SIP edge not running")
        try:
            states = self.edge.slot_states()
        except Exception:  # boundary: an edge that does not answer its RPC takes no calls
            log.exception("reading the edge's dispatcher failed")
            return Rotation(node, 0, 0, len(self.slots), "SIP edge not answering its RPC")
        busy = {uri for uri, h in running.items() if h.call}
        return replace(rotation_of(node, states, set(running), busy), slots=len(self.slots))

    def _publish_rotation(self) -> None:
        if self.join:  # the edge publishes the rotation; this node says which slots run
            running = [h.spec.uri for h in self.slots.values() if h.status in ("ready", "busy")]
            try:
                announce(self.r, self.ctx.keys.prefix, self.settings.node_id, running)
            except redis.RedisError:
                log.warning("announcing this node's slots failed", exc_info=True)
            return
        rotation = self.rotation()
        try:
            publish_rotation(self.r, self.ctx.keys.prefix, rotation)
        except redis.RedisError:
            log.warning("publishing the readiness record failed", exc_info=True)

    def _write_pool_state(self) -> None:
        """A small summary for operators and benchmarks (``{prefix}:engine:pool:<node>``)."""
        self.pool_dirty = False
        busy = sum(1 for h in self.slots.values() if h.call)
        per_slot = {
            f"slot:{h.spec.name}": f"{h.process.pid} {h.status} {h.call.get('call_id', '')}"
            for h in self.slots.values()
        }
        with contextlib.suppress(Exception):
            pipe = self.r.pipeline(transaction=True)
            pipe.delete(self.pool_key)
            pipe.hset(
                self.pool_key,
                mapping={
                    "slots": len(self.slots),
                    "busy": busy,
                    "idle": self._idle_count(),
                    "restarts": self.restarts,
                    "edge_restarts": self.edge_restarts,
                    "lines": self.settings.sip.lines,
                    "pids": ",".join(str(h.process.pid) for h in self.slots.values()),
                    "ready": sum(1 for h in self.slots.values() if h.status == "ready"),
                    # the configuration generation new calls get, its stored versions, and
                    # the one each slot runs (a busy slot keeps its call's until it ends)
                    "config_generation": self.current.generation,
                    "config_versions": json.dumps(dict(self.current.versions), sort_keys=True),
                    **per_slot,
                    **{f"config:{h.spec.name}": h.generation for h in self.slots.values()},
                },
            )
            pipe.execute()

    def shutdown(self) -> None:
        self.stopping = True
        self.follower.close()
        if self.edge is not None:
            try:
                self.edge.stop()
            except Exception:
                log.exception("stopping the edge failed")
        for handle in self.slots.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.process.pid or 0, signal.SIGTERM)
            handle.status = "stopping"
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.slots and time.monotonic() < deadline:
            for handle in list(self.slots.values()):
                self._read_status(handle)
                if not handle.process.is_alive():
                    handle.process.join()
                    self._on_death(handle)
            time.sleep(0.05)
        for handle in list(self.slots.values()):
            log.error("slot %s ignored SIGTERM; killing it", handle.spec.name)
            handle.process.kill()
            handle.process.join(5)
            self._on_death(handle)
        if self.records is not None:
            self.records.terminate()
            self.records.join(10)
            if self.records.is_alive():
                self.records.kill()
        self._flush_unpublished()
        for event in self.unpublished:
            log.error("%s of %s lost: Redis did not answer", event.type, event.call_id)
        with contextlib.suppress(Exception):
            self.r.delete(self.ctx.keys.process_heartbeat(self.beat_name))
            clear_rotation(self.r, self.ctx.keys.prefix, self.settings.node_id)
            if self.join:
                withdraw(self.r, self.ctx.keys.prefix, self.settings.node_id)
            self.r.delete(self.pool_key)


def main(
    settings: Settings,
    *,
    with_edge: bool | None = None,
    with_records: bool | None = None,
    join: bool = False,
) -> None:
    """Run the engine until SIGTERM/SIGINT. Prompts are rendered/checked before any slot."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s engine %(levelname)s %(name)s %(message)s"
    )
    if with_edge is None:
        with_edge = os.environ.get("CALLCENTER_ENGINE_EDGE", "1") != "0"
    if with_records is None:
        with_records = os.environ.get("CALLCENTER_ENGINE_RECORDS", "1") != "0"
    ctx = build_context(settings)
    clear_generations(settings.state_dir)
    try:
        versions = latest_versions(ctx.engine)
        prompts = prepare_all(ctx.config, settings.state_dir, settings.language)
    except PromptError as exc:
        log.error("%s", exc)  # names the menu node and the file or renderer at fault
        ctx.close()
        raise SystemExit(2) from None
    Path(settings.recordings_dir).mkdir(parents=True, exist_ok=True)
    import pjsua2  # noqa: F401  -- imported before forking so every slot shares its pages

    supervisor = Supervisor(
        ctx, prompts, with_edge=with_edge, with_records=with_records, join=join, versions=versions
    )

    def _stop(_signum: int, _frame: Any) -> None:
        supervisor.stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    heap.settle()  # before the first fork: slots share these pages instead of copying them
    try:
        supervisor.run()
    finally:
        ctx.close()


def _with_parent(parent: int, target: Any, *args: Any) -> None:
    """A forked child's entry: it ends (SIGTERM: a slot still closes its call and recording)
    when the supervisor dies, even by SIGKILL, instead of living on as an orphan that holds
    its SIP port."""
    die_with_parent(signal.SIGTERM, parent)
    target(*args)


def _slot_entry(parent: int, inherited: tuple[int, ...], target: Any, *args: Any) -> None:
    """A forked slot's entry: close what it inherited of the other slots (``inherited``), then
    as ``_with_parent``. pjsua2's ioqueue is select()-based: a socket numbered 1024 or more
    (FD_SETSIZE) cannot be polled, and pjsua refuses it (PJ_ETOOBIG). With the supervisor's
    3 descriptors per slot inherited, the slots from about the 250th on got their SIP socket
    past 1023 and failed to start (measured: 300 lines, slots s253 and up)."""
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    _with_parent(parent, target, *args)


def _server_ms(client: Any) -> int:
    """The Redis server's clock in milliseconds: the clock stream entry ids are made of."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


def _age_seconds(now_ms: int, entry_id: str) -> float:
    """How old a stream entry is at ``now_ms`` (see :func:`_server_ms`)."""
    return (now_ms - int(entry_id.split("-")[0])) / 1000
