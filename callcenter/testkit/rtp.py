"""Media for SIPp peers and what a caller hears: tone pcaps, DTMF pcaps, WAV tones, RTP capture.

SIPp callers send RFC 2833 digits from the pcaps SIPp ships and audio from tone pcaps made
here (G.711 u-law RTP in Ethernet/IPv4/UDP frames, the only shape SIPp's ``play_pcap_audio``
reads). :class:`RtpListener` decodes what a slot sends to a caller.
"""

from __future__ import annotations

import math
import struct
import subprocess
import time
from array import array
from pathlib import Path
from typing import Any

from callcenter.testkit.udp import ReceiveLoop, udp_socket

SIPP_PCAPS = Path("/usr/share/sip-tester")


def _ulaw(sample: int) -> int:
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_pcap(path: Path, frequency: float, seconds: float, amplitude: int = 8000) -> Path:
    """RTP PCMU packets (20 ms) of a sine tone, in a pcap SIPp can play."""
    packets = int(seconds * 50)
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    ssrc = 0x1234ABCD
    for n in range(packets):
        payload = bytes(
            _ulaw(int(amplitude * math.sin(2 * math.pi * frequency * (n * 160 + i) / 8000)))
            for i in range(160)
        )
        rtp = struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, n * 160, ssrc) + payload
        udp = struct.pack("!HHHH", 40000, 40002, 8 + len(rtp), 0) + rtp
        loopback = bytes([127, 0, 0, 1])
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                         loopback, loopback) + udp  # fmt: skip
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        usec = n * 20000
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))
    return path


def tone_wav(path: Path, frequency: float, seconds: float, volume: float | None = None) -> Path:
    """A 8 kHz 16-bit mono WAV of a sine tone (sox), for a softphone or a bare slot to play."""
    command = ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(path),
               "synth", str(seconds), "sine", str(frequency)]  # fmt: skip
    if volume is not None:
        command += ["vol", str(volume)]
    subprocess.run(command, check=True)
    return path


# SIPp's DTMF pcaps carry fixed RTP sequence numbers (1 < 2 < ... < 9 < * < # < 0); a digit
# whose pcap has a lower sequence number than the previous one is dropped by the receiver as
# a late packet. Tests send digits in that order; real phones number packets continuously.
def dtmf_pcap(digit: str) -> Path:
    """SIPp's RFC 2833 pcap (payload type 101) for one digit."""
    name = {"#": "pound", "*": "star"}.get(digit, digit)
    return SIPP_PCAPS / f"dtmf_2833_{name}.pcap"


def dtmf_pcap_with_pt(digit: str, payload_type: int, target: Path) -> Path:
    """SIPp's RFC 2833 pcap for ``digit`` with its RTP payload type changed (SIPp's files use
    101). When the engine offers, an answerer must send events with the offered type (pjsua
    offers 120), as a real phone does; SIPp replays the RTP as it is in the file."""
    data = bytearray(dtmf_pcap(digit).read_bytes())
    offset = 24  # pcap global header; Ethernet frames (link type 1)
    while offset < len(data):
        included = int.from_bytes(data[offset + 8 : offset + 12], "little")
        frame = offset + 16
        ip_header = (data[frame + 14] & 0x0F) * 4
        rtp = frame + 14 + ip_header + 8
        data[rtp + 1] = (data[rtp + 1] & 0x80) | payload_type
        offset = frame + included
    target.write_bytes(bytes(data))
    return target


def _ulaw_to_linear(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + 0x84) << ((byte >> 4) & 0x07)
    return 0x84 - magnitude if byte & 0x80 else magnitude - 0x84


_ULAW = [_ulaw_to_linear(b) for b in range(256)]


class RtpListener(ReceiveLoop):
    """What a caller hears: receives the RTP a slot sends to the port a caller's SDP named
    (see ``caller_scenario(sdp_media_port=...)``) and keeps the decoded PCMU audio with the
    wall-clock arrival time of each packet. Loopback only."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.packets: list[tuple[float, array[int]]] = []
        super().__init__(udp_socket(host, port), size=2048)

    def on_datagram(self, data: bytes, source: Any) -> None:
        if len(data) < 12 or data[1] & 0x7F != 0:  # PCMU only (not telephone-event)
            return
        start = 12 + 4 * (data[0] & 0x0F)
        self.packets.append((time.time(), array("h", (_ULAW[b] for b in data[start:]))))

    def audio(self, start: float, end: float) -> array[int]:
        """Samples received between two wall-clock times (epoch seconds)."""
        out = array("h")
        for at, samples in list(self.packets):
            if start <= at < end:
                out.extend(samples)
        return out
