"""What every benchmark's measuring process shares."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


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
