"""The slot's poll timeout (``ivr/poll.py``), without SIP (no lock needed): when the engine
thread may sleep long and when it must keep the fine poll, and a signal ending a poll."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from typing import Any

from ivr.call_core.state import CallPhase, Clock, Consult, Conversation
from ivr.poll import IDLE_POLL_MS, POLL_MS, poll_ms

NOW = 1000.0


def clock(*, max_until: float = NOW + 3600, **deadlines: float) -> Clock:
    return Clock(max_until=max_until, **deadlines)


def conversation(state: CallPhase, **fields: Any) -> Conversation:
    fields = {"clock": clock(), **fields}
    return Conversation(
        call_id="c1", direction="in", caller="13800138000", did="4008001234", state=state, **fields
    )


def poll(conv: Conversation | None, *, media_check: float = NOW + 0.6, **flags: bool) -> int:
    return poll_ms(
        conv,
        NOW,
        next_media_check=media_check,
        prompt_playing=flags.get("prompt_playing", False),
        loose_ends=flags.get("loose_ends", False),
    )


def at(expected_ms: int, got: int) -> bool:
    """The poll ends at the deadline, not before it (1 ms of float rounding allowed)."""
    return expected_ms <= got <= expected_ms + 1


def test_an_idle_slot_sleeps_long() -> None:
    assert poll(None) == IDLE_POLL_MS


def test_an_idle_slot_with_loose_ends_keeps_the_fine_poll() -> None:
    assert poll(None, loose_ends=True) == POLL_MS


def test_a_bridged_call_sleeps_until_its_next_rtp_check() -> None:
    assert at(600, poll(conversation(CallPhase.connected)))


def test_a_bridged_call_never_sleeps_past_its_maximum_duration() -> None:
    conv = conversation(CallPhase.connected, clock=clock(max_until=NOW + 0.2))
    assert at(200, poll(conv))


def test_a_ringing_agent_wakes_the_slot_at_the_ring_timeout() -> None:
    conv = conversation(CallPhase.reserved, clock=clock(ring_until=NOW + 0.3))
    assert at(300, poll(conv))


def test_a_consultation_ringing_wakes_the_slot_at_its_timeout() -> None:
    consult = Consult(kind="agent", to="1002", uri="sip:1002@x", agent_id=2, deadline=NOW + 0.1)
    assert at(100, poll(conversation(CallPhase.connected, consult=consult)))


def test_an_answered_consultation_keeps_the_fine_poll() -> None:
    consult = Consult(kind="agent", to="1002", uri="sip:1002@x", agent_id=2, deadline=None)
    assert poll(conversation(CallPhase.connected, consult=consult)) == POLL_MS


def test_a_past_deadline_still_polls_at_least_the_fine_poll() -> None:
    assert poll(conversation(CallPhase.waiting), media_check=NOW - 5) == POLL_MS


def test_the_poll_is_never_longer_than_the_idle_one() -> None:
    assert poll(conversation(CallPhase.waiting), media_check=NOW + 60) == IDLE_POLL_MS


def test_the_menu_keeps_the_fine_poll() -> None:
    assert poll(conversation(CallPhase.menu)) == POLL_MS


def test_a_playing_prompt_keeps_the_fine_poll() -> None:
    assert poll(conversation(CallPhase.connected), prompt_playing=True) == POLL_MS


def test_a_closing_call_keeps_the_fine_poll() -> None:
    assert poll(conversation(CallPhase.connected, clock=clock(close_at=NOW + 0.3))) == POLL_MS


def test_originating_and_transferring_keep_the_fine_poll() -> None:
    assert poll(conversation(CallPhase.originating)) == POLL_MS
    assert poll(conversation(CallPhase.transferring)) == POLL_MS


def test_a_signal_reaches_the_socket_as_a_datagram() -> None:
    """SIGTERM in a process that called wake_on_signals sends one byte to the port it names
    (the slot's SIP port, where it ends libHandleEvents); a plain UDP socket stands in."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(30)
        port = listener.getsockname()[1]
        code = textwrap.dedent(f"""
            import signal, sys, time
            from ivr.poll import wake_on_signals
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            wake_on_signals("127.0.0.1", {port})
            print("ready", flush=True)
            time.sleep(60)
        """)
        child = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, env=dict(os.environ)
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"ready"
            child.send_signal(signal.SIGTERM)
            data, _ = listener.recvfrom(16)
            assert data == bytes([signal.SIGTERM])
            assert child.wait(30) == 0
        finally:
            child.kill()
            child.wait()
