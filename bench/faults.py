"""Recovery time per process killed, under load (issue 11, "faults under load").

``callcenter up`` on its own append-only Redis and SQLite, agents whose softphones (SIPp UAS
registered at the edge) answer, ``--calls`` SIPp callers held through the edge. Then, one at a
time: kill -9 a slot carrying an answered call, Kamailio, the API, the router, the worker;
restart Redis; kill -9 the engine supervisor. For each it prints the seconds from the kill
until ``/readyz`` answers 200 and a new call is answered through the edge, and how many of
the held calls are still up. Baseline, measured in the same run: the cold start (``up`` until
"ready") and one call answered with nothing killed.

    .venv/bin/python bench/faults.py [--calls 30] [--agents 6]

Fixed loopback ports (callcenter/testkit/faults.py ``Ports``: edge 17260, slots 17300..):
run it under the SIP lock, never beside the faults test.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.testkit.faults import (  # noqa: E402
    Center,
    Ports,
    PrivateRedis,
    alive,
    free_port,
    wait_for,
)

EXTENSIONS = [str(n) for n in range(1001, 1013)]


def held(center: Center) -> int:
    return sum(1 for _pid, _status, call in center.slots().values() if call)


def recover(center: Center, killed_at: float, n: int) -> float:
    return center.recovered(killed_at, n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--agents", type=int, default=6)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    store = PrivateRedis(tmp / "redis")
    store.start()
    center = Center(tmp, Ports(), store, free_port())
    rows: list[tuple[str, float, int, int]] = []
    try:
        center.start(lines=args.calls + 8, spares=args.calls + 2)
        print(f"cold start (up until ready): {center.ready_after:.1f} s")
        for n, extension in enumerate(EXTENSIONS[: args.agents]):
            center.agent(n, extension)
        began = time.monotonic()
        baseline = center.recovered(began, 0)
        print(f"baseline: ready and one call answered, nothing killed: {baseline:.2f} s")
        callers = center.callers(0, args.calls, hold_ms=240_000, rate=10)
        wait_for(lambda: held(center) >= args.calls, 60, f"{args.calls} calls on slots")
        print(f"{args.calls} calls held, {args.agents} agents answering\n")

        def kill(name: str, pid: int, n: int) -> None:
            before = held(center)
            killed_at = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not alive(pid), 5, f"{name} gone")
            if name in ("api", "router", "worker", "engine"):
                wait_for(lambda: center.child_or_none(name) not in (None, pid), 60, name)
            rows.append((name, recover(center, killed_at, n), before, held(center)))

        answered_slot = next(pid for pid, _status, call in center.slots().values() if call)
        kill("slot", answered_slot, 1)
        kill("kamailio", center.kamailio(), 2)
        for n, name in enumerate(("api", "router", "worker"), start=3):
            kill(name, center.child(name), n)
        before = held(center)
        killed_at = time.monotonic()
        store.restart()
        rows.append(("redis (restart)", recover(center, killed_at, 6), before, held(center)))
        kill("engine", center.child("engine"), 7)
        callers.kill()
        callers.wait()
        print(f"{'killed':<18}{'ready + call answered (s)':>27}{'calls held before':>20}"
              f"{'after':>8}")  # fmt: skip
        for name, took, before, after in rows:
            print(f"{name:<18}{took:>27.1f}{before:>20}{after:>8}")
        db = sqlite3.connect(center.database)
        open_calls = db.execute(
            "SELECT count(*) FROM calls WHERE outcome IS NULL AND ended_at IS NULL"
        ).fetchone()[0]
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        db.close()
        print(f"\ncall records still open right after the last kill: {open_calls}; "
              f"SQLite integrity_check: {check}")  # fmt: skip
    finally:
        center.stop()
        store.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
