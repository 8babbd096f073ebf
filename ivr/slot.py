"""One call slot: a pjsua2 endpoint carrying one conversation (caller + up to 3 more legs:
the agent, a supervisor, and a consultation target).

Threads in a slot process (see ../shared/PJSUA2.md for why it must be this way):

* the **engine thread** (the process's main thread) creates, uses and destroys every pjsua2
  object. It loops on ``libHandleEvents(10)``; pjsua2 callbacks run inside that call
  (``threadCnt=0``, ``mainThreadOnly``) and only append plain facts to a deque, which the
  loop then handles, together with commands from the command queue and the timers;
* a **command reader** thread blocks on the slot's Redis command stream, puts commands in a
  queue and wakes the engine thread with a CRLF datagram to its own SIP port (pjsip ignores
  CRLF keep-alives); it also renders ad-hoc announcements and computes queue positions;
* a **publisher** thread sends events to the Redis stream and status to the supervisor, so
  the engine thread never waits on Redis or a pipe.

Nothing pjsua2 leaves the engine thread.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import queue
import re
import signal
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pjsua2 as pj
import redis

from callcenter.redis_keys import Keys
from callcenter.streams import CallEvent, Command, CommandType, EventType
from config.loader import CenterConfig
from config.schemas import CollectNode, HangupNode, MenuFile, Prompt
from config.settings import Settings
from ivr import wav
from ivr.menu import (
    Action,
    Emit,
    Enqueue,
    Hangup,
    MenuRunner,
    PlayPrompts,
    RequestCallback,
    StopPrompt,
    TransferTo,
)
from ivr.prompts import MAX_ANNOUNCED_MINUTES, MAX_ANNOUNCED_POSITION, PromptFile, text_prompt

log = logging.getLogger("ivr.slot")

# libHandleEvents timeout. Callbacks and commands wake the poll at once (CRLF to our own
# port) and pjsip's own timers shorten it, so this only bounds our timers (menu timeouts,
# prompt end): 50 ms instead of 10 halves an idle slot's CPU (measured: 10 idle slots
# 15% -> 7% of a core).
POLL_MS = 50
CLOSE_PUMP_SECONDS = 0.3  # pjmedia writes the WAV header shortly after the recorder is freed
DEFAULT_SECONDS_PER_POSITION = 60  # expected-wait estimate when routing publishes none
CUSTOMER_RING_SECONDS = 45  # an outbound callback rings the customer this long
# Outcomes a `play` command may give a waiting caller: routing is done with them (a call-back
# confirmed, the no-agents message), so leaving is not abandoning.
LEAVING_OUTCOMES = ("callback", "closed")
ORIGINATE_AGENT_RING_SECONDS = 30  # an originate without ring_timeout rings the agent this long
SURVEY_DIGIT_SECONDS = 8.0  # a survey waits this long for the key after its prompt
SURVEY_RETRIES = 2  # a missing or invalid key replays the survey prompt this many times
# SIP answers to the customer's INVITE -> call_ended outcome (ticketing/consumers.py)
BUSY_CODES = (486, 600)
NO_ANSWER_CODES = (408, 480, 487)
DECLINE_CODES = (486, 600, 603)  # a consultation target's phone said busy / declined
# The wheel's PJSUA_MAX_CALLS: a 5th makeCall raises PJ_ETOOMANY. Legs still hanging up
# (CANCEL sent, no final answer yet) count until pjsua reports them DISCONNECTED.
MAX_LEGS = 4
CONSULT_NUMBER_RING_SECONDS = 30  # a configured number rings this long for a consultation
LEG_ROLES = ("caller", "agent", "super", "consult")
_USER_RE = re.compile(r"sips?:([^@;>]+)@")


@dataclass(frozen=True)
class SlotSpec:
    name: str
    index: int
    sip_host: str
    sip_port: int
    rtp_port: int
    rtp_range: int
    allow_from: tuple[str, ...]  # "ip" or "ip:port" allowed to send INVITEs to this slot
    # Behind the SIP edge, outside numbers are dialled through it (docs/edge.md): slots sit on
    # loopback and cannot reach a carrier themselves; the edge applies the trunk's prefix.
    # Without the edge (engine tests, a lab) the slot dials the trunk's address directly.
    via_edge: bool = False

    @property
    def uri(self) -> str:
        return f"sip:{self.sip_host}:{self.sip_port}"


def waiting_key(keys: Keys, queue_code: str) -> str:
    """The engine's own count of waiting calls per queue (ZSET call_id -> queued epoch)."""
    return f"{keys.prefix}:engine:waiting:{queue_code}"


def routing_waiting_key(keys: Keys, queue_code: str) -> str:
    """Routing's waiting calls, when routing publishes them (ZSET call_id -> score)."""
    return keys.routing(f"queue:{queue_code}:waiting")


def user_part(uri: str) -> str:
    match = _USER_RE.search(uri)
    return match.group(1) if match else ""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _int(value: object) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


# ---------------------------------------------------------------- pjsua2 subclasses


class Leg(pj.Call):
    """One SIP call leg; callbacks only copy facts for the engine loop."""

    def __init__(
        self, slot: SlotEngine, role: str, account: pj.Account, call_id: int = pj.PJSUA_INVALID_ID
    ) -> None:
        super().__init__(account, call_id)
        self.slot = slot
        self.role = role
        self.media_index: int | None = None
        self.confirmed = False
        self.ringing = False
        self.gone = False
        self.last_code = 0
        self.intentional_hangup = ""
        self.media_dead = False
        self.last_rx_packets = -1
        self.last_rx_at = time.monotonic()

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        try:
            info = self.getInfo()
            if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
                # its conference port is gone from now on: touching it aborts the process
                self.media_dead = True
            self.slot.facts.append(
                ("state", self, info.state, info.lastStatusCode, info.lastReason)
            )
            self.slot.wake_soon()
        except Exception:
            log.exception("onCallState failed")

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        try:
            info = self.getInfo()
            for media in info.media:
                if (
                    media.type == pj.PJMEDIA_TYPE_AUDIO
                    and media.status == pj.PJSUA_CALL_MEDIA_ACTIVE
                ):
                    self.slot.facts.append(("media", self, media.index, 0, ""))
                    self.slot.wake_soon()
                    break
        except Exception:
            log.exception("onCallMediaState failed")

    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        # Defence in depth behind the edge (which answers 403 to REFER from outside): a REFER
        # accepted here would make this slot dial the Refer-To number at the center's cost.
        prm.statusCode = pj.PJSIP_SC_FORBIDDEN
        log.warning("REFER to %s refused", prm.dstUri)

    def onCallReplaceRequest(self, prm: pj.OnCallReplaceRequestParam) -> None:
        # An INVITE with Replaces would take this call over from a third party: refused.
        prm.statusCode = pj.PJSIP_SC_FORBIDDEN
        prm.reason = "Replaces not allowed"
        log.warning("INVITE with Replaces for a call of this slot refused")

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        # RFC 2833 arrives here at the start of each digit, SIP INFO (method 1) likewise.
        try:
            self.slot.facts.append(
                ("dtmf", self, str(prm.digit), int(prm.method), str(time.time()))
            )
            # end the current poll now: the caller waits for the next prompt (menu latency)
            self.slot.wake_soon()
        except Exception:
            log.exception("onDtmfDigit failed")


class SlotAccount(pj.Account):
    def __init__(self, slot: SlotEngine) -> None:
        super().__init__()
        self.slot = slot

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        # Must decide here: a Call not kept referenced is declined by pjsua (603).
        try:
            self.slot.incoming(self, prm.callId, str(prm.rdata.srcAddress))
        except Exception:
            log.exception("onIncomingCall failed")


# ---------------------------------------------------------------- the conversation


@dataclass
class Consult:
    """A consultation in progress: the caller on hold, a new leg (role "consult") to a
    colleague or a configured number; complete hands the caller over, cancel comes back."""

    kind: str  # agent / number
    to: str  # what the agent asked for: the agent's URI, or the transfer target's name
    uri: str
    agent_id: int | None
    deadline: float | None  # ring timeout (monotonic); None once answered
    started: float = field(default_factory=time.time)
    answered: bool = False
    held_caller: bool = False  # the consultation put the caller on hold (undone at its end)

    def facts(self) -> dict[str, Any]:
        return {"kind": self.kind, "to": self.to, "target_uri": self.uri, "agent_id": self.agent_id}


