"""Shared pieces of the engine benchmarks: run the engine, SIPp peers, /proc figures, and a
bare pjsua2 slot (answers, plays, records: the baseline each benchmark measures in the same run).

Ports (loopback): engine slots 16100+, edge 16050, bare slots 16700+, SIPp 16800-16899,
RTP 40000-49999. Redis: $CALLCENTER_TEST_REDIS_URL (default db 11) under the prefix "bench".
"""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from _measure import percentile  # noqa: E402

from callcenter.streams import CallEvent  # noqa: E402
from callcenter.testkit import rtp, sipp  # noqa: E402
from callcenter.testkit.config import settings_file  # noqa: E402
from callcenter.testkit.faults import proc_stat  # noqa: E402
from callcenter.testkit.scenarios import agent_scenario  # noqa: E402

REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
PREFIX = "bench"
SLOT_BASE = 16100
RTP_BASE = 40000
EDGE_PORT = 16050
BARE_BASE = 16700
BARE_RTP = 48000


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"n={len(values)} p50={percentile(values, 0.5):.2f} p99={percentile(values, 0.99):.2f} "
        f"max={max(values):.2f} mean={statistics.fmean(values):.2f}"
    )


# ---------------------------------------------------------------- /proc figures


def process_tree(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields:
                parents[int(entry.name)] = int(fields[1])
    found = [root]
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.append(pid)
                changed = True
    return found


def cpu_seconds(pids: list[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = proc_stat(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


def pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
    return total / 1024


def measure(pids_of: Callable[[], list[int]], seconds: float) -> tuple[float, float]:
    """(CPU % of one core, PSS MB) of a set of processes over a window."""
    pids = pids_of()
    before, start = cpu_seconds(pids), time.monotonic()
    time.sleep(seconds)
    pss = pss_mb(pids)
    used = cpu_seconds(pids) - before
    return 100 * used / (time.monotonic() - start), pss


def measure_groups(
    groups_of: Callable[[], dict[str, list[int]]], seconds: float
) -> dict[str, tuple[float, float]]:
    """(CPU % of one core, PSS MB) per named group of processes over one window."""
    groups = groups_of()
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    return {
        name: (100 * (cpu_seconds(pids) - before[name]) / elapsed, pss_mb(pids))
        for name, pids in groups.items()
    }


def thread_ticks(pid: int) -> list[tuple[int, str, int]]:
    """(thread id, name, utime + stime ticks) per thread of ``pid``, by thread id (creation
    order: a slot's engine thread, pjmedia's ``media`` and ``ev_thread``, then its Python
    threads; a conference clock thread while a call is up)."""
    rows = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
                name = (task / "comm").read_text().strip()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            rows.append((int(task.name), name, int(fields[11]) + int(fields[12])))
    return sorted(rows)


def per_thread(
    before: dict[int, list[tuple[int, str, int]]],
    after: dict[int, list[tuple[int, str, int]]],
    seconds: float,
) -> dict[str, float]:
    """% of one core per process, by thread position and name, averaged over the processes."""
    ticks: dict[str, int] = {}
    for pid, rows in after.items():
        old = {tid: t for tid, _name, t in before.get(pid, [])}
        for index, (tid, name, t) in enumerate(rows):
            key = f"{index}:{name}"
            ticks[key] = ticks.get(key, 0) + t - old.get(tid, t)
    hz = os.sysconf("SC_CLK_TCK")
    count = max(len(after), 1)
    return {key: 100 * t / hz / seconds / count for key, t in ticks.items()}


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- SIPp peers (the kit's)


def tone_wav(path: Path, frequency: float, seconds: float) -> Path:
    return rtp.tone_wav(path, frequency, seconds, volume=0.3)


def run_sipp(
    workdir: Path,
    scenario: Path,
    target: str,
    *,
    calls: int,
    rate: float,
    port: int,
    media_port: int,
    local_ip: str = "127.0.0.3",
    inf: Path | None = None,
    trace_msg: bool = False,
    timeout: float = 300,
) -> sipp.SippProcess:
    """A benchmark's SIPp peer in the background: ``calls`` calls at ``rate``/s (all at
    once at most), up to 1000 sockets; ``inf``: a -inf file of per-call fields."""
    args = ["-max_socket", "1000"]
    if inf is not None:
        args += ["-inf", str(inf)]
    if trace_msg:
        args.append("-trace_msg")
    return sipp.start(scenario, f"{local_ip}:{port}", *args, workdir=workdir, target=target,
                      media_port=media_port, calls=calls, rate=rate, limit=calls,
                      timeout_s=timeout, timeout_error=True)  # fmt: skip


def uas_xml(path: Path, pcap: Path | None) -> Path:
    return agent_scenario(path, pcap, answer_after_ms=50)


def invite_to_200_ms(workdir: Path) -> list[float]:
    """INVITE sent → 200 received per Call-ID from SIPp's -trace_msg file (µs resolution)."""
    import re
    from datetime import datetime

    block = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d[ \t]\d\d:\d\d:\d\d\.\d+)$", re.M)
    sent: dict[str, datetime] = {}
    got: dict[str, datetime] = {}
    for trace in workdir.glob("*_messages.log"):
        text = trace.read_text(errors="replace")
        marks = list(block.finditer(text))
        for index, mark in enumerate(marks):
            end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
            message = text[mark.end() : end]
            when = datetime.strptime(mark.group(1).replace("\t", " "), "%Y-%m-%d %H:%M:%S.%f")
            call_id = re.search(r"^Call-ID:\s*(\S+)", message, re.M | re.I)
            if not call_id:
                continue
            key = call_id.group(1)
            if "sent" in message[:200].lower() and re.search(r"^\s*INVITE ", message, re.M):
                sent.setdefault(key, when)
            elif (
                "received" in message[:200].lower()
                and re.search(r"^\s*SIP/2.0 200", message, re.M)
                and re.search(r"^CSeq:\s*\d+ INVITE", message, re.M | re.I)
            ):
                got.setdefault(key, when)
    return [(got[k] - sent[k]).total_seconds() * 1000 for k in sent if k in got]


# ---------------------------------------------------------------- the engine


class Engine:
    def __init__(
        self,
        workdir: Path,
        *,
        lines: int,
        spares: int,
        edge: bool,
        config_dir: Path | None = None,
        records: bool = False,
    ) -> None:
        """``records``: run the call-record consumer too (events -> SQL: the seeded SQLite
        database with the edge)."""
        self.workdir = workdir
        self.edge = edge
        self.redis = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        state = workdir / "state"
        values: dict[str, Any] = {
            "environment": "test",
            "state_dir": str(state),
            "redis_url": REDIS_URL,
            "redis_prefix": PREFIX,
            "sip": {
                "slot_base_port": SLOT_BASE,
                "rtp_base_port": RTP_BASE,
                "lines": lines,
                "warm_spares": spares,
                "edge_port": EDGE_PORT,
                "slot_allow_from": [] if edge else ["127.0.0.1", "127.0.0.3"],
                # SIPp callers play a carrier trunk: exempt from the edge's flood ban
                "trunk_addresses": ["127.0.0.3"],
            },
        }
        if config_dir is not None:
            values["config_dir"] = str(config_dir)
        self.settings_file = settings_file(workdir / "engine.toml", values)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
        env.update(
            CALLCENTER_SETTINGS_FILE=str(self.settings_file),
            CALLCENTER_ENGINE_EDGE="1" if edge else "0",
            CALLCENTER_ENGINE_RECORDS="1" if records else "0",
            PYTHONPATH=str(ROOT),
        )
        self.env = env
        if edge or records:
            self._seed(state)
        for key in self.redis.scan_iter(f"{PREFIX}:*"):
            self.redis.delete(key)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "callcenter.cli", "engine"],
            cwd=workdir,
            env=env,
            stdout=(workdir / "engine.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while not self.redis.exists(f"{PREFIX}:proc:engine:alive"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("engine did not start:\n" + self.log())
            time.sleep(0.2)
        deadline = time.monotonic() + 60 + spares  # a slot that cannot start never gets ready
        while int(self.redis.hget(f"{PREFIX}:engine:pool:node1", "ready") or 0) < spares:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the engine's {spares} slots were not ready:\n" + self.log())
            time.sleep(0.2)

    def _seed(self, state: Path) -> None:
        code = (
            "from callcenter.context import build_context; from callcenter.demo import seed_demo;"
            "from callcenter.migrate import upgrade; from config.settings import load_settings;"
            "s = load_settings(); upgrade(s.database_url); c = build_context(s); seed_demo(c)"
        )
        subprocess.run([sys.executable, "-c", code], env=self.env, cwd=self.workdir, check=True)

    def log(self) -> str:
        return (self.workdir / "engine.log").read_text(errors="replace")[-4000:]

    def pids(self) -> list[int]:
        return process_tree(self.process.pid)

    def parts(self) -> dict[str, list[int]]:
        """The engine's processes by job: supervisor, slots, edge (Kamailio), the rest (the
        call-record consumer), and this run's Redis server (not in the engine's totals)."""
        tree = self.pids()
        pool: Any = self.redis.hgetall(f"{PREFIX}:engine:pool:node1")
        slots = {int(v.split()[0]) for k, v in pool.items() if k.startswith("slot:")}
        groups: dict[str, list[int]] = {
            "supervisor": [self.process.pid],
            "slots": [p for p in tree if p in slots],
            "edge": [p for p in tree if comm(p).startswith("kamailio")],
        }
        taken = {p for pids in groups.values() for p in pids}
        groups["other"] = [p for p in tree if p not in taken]
        with contextlib.suppress(redis.RedisError, KeyError):
            groups["redis-server"] = [int(self.redis.info("server")["process_id"])]
        return groups

    def events(self) -> Iterator[tuple[str, CallEvent]]:
        entries: Any = self.redis.xrange(f"{PREFIX}:events")
        for entry_id, fields in entries:
            yield entry_id, CallEvent.from_fields(fields)

    def command(self, slot: str, type_: str, call_id: str, data: dict[str, Any]) -> None:
        self.redis.xadd(
            f"{PREFIX}:slot:{slot}:cmd",
            {
                "type": type_,
                "call_id": call_id,
                "id": f"b-{time.monotonic_ns()}",
                "data": json.dumps(data),
            },
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.redis.close()


def register_agent(workdir: Path, user: str, password: str, contact: str) -> None:
    # tried 5 times: the edge may still be busy probing a large slot list
    result = sipp.register(workdir, f"127.0.0.1:{EDGE_PORT}", "127.0.0.4:16890", user, contact,
                           password=password, attempts=5)  # fmt: skip
    if not result.ok():
        raise SystemExit(f"agent {user} could not register at the edge: {result.failure()}")


# ---------------------------------------------------------------- the bare slot baseline


def _bare_endpoint(pj: Any, port: int, max_calls: int | None = None) -> Any:
    """A started pjsua2 endpoint with the engine's media settings (8 kHz, no echo canceller,
    no VAD, G.711 only, no sound device), one thread, UDP on 127.0.0.1:``port``."""
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    if max_calls is not None:
        cfg.uaConfig.maxCalls = max_calls
    cfg.logConfig.level = 0
    cfg.logConfig.consoleLevel = 0
    cfg.medConfig.clockRate = 8000
    cfg.medConfig.sndClockRate = 8000
    cfg.medConfig.ecTailLen = 0
    cfg.medConfig.noVad = True
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = port
    tcfg.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    ep.audDevManager().setNullDev()
    for codec in ep.codecEnum2():
        ep.codecSetPriority(codec.codecId, 0)
    ep.codecSetPriority("PCMU/8000", 255)
    ep.codecSetPriority("PCMA/8000", 254)
    ep.libStart()
    return ep


def _bare_account(pj: Any, account: Any, port: int, rtp_port: int) -> Any:
    """Create ``account`` (a pj.Account subclass) the way a slot does: its URI on ``port``,
    RTP from ``rtp_port`` on loopback, any codec the endpoint allows, no session timers."""
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:bare@127.0.0.1:{port}"
    acfg.mediaConfig.transportConfig.port = rtp_port
    acfg.mediaConfig.transportConfig.portRange = 16
    acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    acfg.mediaConfig.lockCodecEnabled = False
    acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_INACTIVE
    account.create(acfg, True)
    return account


def _active_audio(pj: Any, leg: Any) -> Any:
    """The leg's active audio port, or None while it has none."""
    info = leg.getInfo()  # keep it: the media list points into it
    for m in info.media:
        if m.type == pj.PJMEDIA_TYPE_AUDIO and m.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
            return leg.getAudioMedia(m.index)
    return None


def _on_sigterm() -> dict[str, bool]:
    """A flag SIGTERM sets; the process's loop ends when it is set."""
    stop = {"flag": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(flag=True))
    return stop


def _hang_up_all(pj: Any, ep: Any, legs: list[Any]) -> None:
    """Hang up what is left and let pjsua finish it."""
    for leg in legs:
        with contextlib.suppress(Exception):
            leg.hangup(pj.CallOpParam(True))
    for _ in range(50):
        ep.libHandleEvents(10)


def _destroy(ep: Any) -> None:
    """Free every pjsua2 object left (on this thread: the recorders' WAVs close when freed),
    then the endpoint. The caller has dropped its account and calls first."""
    import gc

    gc.collect()
    ep.libDestroy()


def _queued_call_class(pj: Any, pending: list[tuple[str, Any]]) -> Any:
    """A pj.Call whose callbacks only queue what happened (``("gone", call)`` when it is
    disconnected, ``("media", call)``) for the loop to handle on its own turn: nothing is
    created or freed inside a pjsua callback."""

    class QueuedCall(pj.Call):
        def onCallState(self, prm: Any) -> None:
            if self.getInfo().state == pj.PJSIP_INV_STATE_DISCONNECTED:
                pending.append(("gone", self))

        def onCallMediaState(self, prm: Any) -> None:
            pending.append(("media", self))

    return QueuedCall


def _bare_slot(port: int, rtp_port: int, prompt: str, rec_dir: str, ready: Any) -> None:
    """One pjsua2 process that answers, loops a prompt to the caller and records the call."""
    import pjsua2 as pj

    stop = _on_sigterm()
    ep = _bare_endpoint(pj, port)
    calls: dict[int, Any] = {}
    dead: list[Any] = []
    pending: list[tuple[str, Any]] = []

    Call = _queued_call_class(pj, pending)

    class Account(pj.Account):
        def onIncomingCall(self, prm: Any) -> None:
            call = Call(self, prm.callId)
            call.player = call.recorder = None
            calls[id(call)] = call  # pjsua reuses call ids: key by object
            op = pj.CallOpParam()
            op.statusCode = 200
            call.answer(op)

    account: Any = _bare_account(pj, Account(), port, rtp_port)
    ready.set()
    while not stop["flag"]:
        ep.libHandleEvents(50)  # the same poll as the engine slots
        dead.clear()
        while pending:
            kind, call = pending.pop(0)
            if kind == "media" and call.player is None:
                _play_and_record(
                    pj, call, prompt, f"{rec_dir}/bare-{port}-{time.monotonic_ns()}.wav"
                )
            elif kind == "gone":
                dead += [call.player, call.recorder, call]
                call.player = call.recorder = None
                calls.pop(id(call), None)
    _hang_up_all(pj, ep, list(calls.values()))
    calls.clear()
    dead.clear()
    pending.clear()
    del account  # the account goes before the endpoint
    _destroy(ep)
    os._exit(0)


def _play_and_record(pj: Any, call: Any, prompt: str, path: str) -> None:
    """Loop ``prompt`` to the caller and record both directions into ``path``, once the call
    has audio. The player and recorder live on the call: no local may keep them alive past
    this function (the recorder's WAV closes when it is freed)."""
    am = _active_audio(pj, call)
    if am is None:
        return
    player = pj.AudioMediaPlayer()
    player.createPlayer(prompt, 0)
    recorder = pj.AudioMediaRecorder()
    recorder.createRecorder(path)
    player.startTransmit(am)
    am.startTransmit(recorder)
    player.startTransmit(recorder)
    call.player, call.recorder = player, recorder


class _Bridged:
    """One call of the bridge baseline: the caller's leg, the agent's leg it dials, their
    audio ports once active, and the recorder of both. pjsua2 objects it lets go are put on
    ``dead`` and freed by the loop, never inside a callback."""

    def __init__(self, pj: Any, caller: Any, rec_dir: str, port: int, dead: list[Any]) -> None:
        self.pj, self.caller, self.dead = pj, caller, dead
        self.agent: Any = None
        self.recorder: Any = None
        self.ports: dict[str, Any] = {}
        self.answered = 0.0
        self.done = False
        self.path = f"{rec_dir}/bridge-{port}-{time.monotonic_ns()}.wav"

    def dial(self, agent: Any, agent_uri: str) -> None:
        self.agent = agent
        agent.makeCall(agent_uri, self.pj.CallOpParam(True))

    def media(self, leg: Any) -> None:
        """A leg's audio came up: record it, and bridge once both legs have audio."""
        if self.done or leg.role in self.ports:
            return
        audio = _active_audio(self.pj, leg)
        if audio is None:
            return
        self.ports[leg.role] = audio
        if leg.role == "caller":
            self.answered = time.monotonic()
            self.recorder = self.pj.AudioMediaRecorder()
            self.recorder.createRecorder(self.path)
        if self.recorder is not None:
            audio.startTransmit(self.recorder)
        if len(self.ports) == 2:
            caller_port, agent_port = self.ports["caller"], self.ports["agent"]
            caller_port.startTransmit(agent_port)
            agent_port.startTransmit(caller_port)
            agent_port.startTransmit(self.recorder)

    def finish(self) -> None:
        """Hang up both legs and close the recording (with its ``.call`` seconds file)."""
        if self.done:
            return
        self.done = True
        for leg in (self.caller, self.agent):
            if leg is not None and leg.isActive():
                with contextlib.suppress(Exception):
                    leg.hangup(self.pj.CallOpParam(True))
        if self.recorder is not None:
            Path(self.path + ".call").write_text(f"{time.monotonic() - self.answered:.3f}")
        self.dead.extend([self.recorder, self.ports])
        self.recorder, self.ports = None, {}

    def gone(self) -> bool:
        """A leg disconnected: end the call; True once neither leg is active any more."""
        self.finish()
        if any(leg is not None and leg.isActive() for leg in (self.caller, self.agent)):
            return False
        self.dead.extend([self.caller, self.agent])
        return True


def _bridge_step(
    kind: str, leg: Any, new_leg: Callable[[], Any], agent_uri: str, calls: dict[int, _Bridged]
) -> None:
    """One thing that happened to a leg of the bridge baseline, handled on the loop's turn."""
    call: _Bridged = leg.bridged
    if kind == "dial" and not call.done:
        agent = new_leg()
        agent.bridged, agent.role = call, "agent"
        call.dial(agent, agent_uri)
    elif kind == "media":
        call.media(leg)
    elif kind == "gone" and call.gone():
        calls.pop(id(call.caller), None)


def _bridge_slot(
    port: int, rtp_port: int, agent_uri: str, rec_dir: str, ready: Any, poll_ms: int = 50
) -> None:
    """The fair baseline of one engine line: a bare pjsua2 process (same endpoint settings and
    50 ms poll as an engine slot) that answers the caller, dials the agent, bridges the two
    and records both. No menu, queue, Redis, events or supervisor. Per call it leaves
    ``<wav>`` and ``<wav>.call`` (the caller leg's answered-to-disconnected seconds).
    ``poll_ms``: its libHandleEvents timeout (50: the engine slots' former fixed poll; it
    needs no timers of its own, so 1000 is its floor; a signal wakes it either way)."""
    import pjsua2 as pj

    stop = _on_sigterm()
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # pjlib logs its start to stdout before the log level applies
    ep = _bare_endpoint(pj, port, max_calls=4)
    pending: list[tuple[str, Any]] = []
    calls: dict[int, _Bridged] = {}  # id(caller leg) -> the call
    dead: list[Any] = []

    Leg = _queued_call_class(pj, pending)  # with .bridged (its _Bridged) and .role

    class Account(pj.Account):
        def onIncomingCall(self, prm: Any) -> None:
            caller = Leg(self, prm.callId)
            caller.bridged, caller.role = _Bridged(pj, caller, rec_dir, port, dead), "caller"
            calls[id(caller)] = caller.bridged
            op = pj.CallOpParam()
            op.statusCode = 200
            caller.answer(op)
            pending.append(("dial", caller))

    account: Any = _bare_account(pj, Account(), port, rtp_port)
    waker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    waker.connect(("127.0.0.1", port))
    waker.setblocking(False)
    signal.set_wakeup_fd(waker.fileno(), warn_on_full_buffer=False)  # SIGTERM ends a poll
    ready.set()
    while not stop["flag"]:
        ep.libHandleEvents(poll_ms)
        dead.clear()
        while pending:
            kind, leg = pending.pop(0)
            _bridge_step(kind, leg, functools.partial(Leg, account), agent_uri, calls)
    for call in list(calls.values()):
        call.finish()  # hangs up both legs
    _hang_up_all(pj, ep, [])
    calls.clear()
    dead.clear()
    pending.clear()
    del account  # the account goes before the endpoint
    _destroy(ep)
    os._exit(0)


class BareSlots:
    """``count`` bare pjsua2 processes forked from this process (which imported pjsua2)."""

    def __init__(
        self,
        count: int,
        prompt: Path,
        rec_dir: Path,
        *,
        agent_uri: str | None = None,
        poll_ms: int = 50,
    ) -> None:
        """Without ``agent_uri`` each process answers, loops ``prompt`` and records (one leg);
        with it, it answers, dials the agent, bridges and records (an engine line's media)."""
        import pjsua2  # noqa: F401  -- shared pages, as the engine's supervisor does

        rec_dir.mkdir(parents=True, exist_ok=True)
        fork = multiprocessing.get_context("fork")
        self.processes = []
        for i in range(count):
            ready = fork.Event()
            target: Callable[..., None] = _bare_slot if agent_uri is None else _bridge_slot
            media = str(prompt) if agent_uri is None else agent_uri
            process = fork.Process(
                target=target,
                args=(BARE_BASE + i, BARE_RTP + 16 * i, media, str(rec_dir), ready)
                + ((poll_ms,) if agent_uri else ()),
            )
            process.start()
            ready.wait(10)
            self.processes.append(process)
        self.addresses = [("127.0.0.1", BARE_BASE + i) for i in range(count)]

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid]

    def inf_file(self, path: Path, calls: int) -> Path:
        rows = [
            f"{self.addresses[i % len(self.addresses)][0]};"
            f"{self.addresses[i % len(self.addresses)][1]};"
            for i in range(calls)
        ]
        path.write_text("SEQUENTIAL\n" + "\n".join(rows) + "\n")
        return path

    def stop(self) -> None:
        for process in self.processes:
            if process.is_alive():
                os.kill(process.pid or 0, signal.SIGTERM)
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()


def workdir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-"))
