"""What the supervisor hands a slot process: its name, addresses and who may call it.

Free of pjsua2, so the supervisor (which must not create pjsua2 objects before forking)
can build and type it without importing the slot.
"""

from __future__ import annotations

from dataclasses import dataclass


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

    def source_allowed(self, source: str) -> bool:
        """Whether an INVITE from ``source`` ("ip:port") may reach this slot."""
        host = source.rsplit(":", 1)[0]
        return any(entry in (source, host) for entry in self.allow_from)
