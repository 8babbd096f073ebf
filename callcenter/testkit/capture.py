"""What was sent over ``lo``: UDP datagrams to given ports, from an AF_PACKET socket (the
tests run as root), so a test can prove what a process was, and was not, sent."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

from callcenter.testkit.udp import ReceiveLoop

ETH_P_ALL = 0x0003


@dataclass(frozen=True)
class Datagram:
    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes


class LoopbackCapture(ReceiveLoop):
    """UDP datagrams sent over ``lo`` to any of ``ports`` (IPv4), in arrival order."""

    def __init__(self, ports: set[int]) -> None:
        self.ports = ports
        self.datagrams: list[Datagram] = []
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind(("lo", 0))
        super().__init__(sock, size=262144)

    def on_datagram(self, data: bytes, source: Any) -> None:
        # Loopback frames show up twice (outgoing and incoming): keep the outgoing copy.
        if source[2] != socket.PACKET_OUTGOING:
            return
        if len(data) < 14 + 20 or data[12:14] != b"\x08\x00":
            return
        ip = data[14:]
        header = (ip[0] & 0x0F) * 4
        if ip[9] != 17:  # UDP
            return
        sport, dport = struct.unpack("!HH", ip[header : header + 4])
        if dport in self.ports:
            self.datagrams.append(
                Datagram(
                    (socket.inet_ntoa(ip[12:16]), sport),
                    (socket.inet_ntoa(ip[16:20]), dport),
                    bytes(ip[header + 8 :]),
                )
            )

    @property
    def payloads(self) -> list[bytes]:
        return [d.payload for d in self.datagrams]

    def sip_messages(self) -> list[bytes]:
        return [p for p in self.payloads if p.startswith((b"SIP/2.0 ", b"INVITE ", b"ACK "))]
