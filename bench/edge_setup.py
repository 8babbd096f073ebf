"""Call setup through the SIP edge: INVITE -> 200 OK p50/p99 at a steady call rate.

Measured in the same run against a baseline: the same SIPp caller straight to one slot
stand-in (a SIPp UAS), without the edge. Slots are SIPp UASs (one call each, as the engine's
slots); calls are held briefly and hung up through the edge, so slots are freed.

    .venv/bin/python bench/edge_setup.py [--calls 100] [--rate 10] [--slots 4]

Uses 127.0.0.1:15060 for the edge and 15101.. for the slot stand-ins (the edge tests' ports:
do not run it while those tests run). The goal (issue 3) is p99 < 50 ms at 10 calls/s.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _measure import percentile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter.testkit import sipp  # noqa: E402
from callcenter.testkit.scenarios import scenario  # noqa: E402
from config.loader import load_config  # noqa: E402
from config.settings import EdgeTuning, Settings, SipSettings  # noqa: E402
from ivr.edge.process import Edge  # noqa: E402

EDGE = ("127.0.0.1", 15060)


def run_caller(workdir: Path, target: str, service: str, calls: int, rate: int) -> list[float]:
    """Run SIPp's caller; the INVITE->200 times in ms from its message trace."""
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    result = sipp.run(scenario("caller.xml", run_dir), "127.0.0.3:15301", "-d", "50", "-s",
                      service, "-trace_msg", workdir=run_dir, target=target, calls=calls,
                      rate=rate, timeout_s=int(calls / rate) + 30, timeout_error=True,
                      timeout=calls / rate + 60)  # fmt: skip
    if not result.ok():
        print(f"  warning: SIPp reported failed calls (exit {result.returncode}):")
        print("  " + "\n  ".join(result.errors.splitlines()[:12]))
    return setup_times(run_dir)


_BLOCK = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d\.\d+)$", re.M)


def setup_times(run_dir: Path) -> list[float]:
    """INVITE sent -> first 200 OK received per Call-ID, in ms, from SIPp's message trace.

    (SIPp's own response-time dump has whole-millisecond resolution: too coarse here.)
    """
    sent: dict[str, datetime] = {}
    answered: dict[str, datetime] = {}
    for path in run_dir.glob("*_messages.log"):
        text = path.read_text(errors="replace")
        parts = _BLOCK.split(text)
        for stamp, body in zip(parts[1::2], parts[2::2], strict=False):
            at = datetime.strptime(stamp.replace("\t", " "), "%Y-%m-%d %H:%M:%S.%f")
            call_id = re.search(r"^Call-ID:\s*(\S+)", body, re.M)
            if not call_id:
                continue
            key = call_id.group(1)
            if "message sent" in body and re.search(r"^INVITE ", body, re.M):
                sent.setdefault(key, at)
            elif (
                "message received" in body
                and re.search(r"^SIP/2.0 200 ", body, re.M)
                and re.search(r"^CSeq:\s*\d+ INVITE", body, re.M)
            ):
                answered.setdefault(key, at)
    return [(answered[key] - sent[key]).total_seconds() * 1000 for key in answered if key in sent]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rate", type=int, default=10, help="calls per second")
    parser.add_argument("--slots", type=int, default=4)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="edge-bench-", dir="/tmp"))
    slots = [f"sip:127.0.0.1:{15101 + i}" for i in range(args.slots)]
    peers = [
        sipp.start(scenario("slot_uas.xml", workdir), uri.removeprefix("sip:"), workdir=workdir)
        for uri in slots
    ]
    settings = Settings(
        environment="test",
        state_dir=workdir,
        sip=SipSettings(
            edge_host=EDGE[0],
            edge_port=EDGE[1],
            # The caller stands for a carrier trunk: every call from one address at 10/s
            # (INVITE, ACK, BYE) would trip pike's flood ban otherwise.
            trunk_addresses=["127.0.0.3"],
            edge=EdgeTuning(children=2),
        ),
    )
    edge = Edge(settings, load_config(settings.config_dir), slots)
    try:
        edge.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            states = edge.slot_states()
            if all(s.active and s.probing for s in states.values()) and len(states) == len(slots):
                break
            time.sleep(0.1)
        baseline = run_caller(workdir, slots[0][4:], "4008001234", args.calls, args.rate)
        through_edge = run_caller(
            workdir, f"{EDGE[0]}:{EDGE[1]}", "4008001234", args.calls, args.rate
        )
        loads = {uri: s.load for uri, s in edge.slot_states().items()}
    finally:
        edge.stop()
        for peer in peers:
            sipp.stop(peer)
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"INVITE -> 200 OK, {args.calls} calls at {args.rate}/s, {args.slots} slots")
    print(f"{'path':<28}{'calls':>7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name, times in (
        ("direct to one slot (base)", baseline),
        ("through the edge", through_edge),
    ):
        if not times:
            print(f"{name:<28}{0:>7}  (no samples)")
            continue
        print(
            f"{name:<28}{len(times):>7}{statistics.median(times):>10.2f}"
            f"{percentile(times, 0.99):>10.2f}{max(times):>10.2f}"
        )
    print(f"slot loads after the run (all should be 0): {sorted(loads.values())}")


if __name__ == "__main__":
    main()
