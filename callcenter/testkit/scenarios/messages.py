"""Pieces of SIPp scenarios: the SDP offer every peer sends and the messages they repeat."""

from __future__ import annotations

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

XML_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">"""


def document(name: str, body: str) -> str:
    """A whole scenario file named ``name``."""
    return f'{XML_HEAD}\n<scenario name="{name}">\n  {body}\n</scenario>\n'


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


def bare_reply(status: str, *, tag: bool = False, cseq: str = "[last_CSeq:]") -> str:
    """A bodiless answer to the last request without Contact (a BYE's or a CANCEL's 200, a
    486); ``tag``: add our To tag (the request had none)."""
    to_tag = ";tag=[pid]SIPpTag01[call_number]" if tag else ""
    return f"""<send><![CDATA[
SIP/2.0 {status}
[last_Via:]
[last_From:]
[last_To:]{to_tag}
[last_Call-ID:]
{cseq}
Content-Length: 0

]]></send>"""


def in_dialog(
    method: str,
    cseq: int,
    caller: str,
    callee: str,
    body: str = "",
    content_type: str = "",
    *,
    retrans: bool = True,
) -> str:
    """A UAC's request inside its dialog (after the 200 with ``rrs``: routed by the
    Record-Route set). ``caller``/``callee``: the From and To
    URIs (``sip:...``); ``retrans``: retransmitted until answered (not an ACK)."""
    open_tag = '<send retrans="500">' if retrans else "<send>"
    payload = (
        f"Content-Type: {content_type}\nContent-Length: [len]\n\n{body}"
        if body
        else "Content-Length: 0\n"
    )
    return f"""{open_tag}<![CDATA[
{method} [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: <{caller}>;tag=[pid]SIPpTag00[call_number]
To: <{callee}>[peer_tag_param]
Call-ID: [call_id]
CSeq: {cseq} {method}
Max-Forwards: 70
{payload}
]]></send>"""


def play(pcap: object) -> str:
    """Start playing a pcap (RTP) in the background."""
    return f'<nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'


def pause(ms: int) -> str:
    return f'<pause milliseconds="{ms}"/>'
