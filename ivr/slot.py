"""One call slot: a pjsua2 endpoint carrying one conversation (caller + up to 3 more legs:
the agent, a supervisor, and a consultation target). ``run_slot`` is the entry the
supervisor forks.

Threads in a slot process:

* the **engine thread** (the process's main thread, ``SlotEngine``) creates, uses and
  destroys every pjsua2 object. It loops on ``libHandleEvents``; pjsua2 callbacks run inside
  that call (``threadCnt=0``, ``mainThreadOnly``) and only append facts to a deque
  (``ivr/legs.py``), which the loop then handles, together with commands from the command
  queue and the timers;
* the **command reader** and the **publisher** (``ivr/slot_streams.py``) do the Redis and
  pipe I/O, so the engine thread never waits on either.

The call's decisions that need no SIP live in ``ivr/call_core.py`` (a leg ended, timers)
and ``ivr/wiring.py`` (who hears whom); ``ivr/media.py`` connects the conference ports
accordingly. Nothing pjsua2 leaves the engine thread.
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
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pjsua2 as pj

from callcenter.streams import CallEvent, Command, CommandType, EventType
from config.loader import CenterConfig
from config.settings import Settings
from ivr import leg_uris, survey, wav
from ivr.call_core import (
    LEAVING_OUTCOMES,
    MEDIA_CHECK_EVERY,
    AgentMissed,
    CallAction,
    CallPhase,
    CheckMedia,
    CommandRefused,
    Consult,
    ConsultComplete,
    ConsultEnd,
    Conversation,
    DialCustomer,
    DropAgent,
    DropLeg,
    EmitEvent,
    EndCall,
    Finish,
    HangupLeg,
    LegGone,
    LegsView,
    Requeue,
    Rewire,
    RunMenu,
    ScheduleAnnouncements,
    StartRecording,
    StopAnnouncements,
    WithdrawOffer,
    agent_missed,
    consult_ended,
    enqueue,
    forced_outcome,
    on_command,
    on_leg_answered,
    on_leg_gone,
    on_media_ready,
    on_tick,
    optional_int,
)
from ivr.call_core import StopPrompt as StopPromptDue
from ivr.legs import (
    DigitReceived,
    Leg,
    LegFact,
    LegMediaReady,
    LegStateChanged,
    start_endpoint,
)
from ivr.live_config import EngineConfig, SlotConfigSwitch
from ivr.media import CallMedia
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
from ivr.poll import POLL_MS, poll_ms, wake_on_signals
from ivr.prompts import PromptFile
from ivr.slot_streams import USE_CONFIG, SlotStreams
from ivr.spec import SlotSpec
from ivr.wiring import WiringState

log = logging.getLogger("ivr.slot")

CLOSE_PUMP_SECONDS = 0.3  # pjmedia writes the WAV header shortly after the recorder is freed
DEFAULT_SECONDS_PER_POSITION = 60  # expected-wait estimate when routing publishes none
CUSTOMER_RING_SECONDS = 45  # an outbound callback rings the customer this long
ORIGINATE_AGENT_RING_SECONDS = 30  # an originate without ring_timeout rings the agent this long
# The wheel's PJSUA_MAX_CALLS: a 5th makeCall raises PJ_ETOOMANY. Legs still hanging up
# (CANCEL sent, no final answer yet) count until pjsua reports them DISCONNECTED.
MAX_LEGS = 4
CONSULT_NUMBER_RING_SECONDS = 30  # a configured number rings this long for a consultation
_USER_RE = re.compile(r"sips?:([^@;>]+)@")


def user_part(uri: str) -> str:
    match = _USER_RE.search(uri)
    return match.group(1) if match else ""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class SlotEngine:
    """Everything on the engine thread of one slot process."""

    def __init__(
        self,
        spec: SlotSpec,
        settings: Settings,
        config: CenterConfig,
        prompts: dict[str, PromptFile],
        status: Connection | None,
        control: Connection | None = None,
        generation: int = 0,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.config = config
        self.prompts = prompts
        self.durations = {key: p.duration for key, p in prompts.items()}
        # a new configuration generation waits for the call in progress to end
        self.config_switch = SlotConfigSwitch(generation)
        self.facts: deque[LegFact] = deque()
        self.stop = threading.Event()
        self.streams = SlotStreams(spec, settings, status, self.stop, control)
        self.commands = self.streams.commands
        self.legs: dict[str, Leg] = {}  # role -> the leg in that role now
        # legs hung up on purpose and not yet DISCONNECTED: kept referenced (pjsua would
        # otherwise hang them up behind our back) and counted against MAX_LEGS
        self.leaving: list[Leg] = []
        self.graveyard: list[Any] = []
        self.conv: Conversation | None = None
        self.media = CallMedia(prompts["hold.music"].path, self.graveyard)
        self.uris = leg_uris.LegUris(config.telephony, settings.sip, spec.via_edge)
        self.dids = {d.number: (d.entry or config.menu.entry) for d in config.telephony.dids}
        self.ep: Any = None
        self.account: Any = None
        self.next_media_check = 0.0
        self.wake_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._action_handlers = self._build_action_handlers()

    # ------------------------------------------------------------ lifecycle
    def run(self) -> None:
        self.ep, self.account = start_endpoint(self.spec, self)
        self.streams.start()
        self._send_status({"status": "ready"})
        try:
            while not self.stop.is_set():
                self.ep.libHandleEvents(self._poll_ms())
                self._step()
        finally:
            self._shutdown()
            self.streams.close()

    def _poll_ms(self) -> int:
        """The next poll's timeout (ivr/poll.py): long when idle or between coarse timers."""
        loose = bool(self.facts or self.graveyard or self.leaving or (self.legs and not self.conv))
        return poll_ms(
            self.conv,
            time.monotonic(),
            next_media_check=self.next_media_check,
            prompt_playing=self.media.prompt_player is not None,
            loose_ends=loose,
        )

    @property
    def queued_view(self) -> dict[str, Any]:
        """The waiting caller's announcement schedule, read by the command reader."""
        return self.streams.queued_view

    @queued_view.setter
    def queued_view(self, view: dict[str, Any]) -> None:
        self.streams.queued_view = view

    def _send_status(self, status: dict[str, Any]) -> None:
        self.streams.send_status(status)

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
        self.media.prompt_player = self.media.music_player = self.media.recorder = None
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
    def wake_soon(self) -> None:
        """From a callback: make the running libHandleEvents return without its timeout."""
        with contextlib.suppress(OSError):
            self.wake_socket.sendto(b"\r\n\r\n", (self.spec.sip_host, self.spec.sip_port))

    # ------------------------------------------------------------ engine loop step
    def _step(self) -> None:
        self.graveyard.clear()  # deferred drops: never inside a pjsua2 callback
        while self.facts:
            fact = self.facts.popleft()
            try:
                self._handle_fact(fact)
            except Exception:
                log.exception("handling %s failed", type(fact).__name__)
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
        self.streams.publish(event)

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
        self.streams.publish(event)

    # ------------------------------------------------------------ incoming calls
    def incoming(self, account: pj.Account, call_id: int, source: str) -> None:
        leg = Leg(self, "caller", account, call_id)
        info = leg.getInfo()
        did = user_part(info.localUri)
        caller = user_part(info.remoteUri)
        refusal = 0
        if not self.spec.source_allowed(source):
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
    def _handle_fact(self, fact: LegFact) -> None:
        if isinstance(fact, LegStateChanged):
            self._leg_state(fact.leg, fact.state, fact.code, fact.reason)
        elif isinstance(fact, LegMediaReady):
            self._leg_media(fact.leg, fact.index)
        elif isinstance(fact, DigitReceived):
            self._leg_dtmf(fact.leg, fact.digit, fact.method, fact.at)

    def _leg_media(self, leg: Leg, index: int) -> None:
        if leg.gone or self.legs.get(leg.role) is not leg:
            return
        if leg.media_dead:
            return
        first = leg.media_index is None
        leg.media_index = index
        self.media.attach_leg(leg, index, renegotiated=not first)
        conv = self.conv
        if conv is None:
            return
        self._carry_out(conv, on_media_ready(conv, leg.role, first=first, now=time.monotonic()))

    def _leg_state(self, leg: Leg, state: int, code: int, reason: str) -> None:
        leg.last_code = code or leg.last_code
        if state == pj.PJSIP_INV_STATE_EARLY and not leg.ringing:
            leg.ringing = True
            conv = self.conv
            if conv is not None and self._is_current(leg) and leg.role == "agent":
                self.emit(EventType.agent_ringing, data={"agent_uri": conv.agent_uri})
        elif state == pj.PJSIP_INV_STATE_CONFIRMED and not leg.confirmed:
            leg.confirmed = True
            self._leg_confirmed(leg)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED and not leg.gone:
            leg.gone = True
            self._leg_disconnected(leg, code, reason)

    def _is_current(self, leg: Leg) -> bool:
        """A leg we hung up on purpose is no longer in ``legs``: its late facts change nothing."""
        return self.legs.get(leg.role) is leg

    def _leg_confirmed(self, leg: Leg) -> None:
        if not self._is_current(leg):
            # answered just as we cancelled it (200 OK crossed our CANCEL): end it again
            with contextlib.suppress(pj.Error):
                leg.hangup(pj.CallOpParam(True))
        elif self.conv is not None:
            self._carry_out(self.conv, on_leg_answered(self.conv, leg.role))

    def _leg_disconnected(self, leg: Leg, code: int, reason: str) -> None:
        current = self._is_current(leg)
        if current:
            del self.legs[leg.role]
        if leg in self.leaving:
            self.leaving.remove(leg)
        if self.media.owns(leg):  # not a newer leg in the same role
            self.media.forget(leg.role)
        self.graveyard.append(leg)
        if self.conv is not None and current:
            self._leg_gone(self.conv, leg, code, reason)

    def _leg_gone(self, conv: Conversation, leg: Leg, code: int, reason: str) -> None:
        gone = LegGone(
            role=leg.role,
            confirmed=leg.confirmed,
            code=code,
            reason=reason,
            intentional=bool(leg.intentional_hangup),
        )
        short = self.config.queues.short_abandon_seconds
        self._carry_out(conv, on_leg_gone(conv, gone, now=time.time(), short_abandon_seconds=short))

    def _carry_out(self, conv: Conversation, actions: list[CallAction]) -> None:
        """Carry out the call core's actions in order (see ivr/call_core.py)."""
        for action in actions:
            self._action_handlers[type(action)](conv, action)

    def _build_action_handlers(self) -> dict[type, Callable[[Conversation, Any], None]]:
        return {
            EmitEvent: lambda _conv, a: self.emit(a.type, a.node, a.data),
            EndCall: lambda _conv, a: self._end_call(a.reason, a.outcome),
            AgentMissed: lambda conv, a: self._agent_missed(conv, a.reason),
            WithdrawOffer: lambda conv, a: self._withdraw_offer(conv, a.reason),
            ConsultEnd: lambda conv, a: self._consult_end(
                conv, a.reason, code=a.code, reconnect=a.reconnect
            ),
            ConsultComplete: lambda conv, a: self._consult_complete(conv, by=a.by),
            Rewire: lambda _conv, _a: self._rewire(),
            StopPromptDue: lambda _conv, _a: self._stop_prompt(),
            RunMenu: lambda _conv, a: self._run_actions(list(a.actions)),
            HangupLeg: lambda _conv, a: self._cancel_leg(a.role),
            CheckMedia: lambda conv, a: self._check_rtp(conv, a.at),
            Finish: self._finish_action,
            DropLeg: self._drop_leg,
            StartRecording: lambda _conv, _a: self._start_recording(),
            DialCustomer: lambda conv, _a: self._dial_customer(conv),
            ScheduleAnnouncements: lambda conv, _a: self._queued_view(conv),
            StopAnnouncements: lambda _conv, _a: self._stop_announcements(),
            DropAgent: lambda _conv, a: self._drop_agent(a.reason),
            Requeue: lambda conv, a: self._enqueue(
                conv, a.queue, conv.priority, conv.skills, requeued_from=a.requeued_from
            ),
        }

    def _drop_leg(self, _conv: Conversation, action: DropLeg) -> None:
        leg = self.legs.get(action.role)
        if leg is not None:
            self._hang_up(leg, action.reason)

    def _stop_announcements(self) -> None:
        self.queued_view = {}

    def _cancel_leg(self, role: str) -> None:
        """Hang up a leg without taking it out of its role (its DISCONNECTED ends the call)."""
        leg = self.legs.get(role)
        if leg is not None:
            with contextlib.suppress(pj.Error):
                leg.hangup(pj.CallOpParam(True))

    def _finish_action(self, conv: Conversation, action: Finish) -> None:
        if action.forced:
            self.legs.clear()
            self.leaving.clear()
        self._finish(conv)

    def _agent_missed(self, conv: Conversation, reason: str) -> None:
        self._carry_out(conv, agent_missed(conv, reason))

    def _leg_dtmf(self, leg: Leg, digit: str, method: int, at: float) -> None:
        conv = self.conv
        if conv is None or leg.role != "caller" or conv.close_at is not None:
            return
        if conv.state == CallPhase.menu and conv.runner is not None:
            actions = conv.runner.digit(digit, time.monotonic())
            # the digit's own event carries the moment the digit arrived (latency figures)
            first = actions[0]
            if isinstance(first, Emit) and first.type == EventType.digit_received:
                self.emit(first.type, first.node, {**first.data, "method": method}, at=iso(at))
                actions = actions[1:]
            self._run_actions(actions)
        else:
            self.emit(
                EventType.digit_received,
                conv.state.value,
                {"digit": digit, "method": method},
                at=iso(at),
            )

    # ------------------------------------------------------------ menu actions
    def _run_actions(self, actions: list[Action]) -> None:
        conv = self.conv
        if conv is None:
            return
        # media first, so the events can say when the prompt started
        prompt_at, played = self._menu_media(conv, actions)
        for action in actions:
            if isinstance(action, Emit):
                self._menu_event(conv, action, prompt_at, played)
            elif isinstance(action, Enqueue):
                self._enqueue(conv, action.queue, action.priority, action.skills)
            elif isinstance(action, RequestCallback):
                conv.outcome = "callback"
                conv.queue = action.queue
            elif isinstance(action, TransferTo):
                self._transfer_number(conv, action.target, None)
            elif isinstance(action, Hangup):
                self._end_call(action.reason, conv.outcome or action.reason)

    def _menu_media(self, conv: Conversation, actions: list[Action]) -> tuple[str, list[str]]:
        """Play or stop the menu's prompts; the moment a prompt started (ISO) or "", and the
        names of the files played (rendered prompts are named by a hash of their text)."""
        prompt_at, played = "", []
        for action in actions:
            if isinstance(action, PlayPrompts):
                files = [conv.prompts.get(k) or self.prompts.get(k) for k in action.keys]
                paths = [f.path for f in files if f is not None]
                self._play(paths, sum(f.duration for f in files if f is not None))
                prompt_at = iso(time.time())
                played = [Path(p).name for p in paths]
            elif isinstance(action, StopPrompt):
                self._stop_prompt()
        return prompt_at, played

    def _menu_event(self, conv: Conversation, action: Emit, prompt_at: str,
                    played: list[str]) -> None:  # fmt: skip
        data = dict(action.data)
        if action.type == EventType.menu_entered and prompt_at:
            data["prompt_started_at"] = prompt_at
            data["prompt_files"] = played
        if action.type == EventType.digits_collected and conv.survey:
            data["node"] = action.node
        self.emit(action.type, action.node, data)

    def _enqueue(
        self,
        conv: Conversation,
        queue_code: str,
        priority: int,
        skills: tuple[str, ...],
        requeued_from: str = "",
    ) -> None:
        actions = enqueue(
            conv, queue_code, priority, skills, requeued_from=requeued_from, wall_now=time.time()
        )
        self._carry_out(conv, actions)

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
        if not self.media.start_prompt(paths):
            return
        assert self.conv is not None
        self.conv.prompt_until = time.monotonic() + duration
        self._rewire()

    def _stop_prompt(self) -> None:
        if not self.media.stop_prompt():
            return
        if self.conv is not None:
            self.conv.prompt_until = 0.0
        self._rewire()

    def _rewire(self) -> None:
        conv = self.conv
        state = None
        if conv is not None:
            state = WiringState.of(
                conv,
                recorder=self.media.recorder is not None,
                prompt_playing=self.media.prompt_player is not None,
            )
        self.media.rewire(state)

    def _start_recording(self) -> None:
        conv = self.conv
        if conv is None or self.media.recorder is not None:
            return
        day = datetime.now(UTC)
        directory = Path(self.settings.recordings_dir) / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
        directory.mkdir(parents=True, exist_ok=True)
        path = (directory / f"{conv.call_id}.wav").resolve()
        self.media.start_recorder(str(path))
        conv.recording_started_at = time.monotonic()
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
        conv.ended_at = time.time()  # call_ended is sent after the recorder's flush: stamp now
        self.queued_view = {}
        if conv.consult is not None:
            self._consult_end(conv, reason, reconnect=False)  # its target leg, its event
        # Disconnect everything while every port is valid, then hang up (which frees ports).
        self.media.disconnect_all()
        for leg in list(self.legs.values()):
            self._hang_up(leg, "call_ended")
        # Free the recorder now; its header is written while we keep pumping events.
        self.media.release_players()
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
        ended = conv.ended_at if conv.ended_at is not None else time.time()
        self.emit(
            EventType.call_ended,
            data={
                "reason": conv.end_reason,
                "outcome": conv.outcome,
                "queue": conv.queue,
                "duration": round(ended - conv.started, 3),
            },
            at=datetime.fromtimestamp(ended, UTC).isoformat(),
        )
        self.conv = None
        self.media.clear()
        self._use_config(self.config_switch.call_ended())
        self._send_status({"status": "idle", "call_id": conv.call_id})

    def _use_config(self, new: EngineConfig | None) -> None:
        """Take a configuration generation (never while a call is in progress): the next
        call gets its menu, prompts, DIDs, dial plan and queue settings."""
        if new is None:
            return
        self.config = new.config
        self.prompts = dict(new.prompts)
        self.durations = new.durations
        self.uris = leg_uris.LegUris(new.config.telephony, self.settings.sip, self.spec.via_edge)
        self.dids = {
            d.number: (d.entry or new.config.menu.entry) for d in new.config.telephony.dids
        }
        log.info("configuration generation %d in use (versions %s)", new.generation,
                 dict(new.versions))  # fmt: skip
        self._send_status({"status": "config", "generation": new.generation})

    # ------------------------------------------------------------ timers
    def _timers(self, now: float) -> None:
        conv = self.conv
        if conv is None:
            return
        agent, customer = self.legs.get("agent"), self.legs.get("caller")
        legs = LegsView(
            any_left=bool(self.legs or self.leaving),
            agent_ringing=agent is not None and not agent.confirmed,
            customer_ringing=customer is not None and not customer.confirmed,
            prompt_playing=self.media.prompt_player is not None,
        )
        for action in on_tick(conv, now, legs, next_media_check=self.next_media_check):
            if conv.close_at is not None and not isinstance(action, Finish):
                break  # the call ended on an earlier action: the rest would change nothing
            self._carry_out(conv, [action])

    def _check_rtp(self, conv: Conversation, now: float) -> None:
        """A caller that vanished without BYE sends no RTP: end the call after the timeout."""
        self.next_media_check = now + MEDIA_CHECK_EVERY
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
            self._end_call("rtp_timeout", forced_outcome(conv))

    # ------------------------------------------------------------ commands
    def _dial(self, role: str, uri: str) -> Leg:
        leg = Leg(self, role, self.account)
        leg.makeCall(uri, pj.CallOpParam(True))
        self.legs[role] = leg
        return leg

    def _handle_command(self, command: Command) -> None:
        conv = self.conv
        if command.type == USE_CONFIG:
            offered = command.data["engine_config"]
            self._use_config(self.config_switch.offered(offered, busy=conv is not None))
            return
        if command.type == CommandType.originate:
            self._originate(command)
            return
        if conv is None or conv.call_id != command.call_id or conv.close_at is not None:
            self._command_failed(command, "no such call on this slot")
            return
        agent = self.legs.get("agent")
        ringing = agent is not None and not agent.confirmed
        queues = self.config.queues.queues
        decided = on_command(
            conv,
            command.type,
            command.data,
            agent_ringing=ringing,
            queues=queues,
            now=time.monotonic(),
        )
        if decided is not None:
            for step in decided:
                if isinstance(step, CommandRefused):
                    self._command_failed(command, step.reason)
                else:
                    self._carry_out(conv, [step])
            return
        handler: dict[str, Callable[[Conversation, Command], None]] = {
            CommandType.offer: self._offer,
            CommandType.transfer: self._transfer,
            CommandType.listen: self._supervise,
            CommandType.whisper: self._supervise,
            CommandType.barge: self._supervise,
            CommandType.play: self._play_command,
            "announce": self._announce,
        }
        action = handler.get(command.type)
        if action is None:
            self._command_failed(command, f"unknown command type {command.type!r}")
            return
        action(conv, command)

    def _hang_up(self, leg: Leg, reason: str) -> None:
        """End one leg on purpose. Media first (``hangup`` frees the leg's conference port at
        once and pjmedia aborts the process on a stopTransmit to a freed port), then the
        hangup (a CANCEL while it rings). The leg leaves ``legs`` now, so a new leg may take
        its role at once, and waits in ``leaving`` until pjsua reports it DISCONNECTED."""
        if leg.gone:
            return
        leg.intentional_hangup = leg.intentional_hangup or reason
        if self.media.owns(leg):
            self.media.forget(leg.role, disconnect=True)
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

    def _offer(self, conv: Conversation, command: Command) -> None:
        if conv.state == CallPhase.offering:
            agent = self.legs.get("agent")
            if agent is not None and not agent.confirmed:
                # Routing gave the call to another agent (its own ring timer fired first):
                # the first phone stops ringing before the next one starts.
                self._withdraw_offer(conv, "ring_timeout")
        if conv.state != CallPhase.queued:
            self._command_failed(command, f"call is {conv.state}, not waiting in a queue")
            return
        uri = self.uris.agent(str(command.data.get("agent_uri", "")))
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
        conv.state = CallPhase.offering
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
        modes: dict[str, Callable[[Conversation, Command], None]] = {
            "blind": self._transfer_blind,
            "consult": self._consult_start,
            "complete": self._transfer_complete,
            "cancel": self._transfer_cancel,
        }
        mode = str(command.data.get("mode") or "blind")
        handler = modes.get(mode)
        if handler is None:
            self._command_failed(
                command, f"transfer mode {mode!r}: use blind, consult, complete or cancel"
            )
            return
        handler(conv, command)

    def _transfer_complete(self, conv: Conversation, command: Command) -> None:
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

    def _transfer_cancel(self, conv: Conversation, command: Command) -> None:
        if conv.consult is None:
            self._command_failed(command, "no consultation in progress")
        else:
            self._consult_end(conv, "cancelled")

    def _transfer_blind(self, conv: Conversation, command: Command) -> None:
        kind = str(command.data.get("kind", ""))
        target = str(command.data.get("target", ""))
        if conv.consult is not None:
            self._command_failed(command, "a consultation is in progress: complete or cancel it")
        elif kind == "queue":
            self._transfer_to_queue(conv, command, target)
        elif kind == "agent":
            self._drop_agent("transferred")
            conv.held = False
            conv.state = CallPhase.queued
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

    def _transfer_to_queue(self, conv: Conversation, command: Command, target: str) -> None:
        if target not in self.config.queues.queues:
            self._command_failed(command, f"queue {target!r} is not defined")
            return
        self._drop_agent("transferred")
        previous = conv.queue
        conv.held = False
        self.emit(EventType.transferred, data={"kind": "queue", "to": target})
        self._enqueue(conv, target, conv.priority, conv.skills, requeued_from=previous)

    def _transfer_number(self, conv: Conversation, target: str, command: Command | None) -> None:
        uri = self.uris.transfer_target(target)
        if uri is None:
            if command is not None:
                self._command_failed(command, f"{target!r} is not an allowed transfer target")
            else:
                log.error("menu transfer target %r not allowed", target)
                self._end_call("transfer_not_allowed", "failed")
            return
        self._drop_agent("transferred")
        conv.held = False
        conv.state = CallPhase.transferring
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
        if conv.state != CallPhase.bridged or "agent" not in self.legs:
            self._command_failed(command, "only a call connected to an agent can be consulted on")
            return
        if conv.consult is not None:
            self._command_failed(command, "a consultation is already in progress")
            return
        if kind == "agent":
            uri = self.uris.agent(target) if target else ""
            queue_cfg = self.config.queues.queues.get(conv.queue)
            ring = float(
                command.data.get("ring_timeout")
                or (queue_cfg.ring_timeout_seconds if queue_cfg else 15)
            )
        elif kind == "number":
            uri = self.uris.transfer_target(target) or ""
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
            agent_id=optional_int(command.data.get("agent_id")) if kind == "agent" else None,
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

    def _consult_end(
        self,
        conv: Conversation,
        reason: str,
        *,
        code: int = 0,
        detail: str = "",
        reconnect: bool = True,
    ) -> None:
        actions = consult_ended(
            conv,
            reason,
            code=code,
            detail=detail,
            reconnect=reconnect,
            agent_present="agent" in self.legs,
            wall_now=time.time(),
        )
        self._carry_out(conv, actions)

    def _consult_complete(self, conv: Conversation, *, by: str) -> None:
        """Hand the caller over: the agent (and a supervisor following them) leave, the
        target's leg becomes the call's agent leg, the caller is bridged to it."""
        consult = self._hand_over(conv)
        if consult is None:
            return
        if consult.kind == "number":
            conv.outcome = "transferred"
        self._rewire()
        self.emit(EventType.transferred, data=consult.handed_over(answered=True, by=by))
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
        conv.state = CallPhase.offering
        conv.offer_deadline = consult.deadline
        self._rewire()
        self.emit(EventType.transferred, data=consult.handed_over(answered=False, by="command"))

    def _hand_over(self, conv: Conversation) -> Consult | None:
        """The agent (and a supervisor following them) leave; the consultation's leg, with
        its media if any, becomes the call's agent leg. None when there is no such leg."""
        consult = conv.consult
        leg = self.legs.get("consult")
        if consult is None or leg is None:
            return None
        self._drop_agent("transferred")
        del self.legs["consult"]
        self.media.hand_over(leg)
        leg.role = "agent"
        self.legs["agent"] = leg
        conv.consult = None
        conv.held = False
        conv.agent_uri = consult.uri
        conv.agent_id = consult.agent_id
        return consult

    def _supervise(self, conv: Conversation, command: Command) -> None:
        if conv.state != CallPhase.bridged:
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
        conv.super_mode, conv.super_uri = mode, self.uris.agent(uri)
        try:
            self._dial("super", conv.super_uri)
        except pj.Error as exc:
            conv.super_mode = ""
            self._command_failed(command, f"dial failed: {exc.info()}")

    def _play_command(self, conv: Conversation, command: Command) -> None:
        outcome = str(command.data.get("outcome") or "")
        if outcome in LEAVING_OUTCOMES and conv.state == CallPhase.queued:
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
        if conv.state != CallPhase.queued:
            return  # offered or bridged meanwhile: nothing to announce
        if self.media.prompt_player is not None:
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
        agent_uri = self.uris.agent(str(command.data.get("agent_uri", "")))
        conv = Conversation(
            call_id=command.call_id or uuid.uuid4().hex,
            direction="out",
            caller=number,
            did="",
            state=CallPhase.originating,
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

    def _originate_survey(self, command: Command, number: str) -> None:
        """Automatic satisfaction survey: the customer only, through the outbound trunk."""
        if "error" in command.data:
            self._command_failed(command, str(command.data["error"]))
            return
        survey_spec = command.data.get("survey")
        if not isinstance(survey_spec, dict) or "survey_file" not in command.data:
            self._command_failed(command, "survey mode needs a survey object with prompt_zh")
            return
        question = PromptFile(
            str(command.data["survey_file"]), float(command.data.get("survey_duration", 0))
        )
        try:
            runner = survey.survey_runner(
                survey_spec, question, self.prompts["survey.thanks"], self.durations
            )
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            self._command_failed(command, f"survey: {exc}")
            return
        conv = Conversation(
            call_id=command.call_id or uuid.uuid4().hex,
            direction="out",
            caller=number,
            did="",
            state=CallPhase.originating,
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
        uri = self.uris.trunk(conv.caller, telephony.outbound_trunk)
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
    control: Connection | None = None,
    generation: int = 0,
) -> None:
    """Entry of a forked slot process (the parent already imported pjsua2)."""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {spec.name} %(levelname)s %(message)s"
    )
    engine = SlotEngine(spec, settings, config, prompts, status, control, generation)

    def _stop(_signum: int, _frame: Any) -> None:
        engine.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    wake_on_signals(spec.sip_host, spec.sip_port)  # a signal ends a long poll at once
    engine.run()
    # Leave without running the parent's atexit handlers (forked copy of the supervisor).
    os._exit(0)
