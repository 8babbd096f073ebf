"""What keeping registrations in Redis only costs: usrloc db_mode 3 against db_mode 1.

For each mode, in the same run, a real edge (Kamailio) on 127.0.0.1:15060 with one slot
stand-in address: an agent's softphone (SIPp) registers ``--registers`` times (digest: 401 then
200), then the "slot" (a SIPp caller on the slot's address) places ``--calls`` calls to the
agent, each answered by a SIPp UAS. Printed per mode: the REGISTERs' wall time per REGISTER,
the calls' INVITE -> 200 OK (p50/p99: the lookup is on that path), and the Redis commands the
edge sent per REGISTER and per call (``INFO commandstats`` deltas on the bench's own Redis
database). db_mode 1 (memory, written through) is the baseline.

    .venv/bin/python bench/edge_registrations.py [--registers 200] [--calls 200] [--rate 20]
        [--redis redis://127.0.0.1:6379/14]

Uses the edge tests' ports (15060, 15101, 127.0.0.4:15201/15401): run it under the SIP lock.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

import redis
from _measure import percentile
from edge_setup import setup_times

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.passwords import sip_ha1  # noqa: E402
from callcenter.testkit import sipp  # noqa: E402
from callcenter.testkit.scenarios import scenario  # noqa: E402
from config.loader import load_config  # noqa: E402
from config.settings import EdgeTuning, Settings, SipSettings  # noqa: E402
from ivr.edge.paths import edge_paths  # noqa: E402
from ivr.edge.process import Edge  # noqa: E402
from ivr.edge.subscribers import Subscriber, write_subscribers  # noqa: E402

SLOT = "127.0.0.1:15101"
AGENT = "127.0.0.4"
REALM = "callcenter.local"


def commands(client: redis.Redis) -> int:
    stats: dict[str, dict[str, int]] = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info",))


def one_mode(mode: Literal[1, 3], args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    client = redis.Redis.from_url(args.redis)
    client.flushdb()
    state = Path(tempfile.mkdtemp(dir=workdir))
    settings = Settings(
        environment="test",
        state_dir=state,
        redis_url=args.redis,
        sip=SipSettings(
            edge_host="127.0.0.1",
            edge_port=15060,
            edge=EdgeTuning(children=2, usrloc_db_mode=mode, flood_exempt_addresses=[AGENT]),
        ),
    )
    write_subscribers(
        edge_paths(settings).db_dir, [Subscriber("1001", REALM, sip_ha1("1001", REALM, "pw1001"))]
    )
    edge = Edge(settings, load_config(settings.config_dir), [f"sip:{SLOT}"])
    agent = sipp.start(scenario("slot_uas.xml", workdir), f"{AGENT}:15201", workdir=workdir)
    calls_dir = Path(tempfile.mkdtemp(dir=workdir))
    try:
        edge.start()
        client.config_resetstat()
        before = commands(client)
        started = time.monotonic()
        registers = sipp.run(
            scenario("register.xml", state), f"{AGENT}:15401", "-l", "1",
            *sipp.register_args("1001", "pw1001", f"sip:1001@{AGENT}:15201", REALM),
            workdir=state, target="127.0.0.1:15060", calls=args.registers, rate=1000,
            timeout=120,
        )  # fmt: skip
        code = registers.returncode
        register_ms = (time.monotonic() - started) * 1000 / args.registers
        per_register = (commands(client) - before) / args.registers
        if code != 0:
            print(f"  warning: db_mode {mode}: REGISTERs failed (SIPp exit {code})")
        before = commands(client)
        code = sipp.run(
            scenario("caller.xml", calls_dir), "127.0.0.1:15101", "-l", "1", "-d", "10",
            "-s", "1001", "-aa", "-trace_msg", workdir=calls_dir, target="127.0.0.1:15060",
            calls=args.calls, rate=args.rate, timeout=args.calls / args.rate + 60,
        ).returncode  # fmt: skip
        per_call = (commands(client) - before) / args.calls
        if code != 0:
            print(f"  warning: db_mode {mode}: calls failed (SIPp exit {code})")
        times = setup_times(calls_dir)
    finally:
        edge.stop()
        sipp.stop(agent)
        client.flushdb()
        client.close()
    return {
        "register_ms": register_ms,
        "per_register": per_register,
        "p50": statistics.median(times) if times else float("nan"),
        "p99": percentile(times, 0.99) if times else float("nan"),
        "calls": len(times),
        "per_call": per_call,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registers", type=int, default=200)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rate", type=int, default=20, help="calls per second")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="edge-regs-", dir="/tmp"))
    try:
        results = {1: one_mode(1, args, workdir), 3: one_mode(3, args, workdir)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{args.registers} REGISTERs one after the other; {args.calls} slot->agent calls at "
          f"{args.rate}/s, one at a time")  # fmt: skip
    print(f"{'usrloc db_mode':<26}{'ms/REGISTER':>12}{'Redis/REG':>10}"
          f"{'calls':>7}{'p50 ms':>9}{'p99 ms':>9}{'Redis/call':>11}")  # fmt: skip
    for mode, name in ((1, "1 memory+write (base)"), (3, "3 Redis only")):
        r = results[mode]
        print(f"{name:<26}{r['register_ms']:>12.2f}{r['per_register']:>10.1f}{r['calls']:>7.0f}"
              f"{r['p50']:>9.2f}{r['p99']:>9.2f}{r['per_call']:>11.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
