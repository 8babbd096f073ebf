"""Recovery time per process killed, under load (issue 11, "faults under load").

``callcenter up`` on its own append-only Redis and SQLite, agents whose softphones (SIPp UAS
registered at the edge) answer, ``--calls`` SIPp callers held through the edge. Then, one at a
time: kill -9 a slot carrying an answered call, Kamailio, the API, the router, the worker;
restart Redis; kill -9 the engine supervisor. With ``--database postgres`` the center runs on
a PostgreSQL cluster of its own (``initdb`` into a temporary directory, a free loopback port),
restarted twice before the engine's kill: ``pg_ctl restart -m fast``, and kill -9 of the
postmaster then a start (crash recovery). For each it prints the seconds from the kill (or the
restart) until ``/readyz`` answers 200 and a new call is answered through the edge, and how
many of the held calls are still up. Baseline, measured in the same run: the cold start
(``up`` until "ready") and one call answered with nothing killed. The load average is printed
beside the figures (the machine may be shared).

    .venv/bin/python bench/faults.py [--calls 30] [--agents 6] [--database postgres]

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

from sqlalchemy import text  # noqa: E402

from callcenter.db import make_engine  # noqa: E402
from callcenter.testkit.faults import (  # noqa: E402
    Center,
    Ports,
    PrivatePostgres,
    PrivateRedis,
    alive,
    free_port,
    wait_for,
)

EXTENSIONS = [str(n) for n in range(1001, 1013)]


def load() -> str:
    """The 1, 5 and 15 minute load averages (the machine's other work shows in the figures)."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def held(center: Center) -> int:
    return sum(1 for _pid, _status, call in center.slots().values() if call)


def recover(center: Center, killed_at: float, n: int) -> float:
    return center.recovered(killed_at, n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--agents", type=int, default=6)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    store = PrivateRedis(tmp / "redis")
    store.start()
    pg = PrivatePostgres() if args.database == "postgres" else None
    if pg is not None:
        pg.start()
        pg.create_database()
    center = Center(tmp, Ports(), store, free_port(), database_url=pg.url if pg else "")
    rows: list[tuple[str, float, int, int, str]] = []
    try:
        print(f"database: {args.database}; load average at start: {load()}")
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
            rows.append((name, recover(center, killed_at, n), before, held(center), load()))

        answered_slot = next(pid for pid, _status, call in center.slots().values() if call)
        kill("slot", answered_slot, 1)
        kill("kamailio", center.kamailio(), 2)
        for n, name in enumerate(("api", "router", "worker"), start=3):
            kill(name, center.child(name), n)
        before = held(center)
        killed_at = time.monotonic()
        store.restart()
        rows.append(("redis (restart)", recover(center, killed_at, 6), before, held(center),
                     load()))  # fmt: skip
        if pg is not None:
            before = held(center)
            began = time.monotonic()
            pg.restart_fast()
            rows.append(("postgres (fast restart)", recover(center, began, 8), before,
                         held(center), load()))  # fmt: skip
            before = held(center)
            began = time.monotonic()
            pg.kill()
            pg.start()
            rows.append(("postgres (kill -9, start)", recover(center, began, 9), before,
                         held(center), load()))  # fmt: skip
        kill("engine", center.child("engine"), 7)
        callers.kill()
        callers.wait()
        print(f"{'killed':<27}{'ready + call answered (s)':>27}{'calls held before':>20}"
              f"{'after':>8}   load average")  # fmt: skip
        for name, took, before, after, average in rows:
            print(f"{name:<27}{took:>27.1f}{before:>20}{after:>8}   {average}")
        engine = make_engine(center.records_url)
        with engine.connect() as db:
            open_calls = db.execute(
                text("SELECT count(*) FROM calls WHERE outcome IS NULL AND ended_at IS NULL")
            ).scalar()
        engine.dispose()
        print(f"\ncall records still open right after the last kill: {open_calls}")
        if pg is None:
            sqlite = sqlite3.connect(center.database)
            check = sqlite.execute("PRAGMA integrity_check").fetchone()[0]
            sqlite.close()
            print(f"SQLite integrity_check: {check}")
    finally:
        center.stop()
        store.stop()
        if pg is not None:
            pg.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
