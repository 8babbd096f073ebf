"""Caller queued with a ready agent -> the INVITE to the agent leaves the slot (issue 4 goal:
p99 < 50 ms), with the real engine, edge and router processes.

SIPp callers dial the hotline through the Kamailio edge one after the other; the DID goes
straight to the "to_agent" enqueue node (queue general, wrap-up 0 s so the agent is ready
again at once). Agent 1001 is logged in and ready; its softphone is a SIPp UAS registered at
the edge that answers after 50 ms. Per call: the engine's ``call_queued`` event -> routing
(the ``callcenter router`` process) decides and sends ``offer`` -> the slot's
``agent_offered`` event, emitted just before the INVITE is sent (both times from the
engine's clock).
Baseline in the same run: a command written to a slot's stream -> the slot's answer
(``command_failed`` for a call it does not carry): the engine's own command pick-up time.

    .venv/bin/python bench/cti_offer_invite.py [--calls 40]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import cast

import _engine_bench as eb

from callcenter.testkit.config import queues_toml, shipped_telephony, telephony_toml
from callcenter.testkit.scenarios import bench_caller_scenario, pause
from callcenter.testkit.sipp import sipp_agent

# Ports apart from the engine's own benchmarks and tests.
eb.SLOT_BASE = 17300
eb.EDGE_PORT = 17250
AGENT = ("127.0.0.4", 17891)


def bench_config(target: Path) -> Path:
    """The shipped configuration with the DID straight to an agent and no wrap-up."""
    from config.settings import DEFAULT_CONFIG_DIR

    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    telephony = shipped_telephony()
    for did in telephony["dids"]:
        if did["number"] == "4008001234":
            did["entry"] = "to_agent"
    (target / "telephony.toml").write_text(telephony_toml(telephony), encoding="utf-8")
    queues = queues_toml(general={"wrap_up_seconds": 0})
    (target / "queues.toml").write_text(queues, encoding="utf-8")
    return target


def at(event: object) -> float:
    return datetime.fromisoformat(event.at).timestamp()  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    work = eb.workdir("cti-offer-invite")
    config = bench_config(work / "config")
    engine = eb.Engine(work, lines=4, spares=4, edge=True, config_dir=config)
    router: subprocess.Popen[bytes] | None = None
    softphone: subprocess.Popen[bytes] | None = None
    try:
        os.environ["CALLCENTER_SETTINGS_FILE"] = str(engine.settings_file)
        from sqlalchemy import update

        from callcenter.context import build_context
        from config.settings import load_settings
        from cti import services
        from cti.models import Agent

        ctx = build_context(load_settings())
        with ctx.sessions() as session, session.begin():
            # No shift: eligible at any hour the benchmark runs.
            session.execute(update(Agent).where(Agent.extension == "1001").values(shift_code=None))
            agent_id = session.scalar(
                Agent.__table__.select()
                .with_only_columns(Agent.id)
                .where(Agent.extension == "1001")
            )
        router = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "router"],
            env=engine.env,
            cwd=work,
            stdout=(work / "router.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while not ctx.redis.exists(ctx.keys.process_heartbeat("router")):
            assert time.monotonic() < deadline, "router did not start"
            time.sleep(0.1)
        eb.register_agent(work, "1001", "pw1001", f"sip:1001@{AGENT[0]}:{AGENT[1]}")
        softphone = sipp_agent(eb.uas_xml(work / "agent.xml", None), local_port=AGENT[1],
                               media_port=47891, calls=args.calls, cwd=work,
                               timeout_s=args.calls * 5 + 60, local_ip=AGENT[0])  # fmt: skip
        assert agent_id is not None
        services.set_state(ctx, agent_id=int(agent_id), state="ready", reason=None, actor="bench")

        # Baseline: a command to an idle slot -> its command_failed event.
        pool = cast(dict[str, str], engine.redis.hgetall(f"{eb.PREFIX}:engine:pool:node1"))
        slots = [k.removeprefix("slot:") for k in pool if k.startswith("slot:")]
        baseline: list[float] = []
        for n in range(args.calls):
            call_id = f"baseline-{n}"
            sent = time.time()
            engine.command(slots[n % len(slots)], "hangup", call_id, {})
            while True:
                found = [
                    e for _i, e in engine.events()
                    if e.call_id == call_id and e.type == "command_failed"
                ]  # fmt: skip
                if found:
                    baseline.append((at(found[0]) - sent) * 1000)
                    break
                time.sleep(0.005)

        scenario = bench_caller_scenario(work / "caller.xml", pause(800), per_call_target=False)
        caller = eb.run_sipp(
            work, scenario, f"127.0.0.1:{eb.EDGE_PORT}", calls=args.calls, rate=0.5,
            port=17861, media_port=47861, timeout=args.calls * 5 + 60,
        )  # fmt: skip
        caller.wait()
        offers: list[float] = []
        queued: dict[str, float] = {}
        for _i, event in engine.events():
            if event.type == "call_queued":
                queued[event.call_id] = at(event)
            elif event.type == "agent_offered" and event.call_id in queued:
                offers.append((at(event) - queued.pop(event.call_id)) * 1000)
        print(f"{len(offers)} of {args.calls} calls offered (SIPp exit {caller.returncode})")
        print("ms, engine clock")
        print(f"  baseline: command -> slot answers      {eb.summary(baseline)}")
        print(f"  call_queued -> INVITE to the agent     {eb.summary(offers)}")
    finally:
        for process in (softphone, router):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
        engine.stop()


if __name__ == "__main__":
    main()
