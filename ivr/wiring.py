"""Who hears whom: the conference-bridge edges a call wants, free of pjsua2.

Ports are named by role ("caller", "agent", "super", "consult") or by player ("prompt",
"music") and "rec" for the recorder. An edge (source, sink) means the sink hears the source.
The slot connects what is wanted and not yet connected and disconnects the rest
(``ivr/media.py``); this module only decides. Unit-tested in tests/engine/test_call_core.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.call_core.state import CallPhase, Conversation

Edge = tuple[str, str]
WAITING_PHASES = (CallPhase.waiting, CallPhase.reserved, CallPhase.transferring)


@dataclass(frozen=True)
class WiringState:
    phase: CallPhase
    closed: bool = False  # the call ended: nothing is connected any more
    held: bool = False
    recording: bool = False  # a recorder exists and is not paused
    prompt_playing: bool = False
    consult: bool = False  # a consultation is in progress
    consult_answered: bool = False
    super_mode: str = ""  # "", listen, whisper or barge

    @classmethod
    def of(cls, conv: Conversation, *, recorder: bool, prompt_playing: bool) -> WiringState:
        return cls(
            phase=conv.state,
            closed=conv.clock.closed,
            held=conv.held,
            recording=recorder and not conv.recording.paused,
            prompt_playing=prompt_playing,
            consult=conv.consult is not None,
            consult_answered=conv.consult is not None and conv.consult.answered,
            super_mode=conv.agent.super_mode,
        )


def wanted_edges(state: WiringState) -> set[Edge]:
    """Every edge the call wants; edges to ports that do not exist (yet) are the caller's to
    drop (``present_edges``)."""
    if state.closed:
        return set()
    # A consultation: the caller is on hold (music); the agent hears the target's line
    # (ringback a trunk may send as early media, then the target) and, once answered,
    # talks to them. The caller never hears the two. The consultation is in the call's
    # recording (the center's people on this call), the hold music is not.
    talking = state.consult and state.consult_answered
    wanted = _what_the_caller_hears(state)
    if state.phase == CallPhase.connected and not state.held:
        wanted |= {("caller", "agent"), ("agent", "caller")}
    if state.consult:
        wanted.add(("consult", "agent"))
    if talking:
        wanted.add(("agent", "consult"))
    if state.recording:
        wanted |= _recorded(state, talking)
    if state.super_mode:
        wanted |= _supervisor_edges(state.super_mode, talking, state.recording)
    return wanted


def _what_the_caller_hears(state: WiringState) -> set[Edge]:
    """A prompt (recorded), else music while waiting or held; the agent is added apart."""
    if state.prompt_playing:
        return (
            {("prompt", "caller"), ("prompt", "rec")} if state.recording else {("prompt", "caller")}
        )
    if state.phase in WAITING_PHASES or state.held:
        return {("music", "caller")}
    return set()


def _recorded(state: WiringState, talking: bool) -> set[Edge]:
    edges = {("caller", "rec")}
    if state.phase == CallPhase.connected:
        edges.add(("agent", "rec"))
    if talking:
        edges.add(("consult", "rec"))
    return edges


def _supervisor_edges(mode: str, talking: bool, recording: bool) -> set[Edge]:
    """listen hears everyone; whisper also speaks to the agent; barge to everyone."""
    edges = {("caller", "super"), ("agent", "super")}
    if talking:
        edges.add(("consult", "super"))
    if mode in ("whisper", "barge"):
        edges.add(("super", "agent"))
    if mode == "barge":
        edges.add(("super", "caller"))
        if talking:
            edges.add(("super", "consult"))
        if recording:
            edges.add(("super", "rec"))
    return edges


def present_edges(wanted: set[Edge], ports: set[str] | frozenset[str]) -> set[Edge]:
    """The wanted edges whose two ports exist."""
    return {e for e in wanted if e[0] in ports and e[1] in ports}
