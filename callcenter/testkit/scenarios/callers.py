"""Scenarios of SIPp callers (UACs). They honour Record-Route (``rrs``), so an in-dialog
request goes through the edge when there is one."""

from __future__ import annotations

from pathlib import Path

from callcenter.testkit.rtp import dtmf_pcap
from callcenter.testkit.scenarios.messages import (
    SDP,
    bare_reply,
    document,
    in_dialog,
    pause,
    play,
)


def _invite(ruri: str, caller: str, callee: str, sdp: str, contact: str, rtd: bool) -> str:
    start = ' start_rtd="setup"' if rtd else ""
    return f"""<send retrans="500"{start}><![CDATA[
INVITE {ruri} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <{caller}>;tag=[pid]SIPpTag00[call_number]
To: <{callee}>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <{contact}>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{sdp}
]]></send>"""


def _answered(caller: str, callee: str, counter: str) -> str:
    """Provisional answers, the 200 (its Record-Route kept, response time counter
    ``counter``) and our ACK."""
    return f"""<recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="{counter}" rrs="true"/>
  {in_dialog("ACK", 1, caller, callee, retrans=False)}"""


def dtmf(digit: str) -> str:
    """An RFC 2833 digit from SIPp's pcaps, then 300 ms for it to be heard."""
    return play(dtmf_pcap(digit)) + pause(300)


def queue_then_talk(voice: object, talk_ms: int, digits: str = "0") -> list[tuple[str, object]]:
    """:func:`caller_scenario` steps: key ``digits`` at the main menu (``0``: the general
    queue), then talk (the pcap ``voice``) for ``talk_ms`` and hang up."""
    keys: list[tuple[str, object]] = [("dtmf", digit) for digit in digits]
    return [("pause", 600), *keys, ("pause", 300), ("audio", voice), ("pause", talk_ms)]


def caller_scenario(
    path: Path,
    steps: list[tuple[str, object]],
    did: str = "4008001234",
    caller: str = "13800138000",
    hangup: bool = True,
    sdp_media_port: int | None = None,
) -> Path:
    """A UAC calling ``did``; ``steps`` after the ACK: ("pause", ms), ("dtmf", "1"),
    ("audio", pcap path: starts playing in the background), ("info", "1": a digit as SIP
    INFO), ("wait_bye", ms: expect the other side to hang up). ``sdp_media_port``: the SDP
    names this port instead of SIPp's own, so an :class:`RtpListener` there receives what
    the caller hears (the caller must then send no RTP itself: use "info" digits)."""
    me = f"sip:{caller}@[local_ip]:[local_port]"
    them = f"sip:{did}@[remote_ip]:[remote_port]"
    actions: list[str] = []
    expect_bye = False
    for kind, value in steps:
        if kind == "pause":
            actions.append(pause(int(value)))  # type: ignore[call-overload]
        elif kind == "dtmf":
            actions.append(play(dtmf_pcap(str(value))))
            actions.append(pause(300))
        elif kind == "audio":
            actions.append(play(value))
        elif kind == "info":  # a digit as SIP INFO (application/dtmf-relay)
            body = f"Signal={value}\nDuration=160"
            info = in_dialog("INFO", 10 + len(actions), me, them, body, "application/dtmf-relay")
            actions.append(f'{info}\n  <recv response="200"/>')
        elif kind == "wait_bye":
            expect_bye = True
    if expect_bye:
        ending = f'<recv request="BYE"/>\n  {bare_reply("200 OK")}'
    elif hangup:
        ending = f'{in_dialog("BYE", 1000, me, them)}\n  <recv response="200" crlf="true"/>'
    else:
        ending = pause(3600000)
    sdp = SDP if sdp_media_port is None else SDP.replace("[media_port]", str(sdp_media_port))
    body = "\n  ".join(
        [
            _invite(f"sip:{did}@[remote_ip]:[remote_port]", me, them, sdp, me, rtd=False),
            _answered(me, them, "true"),
            *actions,
            ending,
            '<ResponseTimeRepartition value="5, 10, 20, 50, 100, 200, 500, 1000"/>',
        ]
    )
    path.write_text(document("engine caller", body))
    return path


def rejected_scenario(path: Path, did: str, code: int, caller: str = "13800138000") -> Path:
    """A UAC whose INVITE must be refused with ``code`` (any other answer fails SIPp)."""
    me = f"sip:{caller}@[local_ip]:[local_port]"
    ruri = f"sip:{did}@[remote_ip]:[remote_port]"
    ack = f"""<send><![CDATA[
ACK {ruri} SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <{me}>;tag=[pid]SIPpTag00[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>"""
    body = "\n  ".join(
        [
            _invite(ruri, me, ruri, SDP, me, rtd=False),
            '<recv response="100" optional="true"/>',
            f'<recv response="{code}"/>',
            ack,
        ]
    )
    path.write_text(document("refused caller", body))
    return path


def bench_caller_scenario(path: Path, body: str, *, per_call_target: bool) -> Path:
    """The benchmarks' UAC to 4008001234 from 139<call number>: INVITE -> 200 counted as the
    "setup" response time, ``body`` after the ACK (see :func:`dtmf`, ``play``, ``pause``),
    then BYE. With ``per_call_target`` each call goes to host/port fields 0/1 of the -inf
    file (one bare slot per call)."""
    setdest = (
        '<nop><action><setdest host="[field0]" port="[field1]" protocol="udp"/></action></nop>'
        if per_call_target
        else ""
    )
    target = "[field0]:[field1]" if per_call_target else "[remote_ip]:[remote_port]"
    me = "sip:139[call_number]@[local_ip]:[local_port]"
    them = f"sip:4008001234@{target}"
    contact = "sip:caller@[local_ip]:[local_port]"
    parts = [
        setdest,
        _invite(them, me, them, SDP, contact, rtd=True),
        _answered(me, them, "setup"),
        body,
        in_dialog("BYE", 2, me, them),
        '<recv response="200" crlf="true"/>',
    ]
    path.write_text(document("bench caller", "\n  ".join(parts)))
    return path
