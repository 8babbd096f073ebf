"""SIPp peers for tests and benchmarks alike: scenario files, tone pcaps, process helpers.

SIPp is an independent SIP stack: callers send RFC 2833 digits from the pcaps SIPp ships
and audio from tone pcaps made here (G.711 u-law RTP in Ethernet/IPv4/UDP frames, the only
shape SIPp's ``play_pcap_audio`` reads). Scenarios honour Record-Route (``rrs``), so a BYE
goes through the edge when there is one.
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import struct
import subprocess
import threading
import time
from array import array
from pathlib import Path

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
        ip = (
            struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(udp),
                n & 0xFFFF,
                0,
                64,
                17,
                0,
                bytes([127, 0, 0, 1]),
                bytes([127, 0, 0, 1]),
            )
            + udp
        )
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        usec = n * 20000
        out += struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000, len(frame), len(frame))
        out += frame
    path.write_bytes(bytes(out))
    return path


# SIPp's DTMF pcaps carry fixed RTP sequence numbers (1 < 2 < ... < 9 < * < # < 0); a digit
# whose pcap has a lower sequence number than the previous one is dropped by the receiver as
# a late packet. Tests send digits in that order; real phones number packets continuously.
def _dtmf_pcap(digit: str) -> str:
    name = {"#": "pound", "*": "star"}.get(digit, digit)
    return str(SIPP_PCAPS / f"dtmf_2833_{name}.pcap")


SDP = """v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
"""


def reply(status: str, user: str, sdp: str | None = None, *, retrans: bool = False) -> str:
    """A SIPp UAS's ``<send>`` answering the last request: ``200 OK`` with an SDP body, or a
    bodiless one such as ``180 Ringing``; its Contact is ``sip:<user>@`` the UAS's address."""
    body = (
        f"Content-Type: application/sdp\nContent-Length: [len]\n\n{sdp}"
        if sdp
        else "Content-Length: 0\n"
    )
    open_tag = '<send retrans="500">' if retrans else "<send>"
    return f"""{open_tag}<![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:{user}@[local_ip]:[local_port]>
{body}
]]></send>"""


def caller_scenario(
    path: Path,
    steps: list[tuple[str, object]],
    did: str = "4008001234",
    caller: str = "13800138000",
    hangup: bool = True,
    sdp_media_port: int | None = None,
) -> Path:
    """A UAC calling ``did``; ``steps`` after the ACK: ("pause", ms), ("dtmf", "1"),
    ("audio", pcap path: starts playing in the background), ("wait_bye", ms: expect the
    other side to hang up within ms). ``sdp_media_port``: the SDP names this port instead of
    SIPp's own, so an :class:`RtpListener` there receives what the caller hears (the caller
    must then send no RTP itself: use "info" digits)."""
    actions: list[str] = []
    expect_bye = False
    for kind, value in steps:
        if kind == "pause":
            actions.append(f'<pause milliseconds="{int(value)}"/>')  # type: ignore[call-overload]
        elif kind == "dtmf":
            actions.append(
                f'<nop><action><exec play_pcap_audio="{_dtmf_pcap(str(value))}"/></action></nop>'
            )
            actions.append('<pause milliseconds="300"/>')
        elif kind == "audio":
            actions.append(f'<nop><action><exec play_pcap_audio="{value}"/></action></nop>')
        elif kind == "info":  # a digit as SIP INFO (application/dtmf-relay)
            cseq = 10 + len(actions)
            actions.append(
                f"""<send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{did}@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} INFO
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal={value}
Duration=160
]]></send>
  <recv response="200"/>"""
            )
        elif kind == "wait_bye":
            expect_bye = True
    ending = (
        """<recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>"""
        if expect_bye
        else """<send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:"""
        + caller
        + """@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:"""
        + did
        + """@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1000 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>"""
    )
    if not hangup and not expect_bye:
        ending = '<pause milliseconds="3600000"/>'
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="engine caller">
  <send retrans="500"><![CDATA[
INVITE sip:{did}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{did}@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{caller}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP if sdp_media_port is None else SDP.replace("[media_port]", str(sdp_media_port))}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{did}@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  {chr(10).join("  " + a for a in actions)}
  {ending}
  <ResponseTimeRepartition value="5, 10, 20, 50, 100, 200, 500, 1000"/>
</scenario>
"""
    path.write_text(xml)
    return path


def rejected_scenario(path: Path, did: str, code: int, caller: str = "13800138000") -> Path:
    """A UAC whose INVITE must be refused with ``code`` (any other answer fails SIPp)."""
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="refused caller">
  <send retrans="500"><![CDATA[
INVITE sip:{did}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:{did}@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:{caller}@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="{code}"/>
  <send><![CDATA[
ACK sip:{did}@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:{caller}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
</scenario>
"""
    path.write_text(xml)
    return path


def agent_scenario(
    path: Path, pcap: Path | None, answer_after_ms: int = 200, reject: int | None = None
) -> Path:
    """A UAS agent: rings, answers (or rejects with ``reject``), plays ``pcap``, waits for BYE."""
    if reject:
        body = f"""<send><![CDATA[
SIP/2.0 {reject} Busy Here
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK"/>"""
    else:
        play = f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>' if pcap else ""
        body = f"""<pause milliseconds="{answer_after_ms}"/>
  {reply("200 OK", "agent", SDP, retrans=True)}
  <recv request="ACK"/>
  {play}
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>"""
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="engine agent">
  <recv request="INVITE" rrs="true"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:agent@[local_ip]:[local_port]>
Content-Length: 0

]]></send>
  {body}
