"""A forked slot starts without the supervisor's descriptors of the other slots.

pjsua2's ioqueue is select()-based: a socket numbered 1024 or more cannot be polled and pjsua
refuses to create it (PJ_ETOOBIG). The supervisor holds 3 descriptors per slot (its pipe ends
and the process sentinel); inherited by every forked slot, they pushed the SIP socket of the
~250th slot past 1023 and it never started. No SIP here (no lock needed): the slots are
stand-in processes and the check runs in a child forked the way the supervisor forks slots."""

from __future__ import annotations

import multiprocessing
import os
import time
from multiprocessing.connection import Connection
from typing import Any

from callcenter.context import AppContext
from ivr.slot_handle import SlotHandle
from ivr.slot_pool import _slot_entry
from ivr.spec import SlotSpec
from ivr.supervisor import Supervisor


def _sleep() -> None:
    time.sleep(60)


def _report_open(fds: tuple[int, ...], out: Connection) -> None:
    still_open = []
    for fd in fds:
        try:
            os.fstat(fd)
            still_open.append(fd)
        except OSError:
            pass
    out.send(still_open)


def test_a_forked_slot_closes_the_other_slots_descriptors(ctx: AppContext) -> None:
    fork: Any = multiprocessing.get_context("fork")
    sup = Supervisor(ctx, {}, with_edge=False, with_records=False)
    stand_ins = []
    try:
        for index in range(3):
            receiver, _sender = fork.Pipe(duplex=False)
            _control_in, control_out = fork.Pipe(duplex=False)
            process = fork.Process(target=_sleep, daemon=True)
            process.start()
            stand_ins.append(process)
            spec = SlotSpec(f"t-s{index}", index, "127.0.0.1", 26900 + index, 0, 0, (), False)
            sup.pool.slots[index] = SlotHandle(index, spec, process, receiver, control_out)
        inherited = sup.pool._inherited_fds()
        expected = {
            fd
            for h in sup.pool.slots.values()
            for fd in (h.conn.fileno(), h.control.fileno(), h.process.sentinel)  # type: ignore[union-attr]
        }
        assert set(inherited) == expected and len(expected) == 9

        result_in, result_out = fork.Pipe(duplex=False)
        child = fork.Process(
            target=_slot_entry,
            args=(os.getpid(), inherited, _report_open, inherited, result_out),
        )
        child.start()
        assert result_in.poll(30), "the child reported nothing"
        assert result_in.recv() == []
        child.join(30)
        assert child.exitcode == 0
    finally:
        for process in stand_ins:
            process.kill()
            process.join(10)
