"""Setup: INVITE → 200 OK p50/p99 at a steady call rate, through the edge into the engine,
next to a bare pjsua2 slot called directly (no edge), measured in the same run.

    .venv/bin/python bench/engine_setup.py [--calls 100] [--rate 10]

Each call is answered, held 300 ms and hung up. Times come from SIPp's message trace
(microsecond timestamps of the INVITE sent and the 200 received). Goal (issue 3): p99 < 50 ms.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _engine_bench import (
    EDGE_PORT,
    SLOT_BASE,
    BareSlots,
    Engine,
    invite_to_200_ms,
    run_sipp,
    summary,
    tone_wav,
    workdir,
)

from callcenter.testkit.scenarios import bench_caller_scenario, pause


def run(
    work: Path, target: str, calls: int, rate: float, port: int, inf: Path | None = None
) -> list[float]:
    per_call = inf is not None
    scenario = bench_caller_scenario(work / "caller.xml", pause(300), per_call_target=per_call)
    caller = run_sipp(
        work,
        scenario,
        target,
        calls=calls,
        rate=rate,
        port=port,
        media_port=port + 30000,
        inf=inf,
        trace_msg=True,
        timeout=calls / rate + 60,
    )
    caller.wait()
    if caller.returncode != 0:
        print(f"  warning: SIPp exit {caller.returncode}: some calls failed")
    return invite_to_200_ms(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--lines", type=int, default=12, help="engine slots")
    args = parser.parse_args()
    base = workdir("engine-setup")
    print(f"{args.calls} calls at {args.rate}/s, work dir {base}")

    bare_dir = base / "bare"
    bare_dir.mkdir()
    # as many bare slots as engine slots called directly, each call to the next one
    bare = BareSlots(8, tone_wav(bare_dir / "p.wav", 600, 3), bare_dir / "rec")
    bare_times = run(
        bare_dir,
        "127.0.0.1:16700",
        args.calls,
        args.rate,
        16861,
        inf=bare.inf_file(bare_dir / "t.csv", args.calls),
    )
    bare.stop()

    engine_dir = base / "engine"
    engine_dir.mkdir()
    engine = Engine(engine_dir, lines=args.lines, spares=args.lines, edge=True)
    edge_times = run(engine_dir, f"127.0.0.1:{EDGE_PORT}", args.calls, args.rate, 16862)
    engine.stop()

    direct_dir = base / "direct"
    direct_dir.mkdir()
    engine = Engine(direct_dir, lines=8, spares=8, edge=False)
    rows = "\n".join(f"127.0.0.1;{SLOT_BASE + i % 8};" for i in range(args.calls))
    (direct_dir / "t.csv").write_text("SEQUENTIAL\n" + rows + "\n")
    direct_times = run(
        direct_dir, f"127.0.0.1:{SLOT_BASE}", args.calls, args.rate, 16863, inf=direct_dir / "t.csv"
    )
    engine.stop()

    print()
    print("INVITE → 200 OK, ms")
    print(f"  bare pjsua2 slots, direct (baseline): {summary(bare_times)}")
    print(f"  engine slots, direct (no edge):       {summary(direct_times)}")
    print(f"  engine through the edge:              {summary(edge_times)}")


if __name__ == "__main__":
    main()