</scenario>
"""
    path.write_text(xml)
    return path


def customer_scenario(path: Path, pcap: Path, hangup_after_ms: int, via: str | None = None) -> Path:
    """A UAS playing a customer reached through a trunk: answers, sends ``pcap`` and hangs up
    after ``hangup_after_ms`` with its own BYE (routed by the Record-Route set). With ``via``
    (``host:port`` of the SIP edge) the INVITE must carry the edge's Record-Route."""
    check = (
        f'\n      <ereg regexp="{re.escape(via)}" search_in="hdr" header="Record-Route:"'
        ' check_it="true" assign_to="edge_route"/>'
        '\n      <log message="INVITE through [$edge_route]"/>'
        if via
        else ""
    )
    path.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="customer behind a trunk">
  <recv request="INVITE" rrs="true">
    <action><ereg regexp=".*" search_in="hdr" header="From:" assign_to="their_from"/>{check}
    </action>
  </recv>
  {reply("200 OK", "customer", SDP)}
  <recv request="ACK">
    <action><ereg regexp=".*" search_in="hdr" header="To:" assign_to="our_to"/></action>
  </recv>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="{hangup_after_ms}"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: [$our_to]
To: [$their_from]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
""")
    return path


def finished(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """The SIPp peer ended its scenario successfully (else its output is the failure)."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, (out + err).decode(errors="replace")[-3000:]


STARTED: list[subprocess.Popen[bytes]] = []


def started(process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
    """Remember a background SIPp for :func:`no_sipp_left`."""
    STARTED.append(process)
    return process


def kill_started() -> None:
    """Kill every SIPp that :func:`started` launched and that is still running (a failed test
    must not leave one holding its port for the next)."""
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.kill()
            process.wait(5)


def sipp(
    scenario: Path,
    target: str,
    *,
    local_port: int,
    media_port: int,
    calls: int = 1,
    rate: float = 1.0,
    limit: int | None = None,
    timeout_s: int = 60,
    extra: list[str] | None = None,
    cwd: Path | None = None,
    local_ip: str = "127.0.0.1",
) -> subprocess.Popen[bytes]:
    """Start SIPp (non-interactive, loopback only); the caller waits on the Popen."""
    argv = [
        "sipp",
        target,
        "-sf",
        str(scenario),
        "-i",
        local_ip,
        "-p",
        str(local_port),
        "-mi",
        local_ip,
        "-mp",
        str(media_port),
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-l",
        str(limit or calls),
        "-timeout",
        f"{timeout_s}s",
        "-timeout_error",
        "-nostdin",
        "-trace_err",
        *(extra or []),
    ]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=cwd
    )


