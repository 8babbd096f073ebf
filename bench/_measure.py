"""What every benchmark's measuring process shares: percentiles, a free loopback port, and
keeping its own garbage collector out of what it times.

Script benchmarks (``python bench/x.py``) import it as ``_measure``; the ``-m bench.x``
ones as ``bench._measure``."""

from __future__ import annotations

import contextlib
import gc
import socket
from collections.abc import Iterator


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile, ``fraction`` in 0..1 (0.99 for p99); NaN when empty."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 (benchmark servers listen on loopback only)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The measuring process's own garbage collector off while it times.

    A benchmark process imports the whole application and holds the replies it parsed: a
    full collection in it took 100-120 ms, during which every reply in flight waited unread
    and came out as a 100-250 ms "server" latency. Collect first (outside any timing), then
    pause collection until the timed loop ends."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
