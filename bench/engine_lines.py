"""Lines: N simultaneous calls through the edge into the menu, queued, bridged to an
auto-answer agent (SIPp), all recorded, held S seconds; CPU and memory (PSS) per line.

Baseline in the same run: N bare pjsua2 processes (one per line, forked as the engine's
slots) doing an engine line's media work: answer the caller, dial the agent (its own SIPp),
bridge the two, record both; called by the same SIPp caller and checked the same way.

    .venv/bin/python bench/engine_lines.py --lines 20 --hold 20 [--no-edge] [--records]
    .venv/bin/python bench/node_capacity.py     # steps of this from 90 lines up

Checks per call, both sides: bridged, ended normally, recording within 0.5 s of the call's
length and not silent (the caller's 440 Hz and the agent's 1000 Hz tones both present).
Goals: 90 lines with zero failures (issue 3); 300 per 2-core node (issue 15, docs/capacity.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from _engine_bench import (
    EDGE_PORT,
    PREFIX,
    SLOT_BASE,
    BareSlots,
    Engine,
    measure,
    measure_groups,
    per_thread,
    register_agent,
    run_sipp,
    thread_ticks,
    uas_xml,
    workdir,
)

from callcenter.testkit.rtp import tone_pcap
from callcenter.testkit.scenarios import bench_caller_scenario, dtmf, pause, play
from ivr import wav


def offer_driver(engine: Engine, agent_uri: str, stop: threading.Event) -> None:
    """Routing stand-in: offer every queued call to the agent URI."""
    last = "0"
    while not stop.is_set():
        answer: Any = engine.redis.xread({f"{PREFIX}:events": last}, block=200)
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                last = entry_id
                if fields["type"] == "call_queued":
                    engine.command(
                        fields["slot"], "offer", fields["call_id"], {"agent_uri": agent_uri}
                    )


def check_calls(engine: Engine) -> tuple[int, list[str]]:
    calls: dict[str, dict[str, dict[str, Any]]] = {}
    for _id, event in engine.events():
        calls.setdefault(event.call_id, {})[event.type] = event.data
    problems = []
    for call_id, seen in calls.items():
        if "bridged" not in seen:
            problems.append(f"{call_id}: never bridged ({sorted(seen)})")
            continue
        ended, stopped = seen.get("call_ended"), seen.get("recording_stopped")
        if not ended or not stopped:
            problems.append(f"{call_id}: not ended/recorded")
            continue
        if ended["outcome"] != "answered":
            problems.append(f"{call_id}: outcome {ended['outcome']}")
        if abs(stopped["duration"] - ended["duration"]) > 0.5:
            problems.append(
                f"{call_id}: recording {stopped['duration']} s vs call {ended['duration']} s"
            )
        check_recording(Path(stopped["path"]), problems, call_id)
    return len(calls), problems


def run_engine(args: argparse.Namespace, base: Path) -> dict[str, float]:
    work = base / "engine"
    work.mkdir()
    engine = Engine(
        work,
        lines=args.lines + 2,
        spares=args.lines + 2,
        edge=not args.no_edge,
        records=args.records,
    )
    try:
        return _run_engine(args, work, engine)
    finally:
        engine.stop()


def agent_phones(
    args: argparse.Namespace, work: Path, pcap: Path, port: int, *, media_port: int
) -> subprocess.Popen[bytes]:
    """The agent's softphone (127.0.0.4:``port``): answers each of the ``--lines`` calls
    after 50 ms and plays ``pcap``."""
    return run_sipp(work, uas_xml(work / "agent.xml", pcap), "", calls=args.lines, rate=1,
                    port=port, media_port=media_port, local_ip="127.0.0.4",
                    timeout=args.hold + 120)  # fmt: skip


def _run_engine(args: argparse.Namespace, work: Path, engine: Engine) -> dict[str, float]:
    caller_pcap = tone_pcap(work / "caller.pcap", 440, args.hold + 10)
    agent_pcap = tone_pcap(work / "agent.pcap", 1000, args.hold + 10)
    agent_port = 16850
    if args.no_edge:
        agent_uri = f"sip:1001@127.0.0.4:{agent_port}"
    else:
        register_agent(work, "1001", "pw1001", f"sip:1001@127.0.0.4:{agent_port}")
        agent_uri = "1001"  # the slot dials it through the edge
    agent = agent_phones(args, work, agent_pcap, agent_port, media_port=47000)
    stop = threading.Event()
    driver = threading.Thread(target=offer_driver, args=(engine, agent_uri, stop), daemon=True)
    driver.start()
    body = pause(500) + dtmf("0") + play(caller_pcap) + pause(args.hold * 1000)
    scenario = bench_caller_scenario(work / "caller.xml", body, per_call_target=False)
    target = f"127.0.0.1:{EDGE_PORT}" if not args.no_edge else f"127.0.0.1:{SLOT_BASE}"
    idle_parts = measure_groups(engine.parts, 3)
    idle_cpu = sum(c for name, (c, _p) in idle_parts.items() if name != "redis-server")
    idle_pss = sum(p for name, (_c, p) in idle_parts.items() if name != "redis-server")
    started = time.monotonic()
    caller = run_sipp(
        work,
        scenario,
        target,
        calls=args.lines,
        rate=args.rate,
        port=16851,
        media_port=46500,
        timeout=args.hold + 120,
    )
    # measure while every call is up (after the ramp and the bridge)
    time.sleep(args.lines / args.rate + 3)
    slot_pids = engine.parts()["slots"]
    threads_before = {pid: thread_ticks(pid) for pid in slot_pids}
    window = time.monotonic()
    parts = measure_groups(engine.parts, max(args.hold - args.lines / args.rate - 5, 3))
    threads = per_thread(
        threads_before,
        {pid: thread_ticks(pid) for pid in slot_pids},
        time.monotonic() - window,
    )
    cpu = sum(c for name, (c, _p) in parts.items() if name != "redis-server")
    pss = sum(p for name, (_c, p) in parts.items() if name != "redis-server")
    caller.wait()
    agent_exit = wait_exit(agent, 60)
    elapsed = time.monotonic() - started
    time.sleep(1.5)
    stop.set()
    count, problems = check_calls(engine)
    engine.stop()
    failed_sipp = caller.returncode != 0
    print(
        f"engine{' (direct to slots)' if args.no_edge else ' (through the edge)'}: "
        f"{count} calls in {elapsed:.1f} s, SIPp caller exit {caller.returncode}, "
        f"agent exit {agent_exit}"
    )
    for problem in problems[:10]:
        print("  problem:", problem)
    print(
        f"  idle pool of {args.lines + 2} slots: CPU {idle_cpu:.1f}% of a core, "
        f"PSS {idle_pss:.0f} MB"
    )
    print(
        "  per slot while the calls are up, % of a core by thread: "
        + ", ".join(f"{key} {share:.3f}" for key, share in threads.items())
    )
    for label, figures in (("idle", idle_parts), ("calls up", parts)):
        print(
            f"  {label}: "
            + ", ".join(f"{name} {c:.1f}% {p:.0f} MB" for name, (c, p) in figures.items())
        )
    return {
        "calls": count,
        "failed": len(problems) + (args.lines - count) + int(failed_sipp),
        "cpu": cpu,
        "pss": pss,
        "idle_cpu": idle_cpu,
        "idle_pss": idle_pss,
    }


def check_recording(path: Path, problems: list[str], name: str) -> None:
    """Both parties audible near the end of the recording (caller 440 Hz, agent 1000 Hz)."""
    pcm, rate = wav.samples(path)
    window = pcm[-3 * rate : -2 * rate]
    noise = max(wav.tone_power(window, rate, 2500), 1)
    if wav.tone_power(window, rate, 440) < 100 * noise:
        problems.append(f"{name}: caller not audible in the recording")
    if wav.tone_power(window, rate, 1000) < 100 * noise:
        problems.append(f"{name}: agent not audible in the recording")


def run_bare(args: argparse.Namespace, base: Path) -> dict[str, float]:
    """The fair baseline: one bare pjsua2 process per line that answers the caller, dials the
    agent, bridges the two and records (an engine line's media work without the engine)."""
    work = base / "bare"
    work.mkdir()
    agent_port = 16853
    agent_pcap = tone_pcap(work / "agent.pcap", 1000, args.hold + 10)
    agent = agent_phones(args, work, agent_pcap, agent_port, media_port=47500)
    bare = BareSlots(
        args.lines,
        Path(),
        work / "recordings",
        agent_uri=f"sip:1001@127.0.0.4:{agent_port}",
        poll_ms=args.bare_poll_ms,
    )
    caller_pcap = tone_pcap(work / "caller.pcap", 440, args.hold + 10)
    body = pause(500) + play(caller_pcap) + pause(args.hold * 1000)
    scenario = bench_caller_scenario(work / "caller.xml", body, per_call_target=True)
    inf = bare.inf_file(work / "targets.csv", args.lines)
    idle_cpu, idle_pss = measure(bare.pids, 3)
    caller = run_sipp(
        work,
        scenario,
        f"127.0.0.1:{16700}",
        calls=args.lines,
        rate=args.rate,
        port=16852,
        media_port=46700,
        inf=inf,
        timeout=args.hold + 120,
    )
    time.sleep(args.lines / args.rate + 3)
    threads_before = {pid: thread_ticks(pid) for pid in bare.pids()}
    window = time.monotonic()
    cpu, pss = measure(bare.pids, max(args.hold - args.lines / args.rate - 5, 3))
    threads = per_thread(
        threads_before, {pid: thread_ticks(pid) for pid in bare.pids()}, time.monotonic() - window
    )
    caller.wait()
    agent_exit = wait_exit(agent, 30)
    time.sleep(1)
    bare.stop()
    recordings = sorted((work / "recordings").glob("*.wav"))
    problems: list[str] = []
    for path in recordings:
        call_file = path.with_name(path.name + ".call")
        call = float(call_file.read_text()) if call_file.exists() else 0.0
        duration = wav.facts(path).duration
        if abs(duration - call) > 0.5:
            problems.append(f"{path.name}: recording {duration:.2f} s vs call {call:.2f} s")
        check_recording(path, problems, path.name)
    durations = [wav.facts(p).duration for p in recordings]
    low, high = min(durations, default=0), max(durations, default=0)
    print(
        f"bare bridged lines: {len(recordings)} recordings, SIPp caller exit {caller.returncode}"
        f", agent exit {agent_exit}, durations {low:.1f}-{high:.1f} s"
    )
    for problem in problems[:10]:
        print("  problem:", problem)
    print(
        "  per process while the calls are up, % of a core by thread: "
        + ", ".join(f"{key} {share:.3f}" for key, share in threads.items())
    )
    print(f"  idle: {args.lines} bare processes: CPU {idle_cpu:.1f}% of a core, "
          f"PSS {idle_pss:.0f} MB")  # fmt: skip
    return {
        "calls": len(recordings),
        "failed": len(problems) + (args.lines - len(recordings)) + int(caller.returncode != 0),
        "cpu": cpu,
        "pss": pss,
        "idle_cpu": idle_cpu,
        "idle_pss": idle_pss,
    }


def wait_exit(process: Any, seconds: float) -> int | str:
    """A SIPp peer's exit code, or "killed" if it did not end within ``seconds``."""
    try:
        return int(process.wait(seconds))
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return "killed"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20)
    parser.add_argument("--hold", type=int, default=20, help="seconds each call is held")
    parser.add_argument("--rate", type=float, default=10, help="new calls per second")
    parser.add_argument("--no-edge", action="store_true", help="call the slots directly")
    parser.add_argument("--no-bare", action="store_true", help="skip the baseline")
    parser.add_argument(
        "--records", action="store_true", help="run the call-record consumer (SQLite) too"
    )
    parser.add_argument(
        "--bare-poll-ms",
        type=int,
        default=50,
        help="the baseline's libHandleEvents timeout (50: the engine's former poll; 1000: "
        "the floor, a process with no timers)",
    )
    args = parser.parse_args()
    base = workdir("engine-lines")
    print(
        f"{args.lines} lines held {args.hold} s, {args.rate} calls/s, baseline poll "
        f"{args.bare_poll_ms} ms; work dir {base}"
    )
    print(f"before: {load()}")
    bare = run_bare(args, base) if not args.no_bare else None
    print(f"after the baseline: {load()}")
    engine = run_engine(args, base)
    print(f"after the engine: {load()}")
    n = args.lines
    print()
    print("| | calls | failed | CPU % of a core | per line | PSS MB | per line "
          "| idle CPU % | idle PSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [("bare pjsua2 bridge+record (baseline)", bare),
            ("engine (menu, queue, bridge, record)", engine)]  # fmt: skip
    for name, row in rows:
        if row is None:
            continue
        print(
            f"| {name} | {row['calls']} | {row['failed']} | {row['cpu']:.1f} | "
            f"{row['cpu'] / n:.2f} | {row['pss']:.0f} | {row['pss'] / n:.1f} | "
            f"{row['idle_cpu']:.1f} | {row['idle_pss']:.0f} |"
        )
    if bare is not None:
        ratio = (engine["cpu"] / n) / max(bare["cpu"] / n, 1e-9)
        print(
            f"CPU per line: engine / bare = {ratio:.2f}; PSS per line: engine / bare = "
            f"{engine['pss'] / max(bare['pss'], 1e-9):.2f} (engine side includes the "
            f"supervisor{'' if args.no_edge else ', the edge'} and {2} idle spares)"
        )
    ok = engine["failed"] == 0 and (bare is None or bare["failed"] == 0)
    print("SUMMARY " + json.dumps({"lines": n, "load": os.getloadavg(), "bare": bare,
                                   "engine": engine}))  # fmt: skip
    print(f"RESULT lines={n} engine_failed={engine['failed']} "
          f"bare_failed={bare['failed'] if bare else '-'} {'OK' if ok else 'FAILED'}")  # fmt: skip


if __name__ == "__main__":
    main()
