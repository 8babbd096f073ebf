"""A hostile agent softphone and a loopback packet capture, for the reply-SDP tests.

``HostileAgent`` is a UAS on a UDP socket that answers INVITEs with the exact bytes it is
given (SIPp scenarios are XML, which cannot carry a NUL byte). ``LoopbackCapture`` records
the UDP payloads sent to given ports on ``lo`` (an AF_PACKET socket: the tests run as root),
so a test can prove what a slot process was, and was not, sent.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003


@dataclass
class ReplyPlan:
    """What the agent answers an INVITE with: optional provisional replies, then a final one.

    Each reply is (status line text, extra headers, body)."""

    provisional: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    final: tuple[str, dict[str, str], bytes] = ("200 OK", {}, b"")


class HostileAgent:
    """An agent's softphone at ``host:port`` that answers with a :class:`ReplyPlan`."""

    def __init__(self, host: str, port: int, user: str, plan: ReplyPlan) -> None:
        self.host, self.port, self.user, self.plan = host, port, user, plan
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.received: list[str] = []  # request methods, in order
        self._stop = threading.Event()
        self._acked = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            match = re.match(r"([A-Z]+) \S+ SIP/2\.0\r\n", text)
            if not match:
                continue
            method = match.group(1)
            self.received.append(method)
            if method == "INVITE":
                threading.Thread(target=self._answer, args=(text, source), daemon=True).start()
            elif method == "ACK":
                self._acked.set()
            elif method in ("BYE", "CANCEL"):
                self.sock.sendto(self._reply(text, "200 OK", {}, b""), source)

    def _answer(self, invite: str, source: tuple[str, int]) -> None:
        for status, headers, body in self.plan.provisional:
            self.sock.sendto(self._reply(invite, status, headers, body), source)
            time.sleep(0.2)
        status, headers, body = self.plan.final
        final = self._reply(invite, status, headers, body)
        # A 2xx is retransmitted until the ACK (RFC 3261 13.3.1.4), here for up to 4 s.
        deadline = time.monotonic() + 4
        while not self._acked.is_set() and time.monotonic() < deadline:
            self.sock.sendto(final, source)
            self._acked.wait(0.5)

    def _reply(self, request: str, status: str, extra: dict[str, str], body: bytes) -> bytes:
        head, _, _ = request.partition("\r\n\r\n")
        lines = head.split("\r\n")[1:]
        copied = [
            line
            for line in lines
            if line.split(":", 1)[0].strip().lower()
            in ("via", "from", "call-id", "cseq", "record-route")
        ]
        to = next(line for line in lines if line.lower().startswith("to:"))
        if ";tag=" not in to:
            to += ";tag=hostile-agent"
        headers = [
            *copied,
            to,
            f"Contact: <sip:{self.user}@{self.host}:{self.port}>",
            *(f"{name}: {value}" for name, value in extra.items()),
        ]
        if not any(name.lower() == "content-length" for name in extra):
            headers.append(f"Content-Length: {len(body)}")
        return (f"SIP/2.0 {status}\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode() + body


@dataclass(frozen=True)
class Datagram:
    source: tuple[str, int]
    destination: tuple[str, int]
    payload: bytes


class LoopbackCapture:
    """UDP datagrams sent over ``lo`` to any of ``ports`` (IPv4), in arrival order."""

    def __init__(self, ports: set[int]) -> None:
        self.ports = ports
        self.datagrams: list[Datagram] = []
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, meta = self.sock.recvfrom(262144)
            except TimeoutError:
                continue
            except OSError:
                return
            # Loopback frames show up twice (outgoing and incoming): keep the outgoing copy.
            if meta[2] != socket.PACKET_OUTGOING:
                continue
            if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            header = (ip[0] & 0x0F) * 4
            if ip[9] != 17:  # UDP
                continue
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