@dataclass
class Conversation:
    call_id: str
    direction: str
    caller: str
    did: str
    started: float = field(default_factory=time.time)
    state: str = "menu"  # menu, queued, offering, bridged, ending, originating
    runner: MenuRunner | None = None
    queue: str = ""
    priority: int = 0
    skills: tuple[str, ...] = ()
    queued_at: float = 0.0
    answered: bool = False
    held: bool = False
    outcome: str = ""
    end_reason: str = ""
    agent_uri: str = ""
    agent_id: int | None = None
    offer_deadline: float | None = None
    super_mode: str = ""
    super_uri: str = ""
    recording_id: str = ""
    recording_path: str = ""
    recording_paused: bool = False
    prompt_until: float = 0.0
    close_at: float | None = None
    max_until: float = 0.0
    originate: dict[str, Any] = field(default_factory=dict)
    survey: bool = False  # an automatic survey: no agent, the menu runner asks for one key
    prompts: dict[str, PromptFile] = field(default_factory=dict)  # this call's own prompts
    consult: Consult | None = None
    hangup_after_prompt: bool = False  # a closing message (play with hangup_after) is playing


class SlotEngine:
    """Everything on the engine thread of one slot process."""

    def __init__(
        self,
        spec: SlotSpec,
        settings: Settings,
        config: CenterConfig,
        prompts: dict[str, PromptFile],
        status: Connection | None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.config = config
        self.prompts = prompts
        self.durations = {key: p.duration for key, p in prompts.items()}
        self.keys = Keys(settings.redis_prefix)
        self.status = status
        self.facts: deque[tuple[Any, ...]] = deque()
        self.commands: queue.Queue[Command] = queue.Queue()
        self.outbox: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self.stop = threading.Event()
        self.legs: dict[str, Leg] = {}  # role -> the leg in that role now
        # legs hung up on purpose and not yet DISCONNECTED: kept referenced (pjsua would
        # otherwise hang them up behind our back) and counted against MAX_LEGS
        self.leaving: list[Leg] = []
        self.graveyard: list[Any] = []
        self.conv: Conversation | None = None
        self.media: dict[str, Any] = {}  # name -> AudioMedia (or player/recorder)
        self.edges: set[tuple[str, str]] = set()
        self.media_legs: dict[str, Leg] = {}  # which leg a call-media entry belongs to
        self.prompt_player: Any = None
        self.music_player: Any = None
        self.recorder: Any = None
        self.queued_view: dict[str, Any] = {}  # read by the command reader for announcements
        self.dids = {d.number: (d.entry or config.menu.entry) for d in config.telephony.dids}
        self.ep: Any = None
        self.account: Any = None
        self.next_media_check = 0.0
        self.wake_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    # ------------------------------------------------------------ lifecycle
    def run(self) -> None:
        self._start_pjsua()
        threads = [
            threading.Thread(target=self._publisher, name="publisher", daemon=True),
            threading.Thread(target=self._command_reader, name="commands", daemon=True),
        ]
        for thread in threads:
            thread.start()
        self._send_status({"status": "ready"})
        try:
            while not self.stop.is_set():
                self.ep.libHandleEvents(POLL_MS)
                self._step()
        finally:
            self._shutdown()
            self.outbox.put(None)
            threads[0].join(timeout=5)

    def _start_pjsua(self) -> None:
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 4
        cfg.uaConfig.userAgent = "callcenter-slot"
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.clockRate = 8000
        cfg.medConfig.sndClockRate = 8000
        cfg.medConfig.channelCount = 1
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.noVad = True
        cfg.medConfig.threadCnt = 1
        ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = self.spec.sip_port
        tcfg.boundAddress = self.spec.sip_host
        ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        ep.audDevManager().setNullDev()  # no sound card: without it no RTP flows at all
        for codec in ep.codecEnum2():
            ep.codecSetPriority(codec.codecId, 0)
        ep.codecSetPriority("PCMU/8000", 255)
        ep.codecSetPriority("PCMA/8000", 254)
        ep.libStart()
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{self.spec.name}@{self.spec.sip_host}:{self.spec.sip_port}"
        acfg.mediaConfig.transportConfig.port = self.spec.rtp_port
        acfg.mediaConfig.transportConfig.portRange = self.spec.rtp_range
        acfg.mediaConfig.transportConfig.boundAddress = self.spec.sip_host
        # One codec in the answer: no re-INVITE to "lock" it (peers need not handle one).
        acfg.mediaConfig.lockCodecEnabled = False
        # Session timers off: dead calls are caught by the RTP silence timer instead.
        acfg.callConfig.timerUse = pj.PJSUA_SIP_TIMER_INACTIVE
        acfg.natConfig.iceEnabled = False
        acfg.presConfig.publishEnabled = False
        account = SlotAccount(self)
        account.create(acfg, True)
        self.ep, self.account = ep, account

    def _shutdown(self) -> None:
        """Tear down on this thread: end the call properly, pump, drop everything, destroy."""
        if self.conv is not None and self.conv.close_at is None:
            self._end_call("shutdown", "failed")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and (self.conv is not None or self.legs or self.leaving):
            self.ep.libHandleEvents(POLL_MS)
            self._step()
        stragglers = [*self.legs.values(), *self.leaving]
        for leg in stragglers:
            with contextlib.suppress(pj.Error):
                leg.hangup(pj.CallOpParam(True))
        self.legs.clear()
        self.leaving.clear()
        self.media.clear()
        self.media_legs.clear()
        self.prompt_player = self.music_player = self.recorder = None
        self.graveyard.clear()
        self.facts.clear()
        # A leg hung up just now gets a full second for its BYE and the answer; otherwise
        # pump only until nothing is left to handle (an idle slot stops at once).
        for _ in range(20):
            if self.ep.libHandleEvents(POLL_MS) == 0 and not stragglers:
                break
        self.account = None
        gc.collect()
        # Everything is hung up and pumped above: NO_RX_MSG skips pjsua's own fixed wait
        # for answers (up to 1 s, for unregistrations; slots never register).
        self.ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
        self.ep = None

    # ------------------------------------------------------------ threads off the engine
    def _send_status(self, status: dict[str, Any]) -> None:
        self.outbox.put(("status", {"slot": self.spec.name, **status}))

    def _publisher(self) -> None:
        client: Any = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        while True:
            item = self.outbox.get()
            if item is None:
                break
            kind, payload = item
            try:
                if kind == "status":
                    if self.status is not None:
                        self.status.send(payload)
                    continue
                event: CallEvent = payload
                pipe = client.pipeline(transaction=False)
                pipe.xadd(self.keys.events, event.to_fields(), maxlen=500_000, approximate=True)
                self._side_effects(pipe, event)
                pipe.execute()
            except Exception:
                # Redis down: keep the event and retry, so nothing is lost silently.
                log.exception("publishing %s failed; retrying", kind)
                time.sleep(0.5)
                self.outbox.put(item)
        client.close()

    def _side_effects(self, pipe: Any, event: CallEvent) -> None:
        ttl = self.settings.sip.max_call_seconds + 3600
        if event.type == EventType.call_arrived:
            pipe.set(self.keys.call_slot(event.call_id), self.spec.name, ex=ttl)
        elif event.type == EventType.call_queued:
            old = event.data.get("previous_queue")
            if old:
                pipe.zrem(waiting_key(self.keys, old), event.call_id)
            pipe.zadd(
                waiting_key(self.keys, event.data["queue"]),
                {event.call_id: event.data.get("queued_epoch", time.time())},
            )
        elif event.type in (EventType.bridged, EventType.call_ended, EventType.agent_answered):
            queue_code = event.data.get("queue") or ""
            if queue_code:
                pipe.zrem(waiting_key(self.keys, queue_code), event.call_id)
            if event.type == EventType.call_ended:
                pipe.expire(self.keys.call_slot(event.call_id), 3600)

    def wake_soon(self) -> None:
        """From a callback: make the running libHandleEvents return without its timeout."""
        with contextlib.suppress(OSError):
            self.wake_socket.sendto(b"\r\n\r\n", (self.spec.sip_host, self.spec.sip_port))

    def _wake(self) -> None:
        """A CRLF keep-alive to our own SIP port ends the current libHandleEvents poll."""
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"\r\n\r\n", (self.spec.sip_host, self.spec.sip_port))
        except OSError:
            pass

    def _command_reader(self) -> None:
        client: Any = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        stream = self.keys.slot_commands(self.spec.name)
        last_id = "0-0"  # "$" would miss commands added between two reads
        try:
            newest = client.xrevrange(stream, count=1)
            if newest:
                last_id = newest[0][0]  # commands sent to a previous life of this slot are stale
        except redis.RedisError:
            log.exception("reading the command stream failed")
        while not self.stop.is_set():
            try:
                answer: Any = client.xread({stream: last_id}, block=500, count=20)
                for _stream, entries in answer or []:
                    for entry_id, fields in entries:
                        last_id = entry_id
                        try:
                            command = Command.from_fields(fields)
                        except (KeyError, ValueError) as exc:
                            log.warning("malformed command %s: %s", entry_id, exc)
                            continue
                        if command.type == CommandType.play and "text" in command.data:
                            command = self._render_announcement(command)
                        elif command.type == CommandType.originate and command.data.get("survey"):
                            command = self._render_survey(command)
                        self.commands.put(command)
                        self._wake()
                self._maybe_announce(client)
            except redis.RedisError:
                log.exception("command stream read failed")
                time.sleep(1)
        client.close()

    def _render_announcement(self, command: Command) -> Command:
        try:
            prompt = text_prompt(
                str(command.data["text"]), self.settings.state_dir, self.settings.language
            )
        except Exception as exc:
            return Command(
                command.type, command.call_id, command.id, {**command.data, "error": str(exc)}
            )
        return Command(
            command.type,
            command.call_id,
            command.id,
            {**command.data, "file": prompt.path, "duration": prompt.duration},
        )

    def _render_survey(self, command: Command) -> Command:
        """Render the survey question (cached by text) off the engine thread."""
        survey = command.data.get("survey")
        english = self.settings.language == "en"
        text = ""
        if isinstance(survey, dict):
            text = str(survey.get("prompt_en" if english else "prompt_zh") or "")
            text = text or str(survey.get("prompt_zh") or survey.get("prompt_en") or "")
        if not text:
            error = "survey.prompt_zh missing: the survey has no question to play"
            return Command(
                command.type, command.call_id, command.id, {**command.data, "error": error}
            )
        try:
            prompt = text_prompt(text, self.settings.state_dir, self.settings.language)
        except Exception as exc:
            error = f"survey prompt not rendered: {exc}"
            return Command(
                command.type, command.call_id, command.id, {**command.data, "error": error}
            )
        return Command(
            command.type,
            command.call_id,
            command.id,
            {**command.data, "survey_file": prompt.path, "survey_duration": prompt.duration},
        )

    def _maybe_announce(self, client: Any) -> None:
        view = self.queued_view
        if not view or time.monotonic() < view["next_at"]:
            return
        every = view["every"]
        view["next_at"] = time.monotonic() + every
        queue_code, call_id = view["queue"], view["call_id"]
        position = None
        seconds_each = DEFAULT_SECONDS_PER_POSITION
        rank = client.zrank(routing_waiting_key(self.keys, queue_code), call_id)
        source = "routing"
        if rank is None:
            rank = client.zrank(waiting_key(self.keys, queue_code), call_id)
            source = "engine"
        if rank is not None:
            position = int(rank) + 1
        expected = client.hget(self.keys.routing(f"queue:{queue_code}:stats"), "seconds_each")
        if expected:
            with contextlib.suppress(ValueError):
                seconds_each = int(float(expected))
        if position is None:
            return
        minutes = max(1, round(position * seconds_each / 60))
        keys = [
            f"announce.position.{position}"
            if position <= MAX_ANNOUNCED_POSITION
            else "announce.position.more",
            f"announce.wait.{minutes}"
            if minutes <= MAX_ANNOUNCED_MINUTES
            else "announce.wait.more",
        ]
        self.commands.put(
            Command(
                "announce",
                call_id,
                uuid.uuid4().hex,
                {
                    "keys": keys,
                    "position": position,
                    "source": source,
                    "expected_wait": minutes * 60,
                },
            )
        )
        self._wake()

    # ------------------------------------------------------------ engine loop step
    def _step(self) -> None:
        self.graveyard.clear()  # deferred drops: never inside a pjsua2 callback
        while self.facts:
            fact = self.facts.popleft()
            try:
                self._handle_fact(*fact)
            except Exception:
                log.exception("handling %s failed", fact[0])
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                break
            try:
                self._handle_command(command)
            except Exception as exc:
                log.exception("command %s failed", command.type)
                self._command_failed(command, f"{type(exc).__name__}: {exc}")
        try:
            self._timers(time.monotonic())
        except Exception:
            log.exception("timers failed")

    def emit(
        self, type_: str, node: str = "", data: dict[str, Any] | None = None, at: str | None = None
    ) -> None:
        if self.conv is None:
            return
        event = CallEvent(
            type=str(type_),
            call_id=self.conv.call_id,
            slot=self.spec.name,
            node=node,
            data=data or {},
            **({"at": at} if at else {}),
        )
        self.outbox.put(("event", event))

    def _command_failed(self, command: Command, reason: str) -> None:
        # kind / mode / agent_id let routing undo what it prepared (a reserved transfer target)
        context: dict[str, Any] = {
            k: command.data[k] for k in ("kind", "mode", "agent_id") if k in command.data
        }
        event = CallEvent(
            type=EventType.command_failed,
            call_id=command.call_id,
            slot=self.spec.name,
            data={"command_id": command.id, "command": command.type, "reason": reason, **context},
        )
        self.outbox.put(("event", event))

    # ------------------------------------------------------------ incoming calls
    def _source_allowed(self, source: str) -> bool:
        host = source.rsplit(":", 1)[0]
        return any(entry in (source, host) for entry in self.spec.allow_from)

    def incoming(self, account: pj.Account, call_id: int, source: str) -> None:
        leg = Leg(self, "caller", account, call_id)
        info = leg.getInfo()
        did = user_part(info.localUri)
        caller = user_part(info.remoteUri)
        refusal = 0
        if not self._source_allowed(source):
            refusal, why = 403, f"source {source} is not the edge"
        elif self.conv is not None or self.legs or self.leaving:
            refusal, why = 486, "slot busy"
        elif did not in self.dids:
            refusal, why = 404, f"DID {did!r} not configured"
        if refusal:
            log.warning("refusing INVITE from %s to %s: %s", source, did, why)
            op = pj.CallOpParam()
            op.statusCode = refusal
            leg.hangup(op)
            self.graveyard.append(leg)
            return
        self.legs["caller"] = leg
        conv = Conversation(call_id=uuid.uuid4().hex, direction="in", caller=caller, did=did)
        conv.max_until = time.monotonic() + self.settings.sip.max_call_seconds
        conv.runner = MenuRunner(self.config.menu, self.durations, self.dids[did])
        self.conv = conv
        self._send_status({"status": "busy", "call_id": conv.call_id, "started": conv.started})
        self.emit(
            EventType.call_arrived,
            data={
                "caller": caller,
                "did": did,
                "direction": "in",
                "sip_call_id": info.callIdString,
                "source": source,
            },
        )
        op = pj.CallOpParam()
        op.statusCode = 200
        leg.answer(op)

    # ------------------------------------------------------------ facts from callbacks
    def _handle_fact(self, kind: str, leg: Leg, a: Any, b: Any, c: Any) -> None:
        if kind == "state":
            self._leg_state(leg, int(a), int(b), str(c))
        elif kind == "media":
            self._leg_media(leg, int(a))
        elif kind == "dtmf":
            self._leg_dtmf(leg, str(a), int(b), float(c))

    def _leg_media(self, leg: Leg, index: int) -> None:
        if leg.gone or self.legs.get(leg.role) is not leg:
            return
        if leg.media_dead:
            return
        first = leg.media_index is None
        leg.media_index = index
        if not first:
            self._forget_media(leg.role)  # re-negotiated: reconnect from scratch
        self.media[leg.role] = leg.getAudioMedia(index)
        self.media_legs[leg.role] = leg
        conv = self.conv
        if conv is None:
            return
        if leg.role == "caller" and first and conv.direction == "in":
            self._start_recording()
            assert conv.runner is not None
            self._run_actions(conv.runner.start(time.monotonic()))
        elif leg.role == "caller" and first and conv.direction == "out" and conv.survey:
            conv.answered = True
            conv.outcome = "answered"  # whatever the customer keys, they were reached
            conv.state = "menu"
            self._start_recording()
            assert conv.runner is not None
            self._run_actions(conv.runner.start(time.monotonic()))
        elif leg.role == "caller" and first and conv.direction == "out":
            conv.answered = True
            self.emit(EventType.bridged, data={"agent_uri": conv.agent_uri, "number": conv.caller})
            conv.state = "bridged"
        elif leg.role == "agent" and first and conv.direction == "out":
            self._start_recording()
        self._rewire()

    def _leg_state(self, leg: Leg, state: int, code: int, reason: str) -> None:
        leg.last_code = code or leg.last_code
        conv = self.conv
        # A leg we hung up on purpose is no longer in ``legs``: its late facts change nothing.
        current = self.legs.get(leg.role) is leg
        if state == pj.PJSIP_INV_STATE_EARLY and not leg.ringing:
            leg.ringing = True
            if conv is not None and current and leg.role == "agent":
                self.emit(EventType.agent_ringing, data={"agent_uri": conv.agent_uri})
        elif state == pj.PJSIP_INV_STATE_CONFIRMED and not leg.confirmed:
            leg.confirmed = True
            if not current:
                # answered just as we cancelled it (200 OK crossed our CANCEL): end it again
                with contextlib.suppress(pj.Error):
                    leg.hangup(pj.CallOpParam(True))
            elif conv is not None:
                self._leg_confirmed(conv, leg)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED and not leg.gone:
            leg.gone = True
            if current:
                del self.legs[leg.role]
            if leg in self.leaving:
                self.leaving.remove(leg)
            if self.media_legs.get(leg.role) is leg:  # not a newer leg in the same role
                self._forget_media(leg.role)
            self.graveyard.append(leg)
            if conv is not None and current:
                self._leg_gone(conv, leg, code, reason)

    def _leg_confirmed(self, conv: Conversation, leg: Leg) -> None:
        if leg.role == "agent":
            conv.offer_deadline = None
            conv.answered = True
            if conv.direction == "out":
                self.emit(
                    EventType.agent_answered,
                    data={"agent_uri": conv.agent_uri, "agent_id": conv.agent_id},
                )
                self._dial_customer(conv)
                return
            if conv.state == "transferring":
                self.emit(EventType.transferred, data={"kind": "number", "to": conv.agent_uri})
            else:
                self.emit(
                    EventType.agent_answered,
                    data={
                        "agent_uri": conv.agent_uri,
                        "agent_id": conv.agent_id,
                        "queue": conv.queue,
                    },
                )
            conv.state = "bridged"
            self.queued_view = {}
            self._rewire()
            self.emit(
                EventType.bridged,
                data={"agent_uri": conv.agent_uri, "agent_id": conv.agent_id, "queue": conv.queue},
            )
        elif leg.role == "super":
            self.emit(
                EventType.supervisor_joined, data={"mode": conv.super_mode, "uri": conv.super_uri}
            )
            self._rewire()
        elif leg.role == "consult":
            self._consult_answered(conv, leg)

    def _leg_gone(self, conv: Conversation, leg: Leg, code: int, reason: str) -> None:
        if conv.close_at is not None:
            return
        if leg.role == "caller":
            if conv.direction == "out" and not leg.confirmed:
                self.emit(
                    EventType.command_failed,
                    data={
                        "command": "originate",
                        "reason": f"customer not reached: {code} {reason}",
                    },
                )
                if code in BUSY_CODES:
                    outcome = "busy"
                elif code in NO_ANSWER_CODES:
                    outcome = "no_answer"
                else:
                    outcome = "failed"
                self._end_call("customer_unreachable", outcome)
                return
            self.emit(EventType.caller_hung_up, data={"state": conv.state})
            # (a consultation in progress ends with the call: _end_call reports it)
            if conv.state == "queued" and conv.outcome in LEAVING_OUTCOMES:
                self._end_call("caller_hung_up", conv.outcome)
            elif conv.state in ("queued", "offering"):
                waited = round(time.time() - conv.queued_at, 3)
                self.emit(EventType.abandoned, data={"queue": conv.queue, "waited": waited})
                short = waited < self.config.queues.short_abandon_seconds
                self._end_call("caller_hung_up", "short_abandoned" if short else "abandoned")
            elif conv.answered:
                self._end_call("caller_hung_up", conv.outcome or "answered")
            else:
                self._end_call("caller_hung_up", conv.outcome or "menu_hangup")
        elif leg.role == "agent":
            if leg.intentional_hangup:
                return  # whoever hung it up reported it
            if conv.consult is not None:
                if conv.consult.answered:
                    # The agent put the phone down while talking to the target: as on any
                    # PBX, that hands the caller over (an attended transfer by hang-up).
                    self._consult_complete(conv, by="agent_hung_up")
                    return
                self._consult_end(conv, "agent_hung_up", reconnect=False)
            if not leg.confirmed:
                if conv.direction == "out":
                    self._agent_missed(conv, f"{code} {reason}".strip())
                    self._end_call("agent_unreachable", "failed")
                    return
                self._agent_missed(conv, "rejected" if code >= 400 else f"{code} {reason}")
                return
            self.emit(EventType.agent_hung_up, data={"agent_uri": conv.agent_uri})
            self._end_call("agent_hung_up", conv.outcome or "answered")
        elif leg.role == "super":
            conv.super_mode = ""
            self._rewire()
        elif leg.role == "consult":
            consult = conv.consult
            if consult is None or leg.intentional_hangup:
                return
            if consult.answered:
                why = "target_hung_up"
            elif code in DECLINE_CODES:
                why = "declined"
            elif code in NO_ANSWER_CODES:
                why = "no_answer"
            else:
                why = "failed"
            self._consult_end(conv, why, code=code)

    def _agent_missed(self, conv: Conversation, reason: str) -> None:
        self.emit(
            EventType.agent_missed,
            data={
                "agent_uri": conv.agent_uri,
                "agent_id": conv.agent_id,
                "reason": reason,
                "queue": conv.queue,
            },
        )
        conv.offer_deadline = None
        if conv.direction == "in" and conv.state in ("offering", "transferring"):
            conv.state = "queued"
            self._queued_view(conv)
        self._rewire()

    def _leg_dtmf(self, leg: Leg, digit: str, method: int, at: float) -> None:
        conv = self.conv
        if conv is None or leg.role != "caller" or conv.close_at is not None:
            return
        if conv.state == "menu" and conv.runner is not None:
            actions = conv.runner.digit(digit, time.monotonic())
            # the digit's own event carries the moment the digit arrived (latency figures)
            first = actions[0]
            if isinstance(first, Emit) and first.type == EventType.digit_received:
                self.emit(first.type, first.node, {**first.data, "method": method}, at=iso(at))
                actions = actions[1:]
            self._run_actions(actions)
        else:
            self.emit(
                EventType.digit_received, conv.state, {"digit": digit, "method": method}, at=iso(at)
            )

    # ------------------------------------------------------------ menu actions
    def _run_actions(self, actions: list[Action]) -> None:
        conv = self.conv
        if conv is None:
            return
        prompt_at = ""
        for action in actions:  # media first, so the events can say when the prompt started
            if isinstance(action, PlayPrompts):
                files = [conv.prompts.get(k) or self.prompts.get(k) for k in action.keys]
                self._play(
                    [f.path for f in files if f is not None],
                    sum(f.duration for f in files if f is not None),
                )
                prompt_at = iso(time.time())
            elif isinstance(action, StopPrompt):
                self._stop_prompt()
        for action in actions:
            if isinstance(action, Emit):
                data = dict(action.data)
                if action.type == EventType.menu_entered and prompt_at:
                    data["prompt_started_at"] = prompt_at
                if action.type == EventType.digits_collected and conv.survey:
                    data["node"] = action.node
                self.emit(action.type, action.node, data)
            elif isinstance(action, Enqueue):
                self._enqueue(conv, action.queue, action.priority, action.skills)
            elif isinstance(action, RequestCallback):
                conv.outcome = "callback"
                conv.queue = action.queue
            elif isinstance(action, TransferTo):
                self._transfer_number(conv, action.target, None)
            elif isinstance(action, Hangup):
                self._end_call(action.reason, conv.outcome or action.reason)

    def _enqueue(
        self,
        conv: Conversation,
        queue_code: str,
        priority: int,
        skills: tuple[str, ...],
        requeued_from: str = "",
    ) -> None:
        runner = conv.runner
        conv.queue, conv.priority, conv.skills = queue_code, priority, skills
        if not conv.queued_at:
            conv.queued_at = time.time()
        conv.state = "queued"
        self.emit(
            EventType.call_queued,
            runner.node if runner else "",
            {
                "queue": queue_code,
                "priority": priority,
                "skills": list(skills),
                "collected": dict(runner.collected) if runner else {},
                "menu_path": list(runner.menu_path) if runner else [],
                "caller": conv.caller,
                "did": conv.did,
                "queued_epoch": conv.queued_at,
                **({"previous_queue": requeued_from} if requeued_from else {}),
            },
        )
        self._queued_view(conv)
        self._rewire()

    def _queued_view(self, conv: Conversation) -> None:
        queue_cfg = self.config.queues.queues.get(conv.queue)
        every = queue_cfg.announce_every_seconds if queue_cfg else 30
        if every <= 0:
            self.queued_view = {}
            return
        first = max(conv.prompt_until - time.monotonic(), 0) + min(every, 5)
        self.queued_view = {
            "call_id": conv.call_id,
            "queue": conv.queue,
            "every": every,
            "next_at": time.monotonic() + first,
        }

    # ------------------------------------------------------------ media wiring
    def _play(self, paths: list[str], duration: float) -> None:
        self._stop_prompt()
        if not paths or "caller" not in self.media:
            return
        player = pj.AudioMediaPlayer()
        if len(paths) == 1:
            player.createPlayer(paths[0], pj.PJMEDIA_FILE_NO_LOOP)
        else:
            player.createPlaylist(paths, "prompts", pj.PJMEDIA_FILE_NO_LOOP)
        self.prompt_player = player
        self.media["prompt"] = player
        assert self.conv is not None
        self.conv.prompt_until = time.monotonic() + duration
        self._rewire()

    def _stop_prompt(self) -> None:
        if self.prompt_player is None:
            return
        self._forget_media("prompt", disconnect=True)
        self.graveyard.append(self.prompt_player)
        self.prompt_player = None
        if self.conv is not None:
            self.conv.prompt_until = 0.0
        self._rewire()

    def _ensure_music(self) -> None:
        if self.music_player is None:
            player = pj.AudioMediaPlayer()
            player.createPlayer(self.prompts["hold.music"].path, 0)  # 0: loop
            self.music_player = player
            self.media["music"] = player

    def _forget_media(self, name: str, disconnect: bool = False) -> None:
        """Drop a media object and its edges; a dead call's port is not touched any more."""
        for edge in [e for e in self.edges if name in e]:
            if disconnect:
                self._disconnect(edge)
            self.edges.discard(edge)
        self.media.pop(name, None)
        self.media_legs.pop(name, None)

    def _port_alive(self, name: str) -> bool:
        """False for a leg whose call ended (pjmedia asserts on a removed port)."""
        if name not in self.media:
            return False
        leg = self.media_legs.get(name)
        return name not in LEG_ROLES or (leg is not None and not leg.media_dead)

    def _disconnect(self, edge: tuple[str, str]) -> None:
        if not (self._port_alive(edge[0]) and self._port_alive(edge[1])):
            return
        with contextlib.suppress(pj.Error):
            self.media[edge[0]].stopTransmit(self.media[edge[1]])

    def _wanted_edges(self) -> set[tuple[str, str]]:
        conv = self.conv
        wanted: set[tuple[str, str]] = set()
        if conv is None or conv.close_at is not None:
            return wanted
        recording = self.recorder is not None and not conv.recording_paused
        bridged = conv.state == "bridged" and not conv.held
        # A consultation: the caller is on hold (music); the agent hears the target's line
        # (ringback a trunk may send as early media, then the target) and, once answered,
        # talks to them. The caller never hears the two. The consultation is in the call's
        # recording (the center's people on this call), the hold music is not.
        consult = conv.consult
        consult_line = consult is not None and "consult" in self.media
        talking = consult_line and consult is not None and consult.answered
        if self.prompt_player is not None:
            wanted.add(("prompt", "caller"))
            if recording:
                wanted.add(("prompt", "rec"))
        elif conv.state in ("queued", "offering", "transferring") or conv.held:
            self._ensure_music()
            wanted.add(("music", "caller"))
        if bridged:
            wanted |= {("caller", "agent"), ("agent", "caller")}
        if consult_line:
            wanted.add(("consult", "agent"))
        if talking:
            wanted.add(("agent", "consult"))
        if recording:
            wanted.add(("caller", "rec"))
            if conv.state == "bridged":
                wanted.add(("agent", "rec"))
            if talking:
                wanted.add(("consult", "rec"))
        if conv.super_mode and "super" in self.media:
            wanted |= {("caller", "super"), ("agent", "super")}
            if talking:
                wanted.add(("consult", "super"))
            if conv.super_mode in ("whisper", "barge"):
                wanted.add(("super", "agent"))
            if conv.super_mode == "barge":
                wanted.add(("super", "caller"))
                if talking:
                    wanted.add(("super", "consult"))
                if recording:
                    wanted.add(("super", "rec"))
        return {e for e in wanted if e[0] in self.media and e[1] in self.media}

    def _rewire(self) -> None:
        for role in LEG_ROLES:
            if role in self.media and not self._port_alive(role):
                self._forget_media(role)  # ended since the last step: drop without touching
        wanted = self._wanted_edges()
        for edge in self.edges - wanted:
            self._disconnect(edge)
        for edge in wanted - self.edges:
            try:
                self.media[edge[0]].startTransmit(self.media[edge[1]])
            except pj.Error:
                log.exception("connecting %s -> %s failed", *edge)
                continue
        self.edges = set(wanted)

    def _start_recording(self) -> None:
        conv = self.conv
        if conv is None or self.recorder is not None:
            return
        day = datetime.now(UTC)
        directory = Path(self.settings.recordings_dir) / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
        directory.mkdir(parents=True, exist_ok=True)
        path = (directory / f"{conv.call_id}.wav").resolve()
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(str(path))
        self.recorder = recorder
        self.media["rec"] = recorder
        conv.recording_id = conv.call_id
        conv.recording_path = str(path)
        self._send_status(
            {
                "status": "recording",
                "call_id": conv.call_id,
                "recording_id": conv.recording_id,
                "path": str(path),
                "started": time.time(),
            }
        )
        self.emit(
            EventType.recording_started, data={"recording_id": conv.recording_id, "path": str(path)}
        )

    # ------------------------------------------------------------ ending
    def _end_call(self, reason: str, outcome: str) -> None:
        conv = self.conv
        if conv is None or conv.close_at is not None:
            return
        conv.end_reason, conv.outcome = reason, outcome
        self.queued_view = {}
        if conv.consult is not None:
            self._consult_end(conv, reason, reconnect=False)  # its target leg, its event
        # Disconnect everything while every port is valid, then hang up (which frees ports).
        for edge in list(self.edges):
            self._disconnect(edge)
        self.edges.clear()
        for leg in list(self.legs.values()):
            self._hang_up(leg, "call_ended")
        # Free the recorder now; its header is written while we keep pumping events.
        for name in ("prompt", "music", "rec"):
            self.media.pop(name, None)
        self.graveyard += [self.prompt_player, self.music_player, self.recorder]
        self.prompt_player = self.music_player = self.recorder = None
        conv.close_at = time.monotonic() + CLOSE_PUMP_SECONDS

    def _finish(self, conv: Conversation) -> None:
        if conv.recording_path:
            path = Path(conv.recording_path)
            status = "complete"
            try:
                if not wav.is_header_consistent(path):
                    facts = wav.repair(path)
                    status = "repaired"
                else:
                    facts = wav.facts(path)
                self.emit(
                    EventType.recording_stopped,
                    data={
                        "recording_id": conv.recording_id,
                        "path": str(path),
                        "duration": facts.duration,
                        "bytes": facts.bytes,
                        "sha256": facts.sha256,
                        "status": status,
                        "paused": conv.recording_paused,
                    },
                )
            except (OSError, ValueError) as exc:
                self.emit(
                    EventType.recording_stopped,
                    data={
                        "recording_id": conv.recording_id,
                        "path": str(path),
                        "duration": 0,
                        "bytes": 0,
                        "sha256": None,
                        "status": "failed",
                        "error": str(exc),
                    },
                )
        self.emit(
            EventType.call_ended,
            data={
                "reason": conv.end_reason,
                "outcome": conv.outcome,
                "queue": conv.queue,
                "duration": round(time.time() - conv.started, 3),
            },
        )
        self.conv = None
        self.media.clear()
        self.media_legs.clear()
        self._send_status({"status": "idle", "call_id": conv.call_id})

    # ------------------------------------------------------------ timers
    def _timers(self, now: float) -> None:
        conv = self.conv
        if conv is None:
            return
        if conv.close_at is not None:
            if now >= conv.close_at and not self.legs and not self.leaving:
                self._finish(conv)
            elif now >= conv.close_at + 5:  # a leg never confirmed its end: give up on it
                self.legs.clear()
                self.leaving.clear()
                self._finish(conv)
            return
        if conv.prompt_until and now >= conv.prompt_until and self.prompt_player is not None:
            self._stop_prompt()
            if conv.hangup_after_prompt:
                self._end_call("message_played", conv.outcome or "failed")
                return
        if conv.state == "menu" and conv.runner is not None:
            self._run_actions(conv.runner.tick(now))
        if conv.offer_deadline is not None and now >= conv.offer_deadline:
            conv.offer_deadline = None
            agent = self.legs.get("agent")
            customer = self.legs.get("caller")
            if agent is not None and not agent.confirmed:
                self._withdraw_offer(conv, "ring_timeout")
            elif conv.direction == "out" and customer is not None and not customer.confirmed:
                with contextlib.suppress(pj.Error):
                    customer.hangup(pj.CallOpParam(True))  # the customer did not answer
        consult = conv.consult
        if consult is not None and consult.deadline is not None and now >= consult.deadline:
            self._consult_end(conv, "no_answer")
        if now >= conv.max_until:
            self._end_call(
                "max_duration", conv.outcome or ("answered" if conv.answered else "failed")
            )
        elif now >= self.next_media_check:
            self.next_media_check = now + 1.0
            self._check_rtp(conv, now)

    def _check_rtp(self, conv: Conversation, now: float) -> None:
        """A caller that vanished without BYE sends no RTP: end the call after the timeout."""
        leg = self.legs.get("caller")
        if leg is None or leg.media_index is None:
            return
        try:
            packets = int(leg.getStreamStat(leg.media_index).rtcp.rxStat.pkt)
        except pj.Error:
            return
        if packets != leg.last_rx_packets:
            leg.last_rx_packets, leg.last_rx_at = packets, now
        elif now - leg.last_rx_at > self.settings.sip.rtp_silence_timeout_seconds:
            self._end_call(
                "rtp_timeout", conv.outcome or ("answered" if conv.answered else "failed")
            )

    # ------------------------------------------------------------ commands
    def _agent_uri(self, uri: str) -> str:
        if uri.startswith(("sip:", "sips:")):
            return uri
        return f"sip:{uri}@{self.settings.sip.edge_host}:{self.settings.sip.edge_port}"

    def _dial(self, role: str, uri: str) -> Leg:
        leg = Leg(self, role, self.account)
        leg.makeCall(uri, pj.CallOpParam(True))
        self.legs[role] = leg
        return leg

    def _handle_command(self, command: Command) -> None:
        conv = self.conv
        if command.type == CommandType.originate:
            self._originate(command)
            return
        if conv is None or conv.call_id != command.call_id or conv.close_at is not None:
            self._command_failed(command, "no such call on this slot")
            return
        handler: dict[str, Callable[[Conversation, Command], None]] = {
            CommandType.offer: self._offer,
            CommandType.hangup: self._hangup_command,
            CommandType.hold: self._hold,
            CommandType.unhold: self._unhold,
            CommandType.transfer: self._transfer,
            CommandType.listen: self._supervise,
            CommandType.whisper: self._supervise,
            CommandType.barge: self._supervise,
            CommandType.pause_recording: self._pause_recording,
            CommandType.resume_recording: self._resume_recording,
            CommandType.play: self._play_command,
            CommandType.requeue: self._requeue,
            CommandType.cancel_offer: self._cancel_offer,
            "announce": self._announce,
        }
        action = handler.get(command.type)
        if action is None:
            self._command_failed(command, f"unknown command type {command.type!r}")
            return
        action(conv, command)

    def _hangup_command(self, conv: Conversation, command: Command) -> None:
        by_agent = _int(command.data.get("agent_id"))
        if conv.consult is not None and by_agent is not None and by_agent == conv.consult.agent_id:
            # the consultation target's desktop hangs up: their part ends, not the call
            self._consult_end(conv, "target_hung_up")
            return
        self._end_call(
            "command_hangup", conv.outcome or ("answered" if conv.answered else "failed")
        )

    def _hang_up(self, leg: Leg, reason: str) -> None:
        """End one leg on purpose. Media first (``hangup`` frees the leg's conference port at
        once and pjmedia aborts the process on a stopTransmit to a freed port), then the
        hangup (a CANCEL while it rings). The leg leaves ``legs`` now, so a new leg may take
        its role at once, and waits in ``leaving`` until pjsua reports it DISCONNECTED."""
        if leg.gone:
            return
        leg.intentional_hangup = leg.intentional_hangup or reason
        if self.media_legs.get(leg.role) is leg:
            self._forget_media(leg.role, disconnect=True)
        if self.legs.get(leg.role) is leg:
            del self.legs[leg.role]
        if leg not in self.leaving:
            self.leaving.append(leg)
        with contextlib.suppress(pj.Error):
            leg.hangup(pj.CallOpParam(True))

    def _withdraw_offer(self, conv: Conversation, reason: str) -> None:
        """Stop ringing the offered agent now and report the miss at once: routing may offer
        the call to the next agent right away, and that phone must not ring while this one
        still does. (Waiting for the CANCEL's final answer could take a slow phone 32 s.)"""
        agent = self.legs.get("agent")
        if agent is not None and not agent.confirmed:
            self._hang_up(agent, reason)
        if conv.direction == "out":
            self._agent_missed(conv, reason)
            self._end_call("agent_unreachable", "failed")
            return
        self._agent_missed(conv, reason)

    def _cancel_offer(self, conv: Conversation, command: Command) -> None:
        """Routing withdrew an offer (its ring timer fired before ours): stop that phone."""
        agent_id = _int(command.data.get("agent_id"))
        reason = str(command.data.get("reason") or "withdrawn")
        consult = conv.consult
        if consult is not None and not consult.answered and consult.agent_id == agent_id:
            self._consult_end(conv, "no_answer")
            return
        agent = self.legs.get("agent")
        ringing = agent is not None and not agent.confirmed
        if ringing and conv.state in ("offering", "originating") and conv.agent_id == agent_id:
            self._withdraw_offer(conv, reason)
            return
        self._command_failed(command, f"no phone is ringing for agent {agent_id} on this call")

    def _offer(self, conv: Conversation, command: Command) -> None:
        if conv.state == "offering":
            agent = self.legs.get("agent")
            if agent is not None and not agent.confirmed:
                # Routing gave the call to another agent (its own ring timer fired first):
                # the first phone stops ringing before the next one starts.
                self._withdraw_offer(conv, "ring_timeout")
        if conv.state not in ("queued",):
            self._command_failed(command, f"call is {conv.state}, not waiting in a queue")
            return
        uri = self._agent_uri(str(command.data.get("agent_uri", "")))
        if not uri:
            self._command_failed(command, "agent_uri missing")
            return
        queue_cfg = self.config.queues.queues.get(conv.queue)
        ring = float(
            command.data.get("ring_timeout")
            or (queue_cfg.ring_timeout_seconds if queue_cfg else 15)
        )
        conv.agent_uri = uri
        agent_id = command.data.get("agent_id")
        conv.agent_id = int(agent_id) if agent_id is not None else None
        conv.state = "offering"
        conv.offer_deadline = time.monotonic() + ring
        self.emit(
            EventType.agent_offered,
            data={
                "agent_uri": uri,
                "agent_id": conv.agent_id,
                "queue": conv.queue,
                "ring_timeout": ring,
            },
        )
        try:
            self._dial("agent", uri)
        except pj.Error as exc:
            conv.offer_deadline = None
            self._agent_missed(conv, f"dial failed: {exc.info()}")

    def _hold(self, conv: Conversation, command: Command) -> None:
        if conv.consult is not None:
            self._command_failed(command, "a consultation is in progress: complete or cancel it")
            return
        if conv.state != "bridged" or conv.held:
            self._command_failed(command, "only a connected call can be held")
            return
        conv.held = True
        self._rewire()
        self.emit(EventType.held)

    def _unhold(self, conv: Conversation, command: Command) -> None:
        if conv.consult is not None:
            self._command_failed(command, "a consultation is in progress: complete or cancel it")
            return
        if not conv.held:
            self._command_failed(command, "call is not on hold")
            return
        conv.held = False
        self._rewire()
        self.emit(EventType.unheld)

    def _drop_agent(self, reason: str) -> None:
        agent = self.legs.get("agent")
        if agent is not None:
            self._hang_up(agent, reason)
        self._drop_supervisor()

    def _drop_supervisor(self) -> None:
        """A supervisor follows the agent conversation: it leaves with the agent."""
        supervisor = self.legs.get("super")
        if supervisor is not None:
            self._hang_up(supervisor, "agent_left")
        if self.conv is not None:
            self.conv.super_mode = ""

    def _transfer(self, conv: Conversation, command: Command) -> None:
        kind = str(command.data.get("kind", ""))
        target = str(command.data.get("target", ""))
        mode = str(command.data.get("mode") or "blind")
        if mode == "consult":
            self._consult_start(conv, command)
            return
        if mode == "complete":
            if conv.consult is None:
                self._command_failed(command, "no consultation in progress")
            elif conv.consult.answered:
                self._consult_complete(conv, by="command")
            elif conv.consult.kind == "agent":
                self._consult_hand_over_ringing(conv)
            else:
                self._command_failed(
                    command, "an outside number must answer before the hand-over: wait, or cancel"
                )
            return
        if mode == "cancel":
            if conv.consult is None:
                self._command_failed(command, "no consultation in progress")
            else:
                self._consult_end(conv, "cancelled")
            return
        if mode != "blind":
            self._command_failed(
                command, f"transfer mode {mode!r}: use blind, consult, complete or cancel"
            )
            return
        if conv.consult is not None:
            self._command_failed(command, "a consultation is in progress: complete or cancel it")
            return
        if kind == "queue":
            if target not in self.config.queues.queues:
                self._command_failed(command, f"queue {target!r} is not defined")
                return
            self._drop_agent("transferred")
            previous = conv.queue
            conv.held = False
            self.emit(EventType.transferred, data={"kind": "queue", "to": target})
            self._enqueue(conv, target, conv.priority, conv.skills, requeued_from=previous)
        elif kind == "agent":
            self._drop_agent("transferred")
            conv.held = False
            conv.state = "queued"
            self.emit(EventType.transferred, data={"kind": "agent", "to": target})
            self._offer(
                conv,
                Command(
                    CommandType.offer,
                    conv.call_id,
                    command.id,
                    {"agent_uri": target, "agent_id": command.data.get("agent_id")},
                ),
            )
        elif kind == "number":
            self._transfer_number(conv, target, command)
        else:
            self._command_failed(command, f"transfer kind {kind!r}: use queue, agent or number")

    def _transfer_target_uri(self, target: str) -> str | None:
        """Only numbers listed in telephony.toml [transfer_targets] may be dialled."""
        telephony = self.config.telephony
        entry = telephony.transfer_targets.get(target)
        if entry is None:
            entry = next(
                (t for t in telephony.transfer_targets.values() if t.number == target), None
            )
        if entry is None:
            return None
        if entry.trunk is None:
            return self._agent_uri(entry.number)
        return self._trunk_uri(entry.number, entry.trunk)

    def _trunk_uri(self, number: str, trunk_code: str) -> str:
        """An outside number over a trunk: through the edge when there is one."""
        if self.spec.via_edge:
            sip = self.settings.sip
            return f"sip:{number}@{sip.edge_host}:{sip.edge_port};trunk={trunk_code}"
        trunk = self.config.telephony.trunks[trunk_code]
        return (
            f"sip:{trunk.outbound_prefix}{number}@{trunk.host}:{trunk.port}"
            f";transport={trunk.transport}"
        )

    def _transfer_number(self, conv: Conversation, target: str, command: Command | None) -> None:
        uri = self._transfer_target_uri(target)
        if uri is None:
            if command is not None:
                self._command_failed(command, f"{target!r} is not an allowed transfer target")
            else:
                log.error("menu transfer target %r not allowed", target)
                self._end_call("transfer_not_allowed", "failed")
            return
        self._drop_agent("transferred")
        conv.held = False
        conv.state = "transferring"
        conv.agent_uri = uri
        conv.agent_id = None
        conv.outcome = "transferred"
        conv.offer_deadline = time.monotonic() + 30
        self._rewire()
        try:
            self._dial("agent", uri)
        except pj.Error as exc:
            self._agent_missed(conv, f"dial failed: {exc.info()}")

    # ------------------------------------------------------------ consultation (attended transfer)
    def _consult_start(self, conv: Conversation, command: Command) -> None:
        """The caller goes on hold (music; still recorded), a new leg rings the target."""
        kind = str(command.data.get("kind", ""))
        target = str(command.data.get("target", ""))
        if conv.state != "bridged" or "agent" not in self.legs:
            self._command_failed(command, "only a call connected to an agent can be consulted on")
            return
        if conv.consult is not None:
            self._command_failed(command, "a consultation is already in progress")
            return
        if kind == "agent":
            uri = self._agent_uri(target) if target else ""
            queue_cfg = self.config.queues.queues.get(conv.queue)
            ring = float(
                command.data.get("ring_timeout")
                or (queue_cfg.ring_timeout_seconds if queue_cfg else 15)
            )
        elif kind == "number":
            uri = self._transfer_target_uri(target) or ""
            ring = CONSULT_NUMBER_RING_SECONDS
        else:
            self._command_failed(command, f"consult kind {kind!r}: use agent or number")
            return
        if not uri:
            self._command_failed(command, f"{target!r} is not an allowed consultation target")
            return
        if len(self.legs) + len(self.leaving) >= MAX_LEGS:
            self._command_failed(command, f"no line left for a consultation ({MAX_LEGS} per slot)")
            return
        consult = Consult(
            kind=kind,
            to=target,
            uri=uri,
            agent_id=_int(command.data.get("agent_id")) if kind == "agent" else None,
            deadline=time.monotonic() + ring,
        )
        conv.consult = consult
        if not conv.held:
            conv.held = consult.held_caller = True
            self.emit(EventType.held, data={"reason": "consult"})
        self._rewire()
        self.emit(EventType.consult_started, data={**consult.facts(), "ring_timeout": ring})
        try:
            self._dial("consult", uri)
        except pj.Error as exc:
            self._consult_end(conv, "dial_failed", detail=str(exc.info()))

    def _consult_answered(self, conv: Conversation, leg: Leg) -> None:
        consult = conv.consult
        if consult is None:
            self._hang_up(leg, "no_consultation")
            return
        consult.answered = True
        consult.deadline = None
        self.emit(EventType.consult_answered, data=consult.facts())
        self._rewire()

    def _consult_end(
        self,
        conv: Conversation,
        reason: str,
        *,
        code: int = 0,
        detail: str = "",
        reconnect: bool = True,
    ) -> None:
        """The consultation ends without a transfer: the target's leg goes; unless the call
        is ending, a caller the consultation put on hold is reconnected to the agent at once
        (the agent is on the line and expects the caller back; a caller the agent had put on
        hold before consulting stays on hold until the agent takes them off)."""
        consult = conv.consult
        if consult is None:
            return
        conv.consult = None
        leg = self.legs.get("consult")
        if leg is not None:
            self._hang_up(leg, reason)
        resume = reconnect and consult.held_caller and conv.held and "agent" in self.legs
        if resume:
            conv.held = False
        self._rewire()
        self.emit(
            EventType.consult_ended,
            data={
                **consult.facts(),
                "reason": reason,
                "answered": consult.answered,
                "code": code,
                "seconds": round(time.time() - consult.started, 3),
                **({"detail": detail} if detail else {}),
            },
        )
        if resume:
            self.emit(EventType.unheld, data={"reason": "consult_ended"})

    def _consult_complete(self, conv: Conversation, *, by: str) -> None:
        """Hand the caller over: the agent (and a supervisor following them) leave, the
        target's leg becomes the call's agent leg, the caller is bridged to it."""
        consult = self._hand_over(conv)
        if consult is None:
            return
        if consult.kind == "number":
            conv.outcome = "transferred"
        self._rewire()
        self._emit_handed_over(consult, answered=True, by=by)
        self.emit(
            EventType.bridged,
            data={"agent_uri": conv.agent_uri, "agent_id": conv.agent_id, "queue": conv.queue},
        )

    def _consult_hand_over_ringing(self, conv: Conversation) -> None:
        """Complete before the target answered (semi-attended transfer): the agent leaves at
        once, and the target's ringing leg becomes the call's offer, as a blind transfer's
        would be. The caller hears the queue's waiting sound until the target answers; a
        target who does not answer (ring timeout, decline) is a missed offer, and routing
        puts the caller back in line."""
        consult = self._hand_over(conv)
        if consult is None:
            return
        conv.state = "offering"
        conv.offer_deadline = consult.deadline
        self._rewire()
        self._emit_handed_over(consult, answered=False, by="command")

    def _hand_over(self, conv: Conversation) -> Consult | None:
        """The agent (and a supervisor following them) leave; the consultation's leg, with
        its media if any, becomes the call's agent leg. None when there is no such leg."""
        consult = conv.consult
        leg = self.legs.get("consult")
        if consult is None or leg is None:
            return None
        self._drop_agent("transferred")
        target_media = self.media.get("consult") if self._port_alive("consult") else None
        self._forget_media("consult", disconnect=True)
        del self.legs["consult"]
        leg.role = "agent"
        self.legs["agent"] = leg
        if target_media is not None:
            self.media["agent"] = target_media
            self.media_legs["agent"] = leg
        conv.consult = None
        conv.held = False
        conv.agent_uri = consult.uri
        conv.agent_id = consult.agent_id
        return consult

    def _emit_handed_over(self, consult: Consult, *, answered: bool, by: str) -> None:
        self.emit(
            EventType.transferred,
            data={
                "kind": consult.kind,
                "to": consult.to if consult.kind == "number" else consult.uri,
                "agent_id": consult.agent_id,
                "agent_uri": consult.uri,
                "consult": True,
                "answered": answered,
                "by": by,
            },
        )

    def _supervise(self, conv: Conversation, command: Command) -> None:
        if conv.state != "bridged":
            self._command_failed(command, "supervisors join connected calls only")
            return
        mode = str(command.type)
        uri = str(command.data.get("supervisor_uri", ""))
        if conv.super_mode and "super" in self.legs:
            conv.super_mode = mode  # switching listen/whisper/barge on the same leg
            self._rewire()
            self.emit(EventType.supervisor_joined, data={"mode": mode, "uri": conv.super_uri})
            return
        if not uri:
            self._command_failed(command, "supervisor_uri missing")
            return
        if len(self.legs) + len(self.leaving) >= MAX_LEGS:
            self._command_failed(command, f"no line left for a supervisor ({MAX_LEGS} per slot)")
            return
        conv.super_mode, conv.super_uri = mode, self._agent_uri(uri)
        try:
            self._dial("super", conv.super_uri)
        except pj.Error as exc:
            conv.super_mode = ""
            self._command_failed(command, f"dial failed: {exc.info()}")

    def _pause_recording(self, conv: Conversation, command: Command) -> None:
        conv.recording_paused = True
        self._rewire()

    def _resume_recording(self, conv: Conversation, command: Command) -> None:
        conv.recording_paused = False
        self._rewire()

    def _play_command(self, conv: Conversation, command: Command) -> None:
        outcome = str(command.data.get("outcome") or "")
        if outcome in LEAVING_OUTCOMES and conv.state == "queued":
            # Routing's last word to a waiting caller (call-back confirmed, nobody on duty):
            # they no longer wait, so no position announcements, and their hang-up is no
            # abandon; the call ends with this outcome.
            conv.outcome = outcome
            self.queued_view = {}
        hangup_after = bool(command.data.get("hangup_after"))
        key = str(command.data.get("prompt", ""))
        if "error" in command.data:
            failure = f"announcement not rendered: {command.data['error']}"
        elif "file" not in command.data and key not in self.prompts:
            failure = f"unknown prompt {key!r}"
        else:
            failure = ""
        if failure:
            self._command_failed(command, failure)
            if hangup_after:  # nothing to wait for: the caller would only hear music
                self._end_call("message_failed", conv.outcome or "failed")
            return
        if "file" in command.data:
            self._play([str(command.data["file"])], float(command.data.get("duration", 0)))
        else:
            self._play([self.prompts[key].path], self.durations[key])
        # The message is the last thing the caller hears: hang up when it has played.
        conv.hangup_after_prompt = conv.hangup_after_prompt or hangup_after

    def _announce(self, conv: Conversation, command: Command) -> None:
        if conv.state != "queued":
            return  # offered or bridged meanwhile: nothing to announce
        if self.prompt_player is not None:
            # another prompt is playing (e.g. routing's own announcement): try again shortly
            view = self.queued_view
            if view and view.get("call_id") == conv.call_id:
                view["next_at"] = time.monotonic() + 1.0
            return
        keys = [k for k in command.data.get("keys", []) if k in self.prompts]
        self._play([self.prompts[k].path for k in keys], sum(self.durations[k] for k in keys))
        self.emit(
            EventType.announced,
            data={
                "queue": conv.queue,
                "position": command.data["position"],
                "expected_wait": command.data["expected_wait"],
                "source": command.data["source"],
            },
        )

    def _requeue(self, conv: Conversation, command: Command) -> None:
        target = str(command.data.get("queue", ""))
        if target not in self.config.queues.queues:
            self._command_failed(command, f"queue {target!r} is not defined")
            return
        if conv.state not in ("queued", "offering"):
            self._command_failed(command, f"call is {conv.state}, not waiting")
            return
        self._drop_agent("requeued")
        conv.offer_deadline = None
        self._enqueue(conv, target, conv.priority, conv.skills, requeued_from=conv.queue)

    def _originate(self, command: Command) -> None:
        """Outbound call (callback, click-to-call): the agent first, then the customer; in
        survey mode only the customer, who hears the survey and keys a digit."""
        if self.conv is not None or self.legs:
            self._command_failed(command, "slot busy")
            return
        telephony = self.config.telephony
        number = str(command.data.get("number", ""))
        if not re.fullmatch(r"\+?\d{3,20}", number):
            self._command_failed(command, f"number {number!r} is not a phone number")
            return
        refusal = telephony.dial_plan.plan().refusal(number)
        if refusal:  # the last check before the trunk (the edge checks again)
            self._command_failed(command, refusal)
            return
        if telephony.outbound_trunk is None:
            self._command_failed(command, "no outbound_trunk configured in telephony.toml")
            return
        if command.data.get("mode") == "survey" or command.data.get("survey"):
            self._originate_survey(command, number)
            return
        agent_uri = self._agent_uri(str(command.data.get("agent_uri", "")))
        conv = Conversation(
            call_id=command.call_id or uuid.uuid4().hex,
            direction="out",
            caller=number,
            did="",
            state="originating",
        )
        conv.max_until = time.monotonic() + self.settings.sip.max_call_seconds
        conv.agent_uri = agent_uri
        agent_id = command.data.get("agent_id")
        conv.agent_id = int(agent_id) if agent_id is not None else None
        conv.originate = dict(command.data)
        self.conv = conv
        self._send_status({"status": "busy", "call_id": conv.call_id, "started": conv.started})
        self.emit(EventType.call_arrived, data={"caller": number, "did": "", "direction": "out"})
        # Ring the agent as long as routing allows (the offer's ring_timeout): its own timer
        # gives up 3 s later and may offer the call-back to someone else, so ringing on
        # beyond it could put the customer through twice.
        ring = float(command.data.get("ring_timeout") or ORIGINATE_AGENT_RING_SECONDS)
        self.emit(
            EventType.agent_offered,
            data={"agent_uri": agent_uri, "agent_id": conv.agent_id, "ring_timeout": ring},
        )
        conv.offer_deadline = time.monotonic() + ring
        self._dial("agent", agent_uri)

    def _survey_runner(self, survey: dict[str, Any], question: PromptFile) -> MenuRunner:
        """The survey as a two-node menu (ask for one key, thank), run by the menu runner."""
        digits = str(survey.get("digits", ""))
        if not re.fullmatch(r"[0-9*#]{1,12}", digits):
            raise ValueError(f"survey.digits {digits!r} must be 1-12 keys among 0-9 * #")
        pattern = "^[" + "".join(re.escape(d) for d in digits) + "]$"
        menu = MenuFile(
            entry="survey",
            nodes={
                "survey": CollectNode(
                    kind="collect",
                    prompt=Prompt(text="survey"),
                    variable=str(survey.get("variable") or "satisfaction"),
                    pattern=pattern,
                    max_digits=1,
                    terminator="",
                    first_digit_timeout=SURVEY_DIGIT_SECONDS,
                    max_retries=SURVEY_RETRIES,
                    next="survey_thanks",
                    fallback="survey_end",
                ),
                "survey_thanks": HangupNode(kind="hangup", prompt=Prompt(text="thanks")),
                "survey_end": HangupNode(kind="hangup"),  # no key: system.goodbye
            },
        )
        thanks = self.prompts["survey.thanks"]
        durations = {
            **self.durations,
            "survey.prompt": question.duration,
            "survey_thanks.prompt": thanks.duration,
        }
        return MenuRunner(menu, durations)

    def _originate_survey(self, command: Command, number: str) -> None:
        """Automatic satisfaction survey: the customer only, through the outbound trunk."""
        if "error" in command.data:
            self._command_failed(command, str(command.data["error"]))
            return
        survey = command.data.get("survey")
        if not isinstance(survey, dict) or "survey_file" not in command.data:
            self._command_failed(command, "survey mode needs a survey object with prompt_zh")
            return
        question = PromptFile(
            str(command.data["survey_file"]), float(command.data.get("survey_duration", 0))
        )
        try:
            runner = self._survey_runner(survey, question)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            self._command_failed(command, f"survey: {exc}")
            return
        conv = Conversation(
            call_id=command.call_id or uuid.uuid4().hex,
            direction="out",
            caller=number,
            did="",
            state="originating",
            runner=runner,
            survey=True,
        )
        conv.prompts = {
            "survey.prompt": question,
            "survey_thanks.prompt": self.prompts["survey.thanks"],
        }
        conv.max_until = time.monotonic() + self.settings.sip.max_call_seconds
        conv.originate = dict(command.data)
        self.conv = conv
        self._send_status({"status": "busy", "call_id": conv.call_id, "started": conv.started})
        self.emit(
            EventType.call_arrived,
            data={"caller": number, "did": "", "direction": "out", "mode": "survey"},
        )
        self._dial_customer(conv)

    def _dial_customer(self, conv: Conversation) -> None:
        telephony = self.config.telephony
        assert telephony.outbound_trunk is not None
        uri = self._trunk_uri(conv.caller, telephony.outbound_trunk)
        conv.offer_deadline = time.monotonic() + CUSTOMER_RING_SECONDS
        self.emit(
            EventType.originated,
            data={
                "number": conv.caller,
                "purpose": conv.originate.get("purpose", ""),
                "mode": "survey" if conv.survey else "agent",
                "ticket_id": conv.originate.get("ticket_id"),
                "callback_id": conv.originate.get("callback_id"),
            },
        )
        self._dial("caller", uri)


# ---------------------------------------------------------------- process entry


def run_slot(
    spec: SlotSpec,
    settings: Settings,
    config: CenterConfig,
    prompts: dict[str, PromptFile],
    status: Connection | None,
) -> None:
    """Entry of a forked slot process (the parent already imported pjsua2)."""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {spec.name} %(levelname)s %(message)s"
    )
    engine = SlotEngine(spec, settings, config, prompts, status)

    def _stop(_signum: int, _frame: Any) -> None:
        engine.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    engine.run()
    # Leave without running the parent's atexit handlers (forked copy of the supervisor).
    os._exit(0)
