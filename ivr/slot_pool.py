"""The node's slot processes: forked (one conversation each, on their own loopback SIP port
and RTP port range), watched through their status pipes, restarted when they die and retired
when idle too long.

It keeps ``warm_spares`` idle slots ready (growing up to ``sip.lines``) so a new call never
waits for a slot to start. A slot that dies with a call has that call accounted for
(``ivr/cut_calls.py``) and is started again at once; one that dies before it was ready backs
off, so a broken slot index does not become a tight fork loop. What the edge must know of a
slot (ready, free again, retired) goes to ``ivr/edge_link.py``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import wait
from typing import Any

import redis

from callcenter.supervision import die_with_parent
from config.settings import Settings
from ivr.cut_calls import CutCalls
from ivr.edge_link import EdgeLink
from ivr.live_config import EngineConfig
from ivr.slot_handle import SlotHandle
from ivr.spec import SlotSpec

log = logging.getLogger("ivr.supervisor")

SHRINK_AFTER_SECONDS = 60.0
STOP_GRACE_SECONDS = 6.0
MAX_START_BACKOFF_SECONDS = 30.0


class SlotPool:
    def __init__(
        self,
        settings: Settings,
        current: EngineConfig,
        *,
        edge: EdgeLink,
        cut_calls: CutCalls,
        allow_from: tuple[str, ...],
        via_edge: bool,
    ) -> None:
        self.settings = settings
        self.current = current  # the configuration new slots start with
        self.edge = edge
        self.cut_calls = cut_calls
        self.allow_from = allow_from
        self.via_edge = via_edge
        self.fork = multiprocessing.get_context("fork")
        self.slots: dict[int, SlotHandle] = {}
        self.stopping = False
        self.dirty = True  # the pool-state record is to be written again
        self.restarts = 0
        self.backoff: dict[int, tuple[float, float]] = {}  # index -> (not before, delay)

    # ------------------------------------------------------------ starting
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
            via_edge=self.via_edge,
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

    # ------------------------------------------------------------ size
    def idle_count(self) -> int:
        return sum(1 for h in self.slots.values() if h.idle)

    def idle_slots(self, now: float) -> list[SlotHandle]:
        """Ready slots with no call that no originate was just handed to."""
        return [
            h
            for h in self.slots.values()
            if h.status == "ready" and not h.call and h.reserved_until < now
        ]

    def ensure_capacity(self) -> None:
        lines = self.settings.sip.lines
        spares = min(self.settings.sip.warm_spares, lines)
        now = time.monotonic()
        while self.idle_count() < spares and len(self.slots) < lines:
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
        self.edge.remove(handle)
        handle.status = "stopping"
        with contextlib.suppress(ProcessLookupError):
            os.kill(handle.process.pid or 0, signal.SIGTERM)

    # ------------------------------------------------------------ what the slots report
    def read_ready(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a slot to report, read what every slot reported, and
        account for the slots that died."""
        conns = [h.conn for h in self.slots.values()]
        ready = wait(conns, timeout=timeout) if conns else []
        if not conns:
            time.sleep(timeout)
        for handle in list(self.slots.values()):
            if handle.conn in ready:
                self.read_status(handle)
        for handle in list(self.slots.values()):
            if not handle.process.is_alive():
                self.on_death(handle)

    def read_status(self, handle: SlotHandle) -> None:
        try:
            while handle.conn.poll():
                self._on_status(handle, handle.conn.recv())
        except (EOFError, OSError):
            pass

    def _on_status(self, handle: SlotHandle, message: dict[str, Any]) -> None:
        self.dirty = True
        status = message.get("status")
        if status == "ready":
            if handle.status != "stopping":
                handle.status = "ready"
            handle.idle_since = time.monotonic()
            self.edge.slot_ready(handle)
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
            self.edge.release(handle)

    def wait_initial(self, timeout: float) -> None:
        """Let the first slots answer before the edge starts sending calls."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if all(h.status == "ready" for h in self.slots.values()):
                return
            for conn in wait([h.conn for h in self.slots.values()], timeout=0.1):
                for handle in list(self.slots.values()):
                    if handle.conn is conn:
                        self.read_status(handle)
        log.warning("not every slot was ready within %.0f s", timeout)

    # ------------------------------------------------------------ death and respawn
    def on_death(self, handle: SlotHandle) -> None:
        self.read_status(handle)
        code = handle.process.exitcode
        handle.conn.close()
        del self.slots[handle.index]
        if handle.control is not None:
            handle.control.close()
        expected = handle.status == "stopping" and not handle.call
        _log_death(handle, code, expected)
        if not expected and not self.stopping and handle.status != "starting":
            # Its phones get their BYE from the edge, before a replacement takes the address.
            self.edge.slot_lost(handle)
        if handle.call:
            try:
                self.cut_calls.account(
                    handle.spec.name, handle.call, f"slot process exited with code {code}"
                )
            except redis.RedisError:
                # Redis is away (restarting): the call stays in the node's live-call hash
                # and the next engine start accounts for it; this engine carries on.
                log.exception("accounting for call %s failed", handle.call.get("call_id"))
        if expected or self.stopping:
            return
        if handle.status == "starting":
            # died before it was ready (port taken, pjsua2 failed): back off, so a broken
            # slot index does not become a tight fork loop; other indices keep serving
            delay = min(
                2 * self.backoff.get(handle.index, (0.0, 0.5))[1], MAX_START_BACKOFF_SECONDS
            )
            self.backoff[handle.index] = (time.monotonic() + delay, delay)
            log.error("slot %s failed to start; index unused for %.0f s", handle.spec.name, delay)
            return
        self.backoff.pop(handle.index, None)
        self.restarts += 1
        replacement = self.start_slot(handle.index)
        replacement.needs_load_reset = bool(handle.call)

    # ------------------------------------------------------------ stopping
    def stop_all(self) -> None:
        """SIGTERM every slot (each closes its call and recording), wait for them, then kill
        the ones that ignored it."""
        self.stopping = True
        for handle in self.slots.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle.process.pid or 0, signal.SIGTERM)
            handle.status = "stopping"
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.slots and time.monotonic() < deadline:
            for handle in list(self.slots.values()):
                self.read_status(handle)
                if not handle.process.is_alive():
                    handle.process.join()
                    self.on_death(handle)
            time.sleep(0.05)
        for handle in list(self.slots.values()):
            log.error("slot %s ignored SIGTERM; killing it", handle.spec.name)
            handle.process.kill()
            handle.process.join(5)
            self.on_death(handle)


def _log_death(handle: SlotHandle, code: int | None, expected: bool) -> None:
    if not expected:
        log.error(
            "slot %s died (exit code %s)%s",
            handle.spec.name,
            code,
            f" carrying call {handle.call.get('call_id')}" if handle.call else "",
        )
    elif code != 0:
        log.warning("slot %s stopped with exit code %s", handle.spec.name, code)


def with_parent(parent: int, target: Any, *args: Any) -> None:
    """A forked child's entry: it ends (SIGTERM: a slot still closes its call and recording)
    when the supervisor dies, even by SIGKILL, instead of living on as an orphan that holds
    its SIP port."""
    die_with_parent(signal.SIGTERM, parent)
    target(*args)


def _slot_entry(parent: int, inherited: tuple[int, ...], target: Any, *args: Any) -> None:
    """A forked slot's entry: close what it inherited of the other slots (``inherited``), then
    as ``with_parent``. pjsua2's ioqueue is select()-based: a socket numbered 1024 or more
    (FD_SETSIZE) cannot be polled, and pjsua refuses it (PJ_ETOOBIG). With the supervisor's
    3 descriptors per slot inherited, the slots from about the 250th on got their SIP socket
    past 1023 and failed to start (measured: 300 lines, slots s253 and up)."""
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    with_parent(parent, target, *args)