def sipp_agent(
    scenario: Path,
    *,
    local_port: int,
    media_port: int,
    calls: int = 1,
    timeout_s: int = 60,
    cwd: Path | None = None,
    local_ip: str = "127.0.0.1",
) -> subprocess.Popen[bytes]:
    """Start a SIPp UAS (a softphone, a trunk's customer) waiting for ``calls`` calls on
    ``local_ip:local_port``; the caller waits on the Popen."""
    argv = [
        "sipp",
        "-sf",
        str(scenario),
        "-i",
        local_ip,
        "-p",
        str(local_port),
        "-mi",
        local_ip,
        "-mp",
        str(media_port),
        "-m",
        str(calls),
        "-timeout",
        f"{timeout_s}s",
        "-nostdin",
        "-trace_err",
    ]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=cwd
    )


def dtmf_pcap_with_pt(digit: str, payload_type: int, target: Path) -> Path:
    """SIPp's RFC 2833 pcap for ``digit`` with its RTP payload type changed (SIPp's files use
    101). When the engine offers, an answerer must send events with the offered type (pjsua
    offers 120), as a real phone does; SIPp replays the RTP as it is in the file."""
    data = bytearray(Path(_dtmf_pcap(digit)).read_bytes())
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


def survey_customer_scenario(path: Path, digit: str, pause_ms: int, event_pt: int = 120) -> Path:
    """A UAS playing a customer reached through a trunk for a survey: answers, keys ``digit``
    (RFC 2833, payload type ``event_pt`` as the engine offered it) after ``pause_ms`` and
    waits for the engine's BYE (after the thanks)."""
    pcap = dtmf_pcap_with_pt(digit, event_pt, path.with_suffix(f".dtmf{digit}.pcap"))
    sdp = SDP.replace("101", str(event_pt))
    path.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="survey customer behind a trunk">
  <recv request="INVITE" rrs="true"/>
  {reply("200 OK", "customer", sdp)}
  <recv request="ACK"/>
  <pause milliseconds="{pause_ms}"/>
  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
""")
    return path


def ringing_scenario(path: Path, final_after_cancel_ms: int | None = 0) -> Path:
    """A softphone that rings (180) and is never picked up: it expects the caller's CANCEL
    and answers it (200, with the To tag of its 180), then ends the INVITE with 487 after
    ``final_after_cancel_ms`` (a slow phone when large; ``None``: never, as behind a proxy
    that answers 487 itself). SIPp exits 0 only if the CANCEL came."""
    final = (
        ""
        if final_after_cancel_ms is None
        else f"""<pause milliseconds="{final_after_cancel_ms}"/>
  <send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [$invite_cseq] INVITE
Content-Length: 0

]]></send>
  <recv request="ACK"/>"""
    )
    # SIPp refuses a variable that is set and never used: keep the CSeq only for the 487
    invite = (
        '<recv request="INVITE" rrs="true"/>'
        if final_after_cancel_ms is None
        else """<recv request="INVITE" rrs="true">
    <action><ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/></action>
  </recv>"""
    )
    path.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="agent phone that keeps ringing">
  {invite}
  {reply("180 Ringing", "agent")}
  <recv request="CANCEL"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  {final}
</scenario>
""")
    return path


def _ulaw_to_linear(byte: int) -> int:
    byte = ~byte & 0xFF
    magnitude = (((byte & 0x0F) << 3) + 0x84) << ((byte >> 4) & 0x07)
    return 0x84 - magnitude if byte & 0x80 else magnitude - 0x84


_ULAW = [_ulaw_to_linear(b) for b in range(256)]


class RtpListener:
    """What a caller hears: receives the RTP a slot sends to the port a caller's SDP named
    (see ``caller_scenario(sdp_media_port=...)``) and keeps the decoded PCMU audio with the
    wall-clock arrival time of each packet. Loopback only."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.packets: list[tuple[float, array[int]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except (TimeoutError, OSError):
                continue
            if len(data) < 12 or data[1] & 0x7F != 0:  # PCMU only (not telephone-event)
                continue
            start = 12 + 4 * (data[0] & 0x0F)
            self.packets.append((time.time(), array("h", (_ULAW[b] for b in data[start:]))))

    def audio(self, start: float, end: float) -> array[int]:
        """Samples received between two wall-clock times (epoch seconds)."""
        out = array("h")
        for at, samples in list(self.packets):
            if start <= at < end:
                out.extend(samples)
        return out

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            self.sock.close()
