"""``callcenter engine``: the supervisor of the pjsua2 slot processes.

The supervisor imports pjsua2 once and then forks slot processes (``ivr.slot``), one
conversation each: the wheel allows 4 calls per process, and a forked child shares the
parent's pages (about 4-8 MB PSS each). The supervisor itself never creates a pjsua2 object
and runs no threads, so forking is safe. SIGTERM stops everything it started; its children end
with it even when it is killed (parent-death signal).

Its parts, one job each, driven from one loop (:meth:`Supervisor.run`):

=============================  ================================================================
``ivr/slot_pool.py``           the slot processes: warm spares, status, respawn, retire, stop
``ivr/cut_calls.py``           calls whose slot died: ``slot_failed``, recording repaired
``ivr/edge_link.py``           the SIP edge: start, restart, dispatcher, subscribers, rotation
``ivr/originate_forwarding``   originate commands from the nodes' stream to idle slots
``ivr/engine_liveness.py``     the heartbeat and the pool-state record
``ivr/engine_reload.py``       the stored configuration followed as new generations
=============================  ================================================================

The call-record consumer (``ivr.records``) runs as a child process it restarts.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from callcenter import heap
from callcenter.config_store import latest_versions
from callcenter.context import AppContext, build_context
from config.settings import Settings
from ivr.cut_calls import CutCalls
from ivr.edge.membership import ANNOUNCE_EVERY_SECONDS
from ivr.edge_link import EdgeLink
from ivr.engine_liveness import Liveness
from ivr.engine_reload import ConfigFollower, clear_generations, write_generation
from ivr.live_config import EngineConfig
from ivr.originate_forwarding import OriginateForwarder
from ivr.prompts import PromptError, PromptFile, prepare_all
from ivr.slot_pool import SlotPool, with_parent

log = logging.getLogger("ivr.supervisor")

HEARTBEAT_EVERY = 3.0
ROTATION_EVERY = 1.0  # how often the readiness record is refreshed from the dispatcher
SUBSCRIBER_SYNC_EVERY = 30.0
INITIAL_POOL_SECONDS = 10.0


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
        self.settings = ctx.settings
        # The configuration new slots start with; a stored version changed live becomes the
        # next generation (ivr/engine_reload.py) once its prompts are rendered.
        current = EngineConfig(0, ctx.config, prompts, versions or {})
        self.follower = ConfigFollower(ctx, current)
        # join: no edge of our own; the slots are announced to a standalone edge
        # (``callcenter edge``, ivr/edge/membership.py) and reach agents through it.
        self.join = join
        self.edge_link = EdgeLink(ctx, with_edge=with_edge, join=join)
        self.cut_calls = CutCalls(ctx.redis, ctx.keys, self.settings.node_id)
        sip = self.settings.sip
        self.pool = SlotPool(
            self.settings,
            current,
            edge=self.edge_link,
            cut_calls=self.cut_calls,
            allow_from=tuple(sip.slot_allow_from) or (f"{sip.edge_host}:{sip.edge_port}",),
            via_edge=with_edge or join,
        )
        self.originates = OriginateForwarder(
            ctx.redis, ctx.keys, self.settings.node_id, self.pool.idle_slots
        )
        self.liveness = Liveness(ctx, join=join)
        self.with_records = with_records
        self.records: BaseProcess | None = None  # the call-record consumer's process
        self.fork = self.pool.fork

    @property
    def stopping(self) -> bool:
        return self.pool.stopping

    @stopping.setter
    def stopping(self, value: bool) -> None:
        self.pool.stopping = value

    # ------------------------------------------------------------ records consumer
    def _start_records(self) -> None:
        if not self.with_records:
            return
        from ivr.records import run_consumer_process

        self.records = self.fork.Process(
            target=with_parent,
            args=(os.getpid(), run_consumer_process, self.settings),
            name="call-records",
        )
        self.records.start()

    def _check_records(self) -> None:
        if self.records is not None and not self.records.is_alive() and not self.stopping:
            log.error("call-record consumer exited (%s); restarting", self.records.exitcode)
            self._start_records()

    def _check_edge(self) -> None:
        if not self.stopping and self.edge_link.check(self.pool.slots):
            self.pool.dirty = True

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
        self.pool.current = new
        self.pool.dirty = True
        for handle in self.pool.slots.values():
            if handle.control is None or handle.status == "stopping":
                continue
            try:
                handle.control.send({"generation": new.generation, "path": str(path)})
            except OSError:  # the slot is dying; its replacement starts with ``new``
                log.warning("slot %s did not take generation %d", handle.spec.name, new.generation)
        self.edge_link.follow(new)

    # ------------------------------------------------------------ main loop
    def run(self) -> None:
        self.originates.ensure_group()
        self.cut_calls.reap_previous_life()
        timers = _Timers(time.monotonic())
        try:
            self._start()
            while not self.stopping:
                self.pool.read_ready(0.2)
                if self.stopping:
                    break
                self._tick(timers)
        finally:
            self.shutdown()

    def _start(self) -> None:
        self._start_records()
        self.pool.ensure_capacity()
        self.pool.wait_initial(INITIAL_POOL_SECONDS)
        self.edge_link.start()
        self.liveness.first_beat()

    def _tick(self, timers: _Timers) -> None:
        """One round of the loop after the slots' reports were read."""
        self.pool.ensure_capacity()
        self._check_records()
        self._check_edge()
        now = time.monotonic()
        if now >= timers.next_beat:
            self.liveness.beat()
            self.pool.dirty = True
            timers.next_beat = now + HEARTBEAT_EVERY
        if self.pool.dirty:
            self.liveness.write_pool_state(self.pool, self.pool.current, self.edge_link.restarts)
        if now >= timers.next_rotation:
            self.edge_link.publish_rotation(self.pool.slots)
            timers.next_rotation = time.monotonic() + (
                ANNOUNCE_EVERY_SECONDS if self.join else ROTATION_EVERY
            )
        if self.cut_calls.unpublished:
            self.cut_calls.flush()
        self.originates.forward_safely()
        self._follow_config()
        if self.edge_link.edge is not None and now >= timers.next_sync:
            self.edge_link.sync_subscribers()
            timers.next_sync = now + SUBSCRIBER_SYNC_EVERY

    def shutdown(self) -> None:
        self.stopping = True
        self.follower.close()
        self.edge_link.stop()
        self.pool.stop_all()
        self._stop_records()
        self.cut_calls.flush()
        for event in self.cut_calls.unpublished:
            log.error("%s of %s lost: Redis did not answer", event.type, event.call_id)
        self.liveness.clear()

    def _stop_records(self) -> None:
        if self.records is None:
            return
        self.records.terminate()
        self.records.join(10)
        if self.records.is_alive():
            self.records.kill()


class _Timers:
    """When the loop next beats, publishes the rotation and syncs the edge's subscribers."""

    def __init__(self, now: float) -> None:
        self.next_beat = now + HEARTBEAT_EVERY
        self.next_sync = now + SUBSCRIBER_SYNC_EVERY
        self.next_rotation = 0.0


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
