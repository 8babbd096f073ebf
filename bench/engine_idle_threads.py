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
from pathlib import Path

import _engine_bench as eb


def thread_ticks(pid: int) -> list[tuple[int, str, int]]:
    """(thread id, name, utime + stime ticks) per thread of ``pid``, by thread id."""
    rows = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        rows.append((int(task.name), name, int(fields[11]) + int(fields[12])))
    return sorted(rows)


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
        before = {pid: thread_ticks(pid) for pid in slots}
        supervisor = eb.cpu_seconds(parts["supervisor"])
        window = time.monotonic()
        time.sleep(args.seconds)
        elapsed = time.monotonic() - window
        after = {pid: thread_ticks(pid) for pid in slots}
        supervisor = eb.cpu_seconds(parts["supervisor"]) - supervisor
        pss = eb.pss_mb(slots)
    finally:
        engine.stop()
    per_thread: dict[str, int] = {}
    for pid in slots:
        old = {tid: ticks for tid, _name, ticks in before[pid]}
        for index, (tid, name, ticks) in enumerate(after[pid]):
            key = f"{index}:{name}"
            per_thread[key] = per_thread.get(key, 0) + ticks - old.get(tid, ticks)
    hz = os.sysconf("SC_CLK_TCK")
    print("per slot, % of one core, by thread (creation order):")
    for key, ticks in per_thread.items():
        print(f"  {key:16} {100 * ticks / hz / elapsed / len(slots):.3f}")
    total = sum(per_thread.values())
    print(f"all {len(slots)} slots: {100 * total / hz / elapsed:.1f}% of a core, PSS {pss:.0f} MB")
    print(f"supervisor: {100 * supervisor / elapsed:.2f}% of a core")
    print(f"load average after: {os.getloadavg()}", file=sys.stdout)


if __name__ == "__main__":
    main()
