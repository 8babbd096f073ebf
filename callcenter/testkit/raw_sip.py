"""Hand-built SIP over UDP, both ways: :class:`RawSip` sends requests no well-behaved client
would send (NUL bytes, malformed headers) and reads the final answer; :class:`HostileAgent`
answers INVITEs with the exact bytes it is given. SIPp cannot do either: its scenarios are
XML, which cannot carry a NUL byte."""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from callcenter.testkit.udp import ReceiveLoop, udp_socket

_REQUEST = re.compile(r"([A-Z]+) \S+ SIP/2\.0\r\n")
_RESPONSE = re.compile(r"SIP/2\.0 (\d{3}) ")


def headers(message: str) -> list[tuple[str, str]]:
    """(name, value) of each header line of a SIP message, in order (no folding)."""
    head = message.partition("\r\n\r\n")[0]
    found = []
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        found.append((name.strip(), value.strip()))
    return found


@dataclass
class RawResponse:
    status: int
    text: str

    def header(self, name: str) -> str:
        for key, value in headers(self.text):
            if key.lower() == name.lower():
                return value
        return ""


class RawSip:
    """A UAC bound to one loopback address that sends to ``target`` and reads replies until a
    final one."""

    def __init__(self, host: str, port: int, target: tuple[str, int]) -> None:
        self.host, self.port, self.target = host, port, target
        self.sock = udp_socket(host, port)
        self.sock.settimeout(0.2)

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def final(self, data: bytes, timeout: float = 3.0) -> RawResponse | None:
        """Send, then wait for the final response to it (None: no answer)."""
        self.drain()
        self.send(data)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                packet, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            text = packet.decode("utf-8", errors="replace")
            match = _RESPONSE.match(text)
            if match and int(match[1]) >= 200:
                return RawResponse(int(match[1]), text)
        return None

    def drain(self) -> None:
        while True:
            try:
                self.sock.recvfrom(65535)
            except TimeoutError:
                return


def sip_request(
    method: str,
    target: str,
    local: tuple[str, int],
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    content_type: str | None = "application/sdp",
) -> bytes:
    """One request as bytes; Content-Length is the body's real length unless a header sets it."""
    host, port = local
    tag = uuid.uuid4().hex[:8]
    lines = {
        "Via": f"SIP/2.0/UDP {host}:{port};branch=z9hG4bK{uuid.uuid4().hex}",
        "From": f"<sip:13800138000@{host}:{port}>;tag={tag}",
        "To": f"<{target}>",
        "Call-ID": f"{uuid.uuid4().hex}@{host}",
        "CSeq": f"1 {method}",
        "Contact": f"<sip:13800138000@{host}:{port}>",
        "Max-Forwards": "70",
    }
    if body and content_type:
        lines["Content-Type"] = content_type
    lines.update(headers or {})
    lines.setdefault("Content-Length", str(len(body)))
    head = f"{method} {target} SIP/2.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in lines.items())
    return head.encode() + b"\r\n" + body


def sdp(*extra: str, host: str = "127.0.0.3", payload_types: str = "0 101") -> bytes:
    """A plausible caller SDP with extra lines appended."""
    lines = [
        "v=0",
        f"o=caller 1 1 IN IP4 {host}",
        "s=-",
        f"c=IN IP4 {host}",
        "t=0 0",
        f"m=audio 15330 RTP/AVP {payload_types}",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


@dataclass
class ReplyPlan:
    """What the agent answers an INVITE with: optional provisional replies, then a final one.

    Each reply is (status line text, extra headers, body)."""

    provisional: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    final: tuple[str, dict[str, str], bytes] = ("200 OK", {}, b"")


_COPIED = ("via", "from", "call-id", "cseq", "record-route")


class HostileAgent(ReceiveLoop):
    """An agent's softphone at ``host:port`` that answers with a :class:`ReplyPlan`."""

    def __init__(self, host: str, port: int, user: str, plan: ReplyPlan) -> None:
        self.host, self.port, self.user, self.plan = host, port, user, plan
        self.received: list[str] = []  # request methods, in order
        self._acked = threading.Event()
        super().__init__(udp_socket(host, port))

    def on_datagram(self, data: bytes, source: Any) -> None:
        text = data.decode("utf-8", "replace")
        match = _REQUEST.match(text)
        if not match:
            return
        method = match.group(1)
        self.received.append(method)
        if method == "INVITE":
            threading.Thread(target=self._answer, args=(text, source), daemon=True).start()
        elif method == "ACK":
            self._acked.set()
        elif method in ("BYE", "CANCEL"):
            self.sock.sendto(self._reply(text, "200 OK", {}, b""), source)

    def _answer(self, invite: str, source: tuple[str, int]) -> None:
        for status, extra, body in self.plan.provisional:
            self.sock.sendto(self._reply(invite, status, extra, body), source)
            time.sleep(0.2)
        status, extra, body = self.plan.final
        final = self._reply(invite, status, extra, body)
        # A 2xx is retransmitted until the ACK (RFC 3261 13.3.1.4), here for up to 4 s.
        deadline = time.monotonic() + 4
        while not self._acked.is_set() and time.monotonic() < deadline:
            self.sock.sendto(final, source)
            self._acked.wait(0.5)

    def _reply(self, request: str, status: str, extra: dict[str, str], body: bytes) -> bytes:
        found = headers(request)
        copied = [f"{name}: {value}" for name, value in found if name.lower() in _COPIED]
        to = next(f"{name}: {value}" for name, value in found if name.lower() == "to")
        if ";tag=" not in to:
            to += ";tag=hostile-agent"
        lines = [
            *copied,
            to,
            f"Contact: <sip:{self.user}@{self.host}:{self.port}>",
            *(f"{name}: {value}" for name, value in extra.items()),
        ]
        if not any(name.lower() == "content-length" for name in extra):
            lines.append(f"Content-Length: {len(body)}")
        return (f"SIP/2.0 {status}\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode() + body


__all__ = ["HostileAgent", "RawResponse", "RawSip", "ReplyPlan", "headers", "sdp", "sip_request"]
