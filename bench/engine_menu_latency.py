"""Menu latency: a DTMF digit → the next prompt starts playing, p50/p99.

Measured inside the slot: from the moment the digit's RFC 2833 packet reached pjsua2's
callback (``digit_received.at``) to the moment the next prompt's player was connected to the
caller (``menu_entered.prompt_started_at``); the conference bridge then sends it within one
20 ms frame. Baseline in the same run: one call at a time (an idle engine); then ``--calls``
callers in the menu at once.

    .venv/bin/python bench/engine_menu_latency.py [--calls 20] [--rate 5]

Each caller presses 1 (main menu → room-number prompt) then # (→ the repair queue prompt):
two samples per call. Goal (issue 3): p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _engine_bench import (
    SLOT_BASE,
    Engine,
    run_sipp,
    summary,
    workdir,
)

from callcenter.testkit.scenarios import bench_caller_scenario, dtmf, pause


def latencies(engine: Engine) -> list[float]:
    by_call: dict[str, list[tuple[str, dict[str, Any], str]]] = {}
    for _id, event in engine.events():
        by_call.setdefault(event.call_id, []).append((event.type, event.data, event.at))
    found = []
    for events in by_call.values():
        for index, (kind, _data, at) in enumerate(events):
            if kind != "digit_received":
                continue
            following = next((d for k, d, _a in events[index + 1 :] if k == "menu_entered"), None)
            if following and "prompt_started_at" in following:
                started = datetime.fromisoformat(following["prompt_started_at"])
                found.append((started - datetime.fromisoformat(at)).total_seconds() * 1000)
    return found


def run(base: Path, name: str, calls: int, rate: float, port: int, lines: int) -> list[float]:
    work = base / name
    work.mkdir()
    engine = Engine(work, lines=lines, spares=lines, edge=False)
    body = pause(800) + dtmf("1") + pause(700) + dtmf("#") + pause(1500)
    scenario = bench_caller_scenario(work / "caller.xml", body, per_call_target=True)
    rows = "\n".join(f"127.0.0.1;{SLOT_BASE + i % lines};" for i in range(calls))
    (work / "t.csv").write_text("SEQUENTIAL\n" + rows + "\n")
    caller = run_sipp(
        work,
        scenario,
        f"127.0.0.1:{SLOT_BASE}",
        calls=calls,
        rate=rate,
        port=port,
        media_port=46800,
        inf=work / "t.csv",
        local_ip="127.0.0.1",
        timeout=calls / rate + 60,
    )
    caller.wait()
    if caller.returncode != 0:
        print(f"  warning ({name}): SIPp exit {caller.returncode}")
    time.sleep(1)
    values = latencies(engine)
    engine.stop()
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rate", type=float, default=5)
    args = parser.parse_args()
    base = workdir("engine-menu")
    print(f"work dir {base}")
    # baseline: one call at a time (rate low enough that calls never overlap)
    alone = run(base, "alone", 6, 0.25, 16871, 2)
    loaded = run(base, "loaded", args.calls, args.rate, 16872, args.calls)
    print()
    print("DTMF digit → next prompt playing, ms")
    print(f"  one call at a time (baseline): {summary(alone)}")
    print(f"  {args.calls} callers at {args.rate}/s:          {summary(loaded)}")


if __name__ == "__main__":
    main()
