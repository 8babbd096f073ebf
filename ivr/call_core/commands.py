"""The commands routing sends a call in progress (``originate`` is ``originate.py``'s):
each decided here, without SIP, into actions the slot carries out."""

from __future__ import annotations

from collections.abc import Callable

from callcenter.streams import CommandType, EventType
from ivr.call_core.actions import (
    Actions,
    CommandRefused,
    ConsultEnd,
    DeferAnnouncement,
    Dial,
    EmitEvent,
    EndCall,
    Play,
    Rewire,
    StopAnnouncements,
)
from ivr.call_core.offer import drop_agent, enqueue, offer, withdraw_offer
from ivr.call_core.state import (
    BUSY_WITH_CONSULT,
    LEAVING_OUTCOMES,
    MAX_LEGS,
    CallPhase,
    CommandIn,
    Conversation,
    forced_outcome,
    optional_int,
)
from ivr.call_core.transfer import transfer

ANNOUNCE = "announce"  # the command reader's own: a waiting caller's position announcement


def on_command(conv: Conversation, cmd: CommandIn) -> Actions:
    """A command for this call (it is in progress: not ended, the same call id)."""
    handler = _COMMANDS.get(cmd.type)
    if handler is None:
        return [CommandRefused(f"unknown command type {cmd.type!r}")]
    return handler(conv, cmd)


def _hangup(conv: Conversation, cmd: CommandIn) -> Actions:
    by_agent = optional_int(cmd.data.get("agent_id"))
    if conv.consult is not None and by_agent is not None and by_agent == conv.consult.agent_id:
        # the consultation target's desktop hangs up: their part ends, not the call
        return [ConsultEnd("target_hung_up")]
    return [EndCall("command_hangup", forced_outcome(conv))]


def _hold(conv: Conversation, _cmd: CommandIn) -> Actions:
    if conv.consult is not None:
        return [CommandRefused(BUSY_WITH_CONSULT)]
    if conv.state != CallPhase.connected or conv.held:
        return [CommandRefused("only a connected call can be held")]
    conv.held = True
    return [Rewire(), EmitEvent(EventType.held)]


def _unhold(conv: Conversation, _cmd: CommandIn) -> Actions:
    if conv.consult is not None:
        return [CommandRefused(BUSY_WITH_CONSULT)]
    if not conv.held:
        return [CommandRefused("call is not on hold")]
    conv.held = False
    return [Rewire(), EmitEvent(EventType.unheld)]


def _recording_pause(conv: Conversation, cmd: CommandIn) -> Actions:
    """PCI pause/resume: the recorder is disconnected (``ivr/wiring.py``), so the span is
    absent from the file; the events mark where, for the recording's metadata."""
    pause = cmd.type == CommandType.pause_recording
    recording = conv.recording
    if not recording.active:
        return [CommandRefused("this call is not being recorded")]
    if conv.clock.closed:
        return [CommandRefused("the call has ended")]
    if pause == recording.paused:
        already = "the recording is already paused" if pause else "the recording is not paused"
        return [CommandRefused(already)]
    now = cmd.now
    data = {
        "recording_id": recording.id,
        "offset_s": recording.offset(now),
        "by": optional_int(cmd.data.get("agent_id")),
    }
    if pause:
        recording.pause(now)
        return [Rewire(), EmitEvent(EventType.recording_paused, data)]
    span = recording.resume(now)
    return [Rewire(), EmitEvent(EventType.recording_resumed, {**data, "paused_s": span})]


def _offer(conv: Conversation, cmd: CommandIn) -> Actions:
    uri = cmd.setup.uris.agent(str(cmd.data.get("agent_uri", "")))
    ring = cmd.setup.ring_seconds(conv.routing.queue, cmd.data)
    return offer(conv, cmd.data, uri=uri, ring=ring, legs=cmd.legs, now=cmd.now)


def _cancel_offer(conv: Conversation, cmd: CommandIn) -> Actions:
    """Routing withdrew an offer (its ring timer fired before ours): stop that phone."""
    agent_id = optional_int(cmd.data.get("agent_id"))
    reason = str(cmd.data.get("reason") or "withdrawn")
    consult = conv.consult
    if consult is not None and not consult.answered and consult.agent_id == agent_id:
        return [ConsultEnd("no_answer")]
    offered = conv.state in (CallPhase.reserved, CallPhase.originating)
    if cmd.legs.agent_ringing and offered and conv.agent.id == agent_id:
        return withdraw_offer(conv, reason, cmd.legs)
    return [CommandRefused(f"no phone is ringing for agent {agent_id} on this call")]


