"""Scenarios of SIPp answerers (UASs): an agent's softphone, a customer behind a trunk."""

from __future__ import annotations

import re
from pathlib import Path

from callcenter.testkit.rtp import dtmf_pcap_with_pt
from callcenter.testkit.scenarios.messages import (
    SDP,
    bare_reply,
    document,
    pause,
    play,
    reply,
)

BYE_ANSWERED = f'<recv request="BYE"/>\n  {bare_reply("200 OK")}'


def agent_scenario(
    path: Path, pcap: Path | None, answer_after_ms: int = 200, reject: int | None = None
) -> Path:
    """A UAS agent: rings, answers (or rejects with ``reject``), plays ``pcap``, waits for BYE."""
    if reject:
        answer = [bare_reply(f"{reject} Busy Here", tag=True), '<recv request="ACK"/>']
    else:
        answer = [
            pause(answer_after_ms),
            reply("200 OK", "agent", SDP, retrans=True),
            '<recv request="ACK"/>',
            play(pcap) if pcap else "",
            BYE_ANSWERED,
        ]
    parts = ['<recv request="INVITE" rrs="true"/>', reply("180 Ringing", "agent"), *answer]
    path.write_text(document("engine agent", "\n  ".join(parts)))
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
    body = f"""<recv request="INVITE" rrs="true">
    <action><ereg regexp=".*" search_in="hdr" header="From:" assign_to="their_from"/>{check}
    </action>
  </recv>
  {reply("200 OK", "customer", SDP)}
  <recv request="ACK">
    <action><ereg regexp=".*" search_in="hdr" header="To:" assign_to="our_to"/></action>
  </recv>
  {play(pcap)}
  {pause(hangup_after_ms)}
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
  <recv response="200"/>"""
    path.write_text(document("customer behind a trunk", body))
    return path


def survey_customer_scenario(path: Path, digit: str, pause_ms: int, event_pt: int = 120) -> Path:
    """A UAS playing a customer reached through a trunk for a survey: answers, keys ``digit``
    (RFC 2833, payload type ``event_pt`` as the engine offered it) after ``pause_ms`` and
    waits for the engine's BYE (after the thanks)."""
    pcap = dtmf_pcap_with_pt(digit, event_pt, path.with_suffix(f".dtmf{digit}.pcap"))
    sdp = SDP.replace("101", str(event_pt))
    parts = [
        '<recv request="INVITE" rrs="true"/>',
        reply("200 OK", "customer", sdp),
        '<recv request="ACK"/>',
        pause(pause_ms),
        play(pcap),
        BYE_ANSWERED,
    ]
    path.write_text(document("survey customer behind a trunk", "\n  ".join(parts)))
    return path


def ringing_scenario(path: Path, final_after_cancel_ms: int | None = 0) -> Path:
    """A softphone that rings (180) and is never picked up: it expects the caller's CANCEL
    and answers it (200, with the To tag of its 180), then ends the INVITE with 487 after
    ``final_after_cancel_ms`` (a slow phone when large; ``None``: never, as behind a proxy
    that answers 487 itself). SIPp exits 0 only if the CANCEL came."""
    if final_after_cancel_ms is None:
        # SIPp refuses a variable that is set and never used: keep the CSeq only for the 487
        invite, final = '<recv request="INVITE" rrs="true"/>', []
    else:
        invite = """<recv request="INVITE" rrs="true">
    <action><ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="invite_cseq"/></action>
  </recv>"""
        final = [
            pause(final_after_cancel_ms),
            bare_reply("487 Request Terminated", tag=True, cseq="CSeq: [$invite_cseq] INVITE"),
            '<recv request="ACK"/>',
        ]
    parts = [
        invite,
        reply("180 Ringing", "agent"),
        '<recv request="CANCEL"/>',
        bare_reply("200 OK", tag=True),
        *final,
    ]
    path.write_text(document("agent phone that keeps ringing", "\n  ".join(parts)))
    return path
