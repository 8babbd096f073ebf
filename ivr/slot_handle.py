"""What the supervisor knows of one slot process: its address, its pipes, its status and the
call it carries (as the slot reported them)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from ivr.spec import SlotSpec


@dataclass
class SlotHandle:
    index: int
    spec: SlotSpec
    process: BaseProcess
    conn: Connection
    control: Connection | None = None  # supervisor -> slot: new configuration generations
    generation: int = 0  # the configuration generation the slot runs its next call with
    status: str = "starting"  # starting, ready, busy, stopping
    call: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    idle_since: float = field(default_factory=time.monotonic)
    reserved_until: float = 0.0
    needs_load_reset: bool = False

    @property
    def idle(self) -> bool:
        """Ready (or about to be) and carrying no call."""
        return self.status in ("starting", "ready") and not self.call
