"""Hostile SIP bodies: each shape of a known pjproject 2.15.1 advisory (and its near
relatives), as (body, Content-Type, the status the edge must answer). None of them may reach
a slot, from a caller (the edge's tests) or in an agent's reply (the engine's)."""

from __future__ import annotations

from callcenter.testkit.raw_sip import sdp

BIG_SDP_LINES = tuple(f"a=x-filler:{n}" for n in range(112))
MULTIPART = (
    b"--boundary42\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-ID: <" + b"A" * 300 + b">\r\n\r\n" + sdp() + b"\r\n"
    b"--boundary42\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-ID:\r\n\r\n" + sdp() + b"\r\n"
    b"--boundary42--\r\n"
)

HOSTILE_BODIES: dict[str, tuple[bytes, str, int]] = {
    "ptime-overflow": (sdp("a=ptime:4294967295"), "application/sdp", 488),
    "maxptime-overflow": (sdp("a=maxptime:18446744073709551616"), "application/sdp", 488),
    "ptime-1000": (sdp("a=ptime:1000"), "application/sdp", 488),
    "ptime-negative": (sdp("a=ptime:-20"), "application/sdp", 488),
    "ptime-not-a-number": (sdp("a=ptime:abc"), "application/sdp", 488),
    "multipart-content-id": (MULTIPART, "multipart/mixed;boundary=boundary42", 415),
    "sdp-120-lines": (sdp(*BIG_SDP_LINES), "application/sdp", 488),
    "nul-byte": (sdp("a=sendrecv\x00a=ptime:20"), "application/sdp", 400),
    "payload-type-200": (sdp(payload_types="0 200"), "application/sdp", 488),
    "rtpmap-pt-300": (sdp("a=rtpmap:300 PCMU/8000"), "application/sdp", 488),
    "long-line": (sdp("a=x-long:" + "9" * 400), "application/sdp", 488),
    "not-sdp": (b"hello\r\n", "text/plain", 415),
    "oversized": (sdp(*(f"a=x:{'y' * 90}" for _ in range(95))), "application/sdp", 413),
    "no-v-line": (sdp()[5:], "application/sdp", 488),
}
