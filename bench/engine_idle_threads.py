"""An idle slot pool's CPU per thread: which of a slot's threads costs what when no call is up,
plus the supervisor's share.

    .venv/bin/python bench/engine_idle_threads.py --slots 300 --seconds 10

Starts ``callcenter engine`` without the edge (slots on 127.0.0.1:26100+, RTP 52000+: ports
no test uses) with every slot started, waits 3 s, then reads each slot thread's CPU from
``/proc/<pid>/task`` over the window. A slot's threads, in creation order: the engine thread
(``python``), pjmedia's ``media`` worker, pjmedia's event manager (``ev_thread``), then the
publisher, the command reader and the control reader (``python``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import _engine_bench as eb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    eb.SLOT_BASE, eb.RTP_BASE, eb.PREFIX = 26100, 52000, "idlethreads"
    work = eb.workdir("engine-idle")
    print(f"{args.slots} idle slots, {args.seconds} s; load average {os.getloadavg()}")
    started = time.monotonic()
    engine = eb.Engine(work, lines=args.slots, spares=args.slots, edge=False)
    try:
        print(f"pool ready after {time.monotonic() - started:.1f} s")
        time.sleep(3)
        parts = engine.parts()
        slots = parts["slots"]
        before = {pid: eb.thread_ticks(pid) for pid in slots}
        supervisor = eb.cpu_seconds(parts["supervisor"])
        window = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - window
        after = {pid: eb.thread_ticks(pid) for pid in slots}
        supervisor = eb.cpu_seconds(parts["supervisor"]) - supervisor
        pss = eb.pss_mb(slots)
    finally:
        engine.stop()
    shares = eb.per_thread(before, after, elapsed)
    print("per slot, % of one core, by thread (creation order):")
    for key, share in shares.items():
        print(f"  {key:16} {share:.3f}")
    total = sum(shares.values()) * len(slots)
    print(f"all {len(slots)} slots: {total:.1f}% of a core, PSS {pss:.0f} MB")
    print(f"supervisor: {100 * supervisor / elapsed:.2f}% of a core")
    print(f"load average after: {os.getloadavg()}", file=sys.stdout)


if __name__ == "__main__":
    main()
