"""Where one node breaks: ``bench/engine_lines.py`` at growing line counts, one step at a
time, each step under the machine-wide SIP lock (``flock /tmp/sip.lock``, released between
steps so others can test), until calls fail or recordings come out short.

    .venv/bin/python bench/node_capacity.py                      # 90, 120, ... 300
    .venv/bin/python bench/node_capacity.py --steps 90,150,210 --keep-going

Each step prints the load average and both sides of the same run: the fair baseline (bare
pjsua2 processes that answer, dial the agent, bridge and record) and the engine (menu,
queue, bridge to the agent through the edge, record). The table at the end gives per step:
calls, failures, CPU and PSS per line, engine / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run_step(
    lines: int, hold: int, rate: float, lock: str, extra: list[str]
) -> dict[str, Any] | None:
    argv = [sys.executable, str(HERE / "engine_lines.py"), "--lines", str(lines)]
    argv += ["--hold", str(hold), "--rate", str(rate), *extra]
    if lock:
        argv = ["flock", lock, *argv]
    print(f"== {lines} lines (hold {hold} s), load before {os.getloadavg()}", flush=True)
    result: dict[str, Any] | None = None
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        assert p.stdout is not None
        for line in p.stdout:
            if line.startswith("SUMMARY "):
                result = json.loads(line[len("SUMMARY ") :])
            else:
                print(line, end="", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="90,120,150,180,210,240,270,300")
    parser.add_argument("--rate", type=float, default=10, help="new calls per second")
    parser.add_argument("--hold", type=int, default=0, help="hold seconds (0: ramp + 25 s)")
    parser.add_argument("--lock", default="/tmp/sip.lock", help="'' for no lock")
    parser.add_argument("--keep-going", action="store_true", help="run every step")
    parser.add_argument("--bare-poll-ms", type=int, default=50, help="see engine_lines.py")
    parser.add_argument("--records", action="store_true", help="see engine_lines.py")
    args = parser.parse_args()
    rows = []
    for lines in [int(x) for x in args.steps.split(",")]:
        hold = args.hold or int(lines / args.rate + 25)
        extra = ["--bare-poll-ms", str(args.bare_poll_ms)] + (["--records"] if args.records else [])
        result = run_step(lines, hold, args.rate, args.lock, extra)
        if result is None:
            print(f"{lines} lines: the step did not finish")
            break
        rows.append(result)
        failed = result["engine"]["failed"] or (result["bare"] or {}).get("failed")
        if failed and not args.keep_going:
            break
    print()
    header = ["lines", "load (1 min)", "baseline calls / failed", "CPU %/line", "PSS MB/line"]
    header += ["engine calls / failed", "CPU %/line", "PSS MB/line", "CPU ratio", "PSS ratio"]
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        n, bare, engine = row["lines"], row["bare"], row["engine"]
        print(
            f"| {n} | {row['load'][0]:.1f} | {bare['calls']} / {bare['failed']} | "
            f"{bare['cpu'] / n:.2f} | {bare['pss'] / n:.1f} | "
            f"{engine['calls']} / {engine['failed']} | {engine['cpu'] / n:.2f} | "
            f"{engine['pss'] / n:.1f} | {engine['cpu'] / max(bare['cpu'], 1e-9):.2f} | "
            f"{engine['pss'] / max(bare['pss'], 1e-9):.2f} |"
        )


if __name__ == "__main__":
    main()
