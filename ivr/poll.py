"""How long a slot's engine thread may sleep in ``libHandleEvents``, and waking it on a signal.

Everything that needs the engine thread wakes its poll at once: pjsua2 callbacks and the
command reader send a CRLF datagram to the slot's own SIP port, pjsip's own timers (SIP
retransmissions) shorten the poll by themselves, and SIGTERM/SIGINT write a byte to that
port too (``wake_on_signals``). So the poll's timeout only has to honour the call's own
deadlines, which the engine loop checks after each poll (``call_core.on_tick``):

* an idle slot has none: it sleeps ``IDLE_POLL_MS`` (it woke 20 times a second before, for
  nothing: the larger part of an idle slot's CPU);
* a settled call (queued, ringing an agent, bridged; no prompt playing, nothing closing)
  has only coarse ones: the next RTP check (every second), the ring timeout, a
  consultation's ring timeout, the maximum duration;
* anything else (the menu's timeouts, a prompt's end, a call closing, legs still leaving)
  keeps the fine ``POLL_MS``.

Pure apart from ``wake_on_signals``; unit-tested in ``tests/engine/test_poll.py``.
"""

from __future__ import annotations

import signal
import socket

from ivr.call_core.state import CallPhase, Conversation

POLL_MS = 50  # the fine poll: menu timeouts and prompt ends are checked this often
IDLE_POLL_MS = 1000  # the longest sleep: idle slots, and settled calls between deadlines
SETTLED = (CallPhase.waiting, CallPhase.reserved, CallPhase.connected)


def poll_ms(
    conv: Conversation | None,
    now: float,
    *,
    next_media_check: float,
    prompt_playing: bool,
    loose_ends: bool,
) -> int:
    """The ``libHandleEvents`` timeout (ms) for this turn of the engine loop. ``now`` and the
    deadlines are monotonic seconds; ``loose_ends``: facts, commands, legs or objects still
    waiting for the engine thread (keep the fine poll)."""
    if loose_ends or prompt_playing:
        return POLL_MS
    if conv is None:
        return IDLE_POLL_MS
    if conv.clock.closed or conv.state not in SETTLED:
        return POLL_MS
    deadlines = [next_media_check, conv.clock.max_until]
    if conv.clock.ring_until is not None:
        deadlines.append(conv.clock.ring_until)
    if conv.consult is not None:
        if conv.consult.deadline is None:
            return POLL_MS  # a consultation in progress: keep it simple
        deadlines.append(conv.consult.deadline)
    wait_ms = int((min(deadlines) - now) * 1000) + 1
    return max(POLL_MS, min(IDLE_POLL_MS, wait_ms))


_wakers: list[socket.socket] = []  # kept open for the life of the process


def wake_on_signals(host: str, port: int) -> None:
    """Make a signal end the current ``libHandleEvents`` at once: Python's C-level signal
    handler writes the signal number to this socket, i.e. a 1-byte datagram to the slot's
    own SIP port, which pjsip reads (ending its poll) and drops as unparsable. Without it a
    SIGTERM would wait for the poll's timeout (Python runs handlers between bytecodes only).
    Main thread only (``signal.set_wakeup_fd``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.setblocking(False)
    signal.set_wakeup_fd(sock.fileno(), warn_on_full_buffer=False)
    _wakers.append(sock)
