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

The engine only pumps: each fact, command and tick goes to the call core
(``ivr/call_core/``), which decides and returns actions; the engine carries them out against
pjsua2 (legs, ``ivr/media.py`` wired by ``ivr/wiring.py``), the recording files
(``ivr/recording_files.py``) and the streams. Nothing pjsua2 leaves the engine thread.
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
from ivr import leg_uris, recording_files
from ivr.call_core import actions as act
from ivr.call_core import ending, inbound, leg_facts, offer, transfer
from ivr.call_core.commands import on_command
from ivr.call_core.originate import dial_customer, originate
from ivr.call_core.state import (
    MEDIA_CHECK_EVERY,
    CallSetup,
    CommandIn,
    Conversation,
    LegsView,
    forced_outcome,
)
from ivr.call_core.timers import on_tick
from ivr.leg_table import LegTable
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
from ivr.menu import Action, Emit, PlayPrompts, StopPrompt
from ivr.poll import POLL_MS, poll_ms, wake_on_signals
from ivr.prompts import PromptFile
from ivr.slot_streams import USE_CONFIG, SlotStreams
from ivr.spec import SlotSpec
from ivr.wiring import WiringState

log = logging.getLogger("ivr.slot")

_USER_RE = re.compile(r"sips?:([^@;>]+)@")


def user_part(uri: str) -> str:
    match = _USER_RE.search(uri)
    return match.group(1) if match else ""


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def call_setup(
    config: CenterConfig, prompts: dict[str, PromptFile], settings: Settings, spec: SlotSpec
) -> CallSetup:
    """What the call core reads of one configuration generation."""
    return CallSetup(
        uris=leg_uris.LegUris(config.telephony, settings.sip, spec.via_edge),
        queues=config.queues.queues,
        prompts=prompts,
        menu=config.menu,
        dids={d.number: (d.entry or config.menu.entry) for d in config.telephony.dids},
        max_call_seconds=settings.sip.max_call_seconds,
        short_abandon_seconds=config.queues.short_abandon_seconds,
    )