def _requeue(conv: Conversation, cmd: CommandIn) -> Actions:
    target = str(cmd.data.get("queue", ""))
    if target not in cmd.setup.queues:
        return [CommandRefused(f"queue {target!r} is not defined")]
    if conv.state not in (CallPhase.waiting, CallPhase.reserved):
        return [CommandRefused(f"call is {conv.state.value}, not waiting")]
    conv.clock.ring_over()
    ask = conv.routing
    return [
        drop_agent(conv, "requeued"),
        *enqueue(
            conv, target, ask.priority, ask.skills, requeued_from=ask.queue, wall_now=cmd.wall_now
        ),
    ]


def _supervise(conv: Conversation, cmd: CommandIn) -> Actions:
    """listen / whisper / barge: a supervisor's phone joins (or switches mode)."""
    if conv.state != CallPhase.connected:
        return [CommandRefused("supervisors join connected calls only")]
    mode = str(cmd.type)
    uri = str(cmd.data.get("supervisor_uri", ""))
    agent = conv.agent
    if agent.supervised and "super" in cmd.legs.roles:
        agent.switch_mode(mode)  # listen/whisper/barge on the same leg
        joined = {"mode": mode, "uri": agent.super_uri}
        return [Rewire(), EmitEvent(EventType.supervisor_joined, joined)]
    if not uri:
        return [CommandRefused("supervisor_uri missing")]
    if cmd.legs.lines >= MAX_LEGS:
        return [CommandRefused(f"no line left for a supervisor ({MAX_LEGS} per slot)")]
    agent.supervise(mode, cmd.setup.uris.agent(uri))
    return [Dial("super", agent.super_uri)]


def _play(conv: Conversation, cmd: CommandIn) -> Actions:
    """Routing plays the caller a prompt or a rendered file; ``hangup_after``: it is the
    last thing they hear."""
    data, prompts = cmd.data, cmd.setup.prompts
    actions: Actions = []
    outcome = str(data.get("outcome") or "")
    if outcome in LEAVING_OUTCOMES and conv.state == CallPhase.waiting:
        # Routing's last word to a waiting caller (call-back confirmed, nobody on duty):
        # they no longer wait, so no position announcements, and their hang-up is no
        # abandon; the call ends with this outcome.
        conv.outcome = outcome
        actions.append(StopAnnouncements())
    hangup_after = bool(data.get("hangup_after"))
    key = str(data.get("prompt", ""))
    failure = ""
    if "error" in data:
        failure = f"announcement not rendered: {data['error']}"
    elif "file" not in data and key not in prompts:
        failure = f"unknown prompt {key!r}"
    if failure:
        actions.append(CommandRefused(failure))
        if hangup_after:  # nothing to wait for: the caller would only hear music
            actions.append(EndCall("message_failed", conv.outcome or "failed"))
        return actions
    if "file" in data:
        actions.append(Play((str(data["file"]),), float(data.get("duration", 0))))
    else:
        actions.append(Play((prompts[key].path,), prompts[key].duration))
    # The message is the last thing the caller hears: hang up when it has played.
    conv.hangup_after_prompt = conv.hangup_after_prompt or hangup_after
    return actions


def _announce(conv: Conversation, cmd: CommandIn) -> Actions:
    """A waiting caller's position announcement (the command reader's schedule)."""
    if conv.state != CallPhase.waiting:
        return []  # offered or bridged meanwhile: nothing to announce
    if cmd.legs.prompt_playing:
        return [DeferAnnouncement()]  # e.g. routing's own announcement: try again shortly
    prompts = cmd.setup.prompts
    keys = [k for k in cmd.data.get("keys", []) if k in prompts]
    announced = {
        "queue": conv.routing.queue,
        "position": cmd.data["position"],
        "expected_wait": cmd.data["expected_wait"],
        "source": cmd.data["source"],
    }
    return [
        Play(tuple(prompts[k].path for k in keys), sum(prompts[k].duration for k in keys)),
        EmitEvent(EventType.announced, announced),
    ]


_COMMANDS: dict[str, Callable[[Conversation, CommandIn], Actions]] = {
    CommandType.hangup: _hangup,
    CommandType.hold: _hold,
    CommandType.unhold: _unhold,
    CommandType.pause_recording: _recording_pause,
    CommandType.resume_recording: _recording_pause,
    CommandType.offer: _offer,
    CommandType.cancel_offer: _cancel_offer,
    CommandType.requeue: _requeue,
    CommandType.transfer: transfer,
    CommandType.listen: _supervise,
    CommandType.whisper: _supervise,
    CommandType.barge: _supervise,
    CommandType.play: _play,
    ANNOUNCE: _announce,
}