class SlotEngine:
    """Everything on the engine thread of one slot process: it pumps facts, commands and
    ticks into the call core and carries out the actions the core returns."""

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
        self.setup = call_setup(config, prompts, settings, spec)
        # a new configuration generation waits for the call in progress to end
        self.config_switch = SlotConfigSwitch(generation)
        self.facts: deque[LegFact] = deque()
        self.stop = threading.Event()
        self.streams = SlotStreams(spec, settings, status, self.stop, control)
        self.commands = self.streams.commands
        self.graveyard: list[Any] = []
        self.conv: Conversation | None = None
        self.media = CallMedia(prompts["hold.music"].path, self.graveyard)
        self.legs = LegTable(self.media, self.graveyard)
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
        loose = bool(
            self.facts
            or self.graveyard
            or self.legs.leaving
            or (self.legs.by_role and not self.conv)
        )
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
        if self.conv is not None and not self.conv.clock.closed:
            self._end_call(self.conv, act.EndCall("shutdown", "failed"))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and (self.conv is not None or self.legs.any_left()):
            self.ep.libHandleEvents(POLL_MS)
            self._step()
        stragglers = self.legs.forget()
        for leg in stragglers:
            with contextlib.suppress(pj.Error):
                leg.hangup(pj.CallOpParam(True))
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
        self,
        type_: str,
        node: str = "",
        data: dict[str, Any] | None = None,
        at: float | None = None,
    ) -> None:
        if self.conv is None:
            return
        event = CallEvent(
            type=str(type_),
            call_id=self.conv.call_id,
            slot=self.spec.name,
            node=node,
            data=data or {},
            **({"at": iso(at)} if at is not None else {}),
        )
        self.streams.publish(event)

    def _command_failed(
        self, command: Command, reason: str, refused: act.CommandRefused | None = None
    ) -> None:
        # kind / mode / agent_id let routing undo what it prepared (a reserved transfer target)
        context: dict[str, Any] = {
            k: command.data[k] for k in ("kind", "mode", "agent_id") if k in command.data
        }
        name: str = command.type
        if refused is not None and refused.command:
            name, context = refused.command, dict(refused.context or {})
        event = CallEvent(
            type=EventType.command_failed,
            call_id=command.call_id,
            slot=self.spec.name,
            data={"command_id": command.id, "command": name, "reason": reason, **context},
        )
        self.streams.publish(event)

    def _legs_view(self) -> LegsView:
        return self.legs.view(prompt_playing=self.media.prompt_player is not None)

    # ------------------------------------------------------------ incoming calls
    def incoming(self, account: pj.Account, call_id: int, source: str) -> None:
        leg = Leg(self, "caller", account, call_id)
        info = leg.getInfo()
        did = user_part(info.localUri)
        busy = self.conv is not None or self.legs.any_left()
        allowed = self.spec.source_allowed(source)
        refusal = inbound.refusal(did, self.setup, source_allowed=allowed, busy=busy)
        if refusal is not None:
            log.warning("refusing INVITE from %s to %s: %s", source, did, refusal.why)
            op = pj.CallOpParam()
            op.statusCode = refusal.code
            leg.hangup(op)
            self.graveyard.append(leg)
            return
        self.legs.add(leg)
        conv, actions = inbound.arrived(
            uuid.uuid4().hex,
            user_part(info.remoteUri),
            did,
            self.setup,
            sip_call_id=info.callIdString,
            source=source,
            now=time.monotonic(),
            wall_now=time.time(),
        )
        self.conv = conv
        self._carry_out(conv, actions)  # its status and call_arrived (nothing pjsua2)
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
        if leg.gone or not self.legs.is_current(leg):
            return
        if leg.media_dead:
            return
        first = leg.media_index is None
        leg.media_index = index
        self.media.attach_leg(leg, index, renegotiated=not first)
        conv = self.conv
        if conv is None:
            return
        now = time.monotonic()
        self._carry_out(conv, leg_facts.on_media_ready(conv, leg.role, first=first, now=now))

    def _leg_state(self, leg: Leg, state: int, code: int, reason: str) -> None:
        leg.last_code = code or leg.last_code
        if state == pj.PJSIP_INV_STATE_EARLY and not leg.ringing:
            leg.ringing = True
            if self.conv is not None and self.legs.is_current(leg):
                self._carry_out(self.conv, leg_facts.on_leg_ringing(self.conv, leg.role))
        elif state == pj.PJSIP_INV_STATE_CONFIRMED and not leg.confirmed:
            leg.confirmed = True
            self._leg_confirmed(leg)
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED and not leg.gone:
            leg.gone = True
            self._leg_disconnected(leg, code, reason)

    def _leg_confirmed(self, leg: Leg) -> None:
        if not self.legs.is_current(leg):
            # answered just as we cancelled it (200 OK crossed our CANCEL): end it again
            with contextlib.suppress(pj.Error):
                leg.hangup(pj.CallOpParam(True))
        elif self.conv is not None:
            self._carry_out(self.conv, leg_facts.on_leg_answered(self.conv, leg.role))

    def _leg_disconnected(self, leg: Leg, code: int, reason: str) -> None:
        current = self.legs.disconnected(leg)
        conv = self.conv
        if conv is None or not current:
            return
        gone = leg_facts.LegGone(
            role=leg.role,
            confirmed=leg.confirmed,
            code=code,
            reason=reason,
            intentional=bool(leg.intentional_hangup),
        )
        short = self.setup.short_abandon_seconds
        self._carry_out(
            conv, leg_facts.on_leg_gone(conv, gone, now=time.time(), short_abandon_seconds=short)
        )

    def _leg_dtmf(self, leg: Leg, digit: str, method: int, at: float) -> None:
        conv = self.conv
        if conv is None or leg.role != "caller":
            return
        self._carry_out(conv, leg_facts.on_digit(conv, digit, method, now=time.monotonic(), at=at))

    # ------------------------------------------------------------ commands
    def _handle_command(self, command: Command) -> None:
        conv = self.conv
        if command.type == USE_CONFIG:
            offered = command.data["engine_config"]
            self._use_config(self.config_switch.offered(offered, busy=conv is not None))
            return
        now, wall_now = time.monotonic(), time.time()
        if command.type == CommandType.originate:
            new, actions = originate(
                command.call_id or uuid.uuid4().hex,
                command.data,
                self.setup,
                busy=conv is not None or bool(self.legs.by_role),
                now=now,
                wall_now=wall_now,
            )
            if new is None:
                for refused in actions:
                    if isinstance(refused, act.CommandRefused):
                        self._command_failed(command, refused.reason, refused)
                return
            self.conv = new
            self._carry_out(new, actions, command)
            return
        if conv is None or conv.call_id != command.call_id or conv.clock.closed:
            self._command_failed(command, "no such call on this slot")
            return
        cmd = CommandIn(command.type, command.data, self._legs_view(), self.setup, now, wall_now)
        self._carry_out(conv, on_command(conv, cmd), command)

    # ------------------------------------------------------------ carrying out actions
    def _carry_out(
        self, conv: Conversation, actions: act.Actions, command: Command | None = None
    ) -> None:
        """Carry out the call core's actions in order; ``command``: the one they answer
        (its refusals become ``command_failed``)."""
        for action in actions:
            if isinstance(action, act.CommandRefused):
                if command is not None:
                    self._command_failed(command, action.reason, action)
                else:
                    log.warning("call %s: %s", conv.call_id, action.reason)
            elif isinstance(action, act.Dial):
                self._dial(conv, action, command)
            else:
                self._action_handlers[type(action)](conv, action)

    def _core(self, conv: Conversation, actions: act.Actions) -> None:
        self._carry_out(conv, actions)

    def _build_action_handlers(self) -> dict[type, Callable[[Conversation, Any], None]]:
        handlers: dict[type[act.CallAction], Callable[[Conversation, Any], None]] = {
            act.EmitEvent: lambda _conv, a: self.emit(a.type, a.node, a.data, a.at),
            act.ReportStatus: lambda _conv, a: self._send_status(a.status),
            act.EndCall: self._end_call,
            act.TearDown: lambda _conv, _a: self._tear_down(),
            act.Finish: self._finish,
            act.AgentMissed: lambda conv, a: self._core(conv, offer.agent_missed(conv, a.reason)),
            act.WithdrawOffer: lambda conv, a: self._core(
                conv, offer.withdraw_offer(conv, a.reason, self._legs_view())
            ),
            act.ConsultEnd: self._consult_end,
            act.ConsultComplete: lambda conv, a: self._core(
                conv, transfer.consult_complete(conv, by=a.by, consult_leg="consult" in self.legs)
            ),
            act.DialCustomer: lambda conv, _a: self._core(
                conv, dial_customer(conv, self.setup, now=time.monotonic())
            ),
            act.Rewire: lambda _conv, _a: self._rewire(),
            act.Play: lambda _conv, a: self._play(list(a.paths), a.duration),
            act.StopPrompt: lambda _conv, _a: self._stop_prompt(),
            act.RunMenu: lambda _conv, a: self._run_actions(list(a.actions)),
            act.HangupLeg: lambda _conv, a: self.legs.cancel(a.role),
            act.DropLeg: lambda _conv, a: self.legs.drop(a.role, a.reason),
            act.DropAgent: lambda _conv, a: self.legs.drop_agent(a.reason),
            act.PromoteConsult: lambda _conv, _a: self.legs.promote_consult(),
            act.CheckMedia: lambda conv, a: self._check_rtp(conv, a.at),
            act.StartRecording: lambda conv, _a: self._start_recording(conv),
            act.ScheduleAnnouncements: self._schedule_announcements,
            act.StopAnnouncements: lambda _conv, _a: setattr(self, "queued_view", {}),
            act.DeferAnnouncement: self._defer_announcement,
        }
        return handlers

    def _dial(self, conv: Conversation, action: act.Dial, command: Command | None) -> None:
        leg = Leg(self, action.role, self.account)
        try:
            leg.makeCall(action.uri, pj.CallOpParam(True))
        except pj.Error as exc:
            failed = leg_facts.on_dial_failed(
                conv, action.role, str(exc.info()), legs=self._legs_view(), wall_now=time.time()
            )
            self._carry_out(conv, failed, command)
            return
        self.legs.add(leg)

    def _consult_end(self, conv: Conversation, action: act.ConsultEnd) -> None:
        ended = transfer.consult_ended(
            conv,
            action.reason,
            code=action.code,
            reconnect=action.reconnect,
            agent_present="agent" in self.legs,
            wall_now=time.time(),
        )
        self._carry_out(conv, ended)

    def _schedule_announcements(
        self, conv: Conversation, _action: act.ScheduleAnnouncements
    ) -> None:
        queue_cfg = self.setup.queues.get(conv.routing.queue)
        self.queued_view = offer.announcement_view(conv, queue_cfg, time.monotonic())

    def _defer_announcement(self, conv: Conversation, action: act.DeferAnnouncement) -> None:
        view = self.queued_view
        if view and view.get("call_id") == conv.call_id:
            view["next_at"] = time.monotonic() + action.seconds

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
            else:
                decided = inbound.menu_outcome(
                    conv, action, self.setup, now=time.monotonic(), wall_now=time.time()
                )
                self._carry_out(conv, decided)

    def _menu_media(self, conv: Conversation, actions: list[Action]) -> tuple[str, list[str]]:
        """act.Play or stop the menu's prompts; the moment a prompt started (ISO) or "", and the
        names of the files played (rendered prompts are named by a hash of their text)."""
        prompt_at, played = "", []
        for action in actions:
            if isinstance(action, PlayPrompts):
                files = [conv.prompts.get(k) or self.setup.prompts.get(k) for k in action.keys]
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

    # ------------------------------------------------------------ media
    def _play(self, paths: list[str], duration: float) -> None:
        self._stop_prompt()
        if not self.media.start_prompt(paths):
            return
        assert self.conv is not None
        self.conv.clock.prompt(time.monotonic() + duration)
        self._rewire()

    def _stop_prompt(self) -> None:
        if not self.media.stop_prompt():
            return
        if self.conv is not None:
            self.conv.clock.prompt_over()
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

    def _start_recording(self, conv: Conversation) -> None:
        if self.media.recorder is not None:
            return
        path = str(recording_files.new_path(self.settings.recordings_dir, conv.call_id))
        self.media.start_recorder(path)
        started = ending.recording_started(conv, path, now=time.monotonic(), wall_now=time.time())
        self._carry_out(conv, started)

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
            self._end_call(conv, act.EndCall("rtp_timeout", forced_outcome(conv)))

    # ------------------------------------------------------------ ending
    def _end_call(self, conv: Conversation, action: act.EndCall) -> None:
        ended = ending.end_call(
            conv,
            action.reason,
            action.outcome,
            self._legs_view(),
            now=time.monotonic(),
            wall_now=time.time(),
        )
        self._carry_out(conv, ended)

    def _tear_down(self) -> None:
        # Disconnect everything while every port is valid, then hang up (which frees ports).
        self.media.disconnect_all()
        self.legs.drop_all("call_ended")
        # Free the recorder now; its header is written while we keep pumping events.
        self.media.release_players()

    def _finish(self, conv: Conversation, action: act.Finish) -> None:
        if action.forced:  # a leg never confirmed its end: given up on
            self.legs.forget()
        path = conv.recording.path
        recording = recording_files.stopped_facts(path) if path else None
        self._carry_out(conv, ending.finished(conv, recording, wall_now=time.time()))
        self.conv = None
        self.media.clear()
        self._use_config(self.config_switch.call_ended())
        self._send_status({"status": "idle", "call_id": conv.call_id})

    def _use_config(self, new: EngineConfig | None) -> None:
        """Take a configuration generation (never while a call is in progress): the next
        call gets its menu, prompts, DIDs, dial plan and queue settings."""
        if new is None:
            return
        self.setup = call_setup(new.config, dict(new.prompts), self.settings, self.spec)
        log.info("configuration generation %d in use (versions %s)", new.generation,
                 dict(new.versions))  # fmt: skip
        self._send_status({"status": "config", "generation": new.generation})

    # ------------------------------------------------------------ timers
    def _timers(self, now: float) -> None:
        conv = self.conv
        if conv is None:
            return
        legs = self._legs_view()
        for action in on_tick(conv, now, legs, next_media_check=self.next_media_check):
            if conv.clock.closed and not isinstance(action, act.Finish):
                break  # the call ended on an earlier action: the rest would change nothing
            self._carry_out(conv, [action])


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
