"""What the edge refuses before a request reaches a slot: scanners, Contacts pointing at the
center itself, and SDP that pjsua2 2.15.1 must never parse; and who is trusted (slots, trunks)."""

from __future__ import annotations

import ipaddress
import re

from config.settings import Settings
from ivr.edge.cfgtext import EdgeConfigError
from ivr.edge.dispatcher import SLOT_SET


def render_scanner_check(user_agents: list[str]) -> str:
    """Drop requests from known scanners' User-Agents (sipvicious sends "friendly-scanner")."""
    words = []
    for index, agent in enumerate(user_agents):
        if not re.fullmatch(r"[A-Za-z0-9 _.\-]+", agent):
            raise EdgeConfigError(
                f"sip.edge.scanner_user_agents[{index}]: {agent!r}: letters, digits, space, "
                "'.', '_' and '-' only"
            )
        words.append(agent.lower().replace(".", "[.]"))
    if not words:
        return ""
    pattern = "|".join(words)
    return (
        f'\tif ($(ua{{s.tolower}}) =~ "({pattern})") {{\n'
        '\t\txlog("L_NOTICE", "edge: scanner $rm from $si:$sp (User-Agent $ua) dropped\\n");\n'
        "\t\texit;\n"
        "\t}\n"
    )


def render_contact_check(settings: Settings) -> str:
    """Contact hosts a softphone may not register: the edge, the slots' host, and trunks'
    addresses (data: the ``rules`` htable's ``peer.<address>`` = 1, ivr/edge/rules.py)."""
    forbidden = [settings.sip.edge_host, settings.sip.slot_host]
    lines = []
    for address in dict.fromkeys(forbidden):
        for form in (address, f"[{address}]") if ":" in address else (address,):
            lines.append(f'\tif ($var(chost) == "{form}") $var(bad) = 1;')
    lines.append("\tif ($sht(rules=>peer.$var(chost)) == 1) $var(bad) = 1;")
    if not ipaddress.ip_address(settings.sip.edge_host).is_loopback:
        # An edge on a real address: a loopback Contact would point at the edge's own host.
        lines.append('\tif ($var(chost) =~ "^(127[.]|\\[?::1\\]?$|localhost$)") $var(bad) = 1;')
    return "\n".join(lines)


def render_trusted_check() -> str:
    """Slots, and the addresses the ``rules`` htable lists (trunks, flood exemptions)."""
    lines = ["\t$var(trusted) = 0;"]
    lines.append(f'\tif (ds_is_from_list("{SLOT_SET}", "2")) $var(trusted) = 1;')
    lines.append("\tif ($sht(rules=>peer.$si) != $null) $var(trusted) = 1;")
    return "\n".join(lines) + "\n"


# Regular expressions of the SDP policy (POSIX extended, as Kamailio's =~ runs them), matched
# against "\n" + body + "\n"; \r and \n are Kamailio string escapes.
_BAD_PT = "(12[89]|1[3-9][0-9]|[2-9][0-9][0-9]|[0-9]{4,})"  # 128 and up
SDP_BAD_PATTERNS = {
    # a=ptime / a=maxptime other than 1 to 3 digits (pjmedia 2.15.1 overflows on 4294967295)
    "BAD_PTIME": r"[\r\n]a=(max)?ptime:([^1-9]|[1-9][^0-9\r\n]|[1-9][0-9][^0-9\r\n]"
    r"|[1-9][0-9][0-9][^\r\n])",
    # an m= line (proto with a "/", e.g. RTP/AVP) listing a payload type above 127
    "BAD_PT_MEDIA": r"[\r\n]m=[^\r\n]*/[^ \r\n]*( [^ \r\n]+)* " + _BAD_PT + r"[ \r\n]",
    # rtpmap / fmtp for a payload type above 127, or not a number
    "BAD_PT_ATTRIBUTE": r"[\r\n]a=(rtpmap|fmtp):([^0-9]|" + _BAD_PT[1:],
}

# What a 2xx from outside the slot set carries instead of a body that fails the policy
# (onreply_route): well-formed, short, and with one codec no slot offers, so the slot's SDP
# negotiation fails and it ends that leg itself (ACK, then BYE). Its session name marks it in
# packet captures and slot logs.
REFUSED_SDP_MARK = "callcenter-edge-refused"
REFUSED_SDP = "".join(
    line + "\\r\\n"  # Kamailio string escapes
    for line in (
        "v=0",
        "o=- 0 0 IN IP4 0.0.0.0",
        f"s={REFUSED_SDP_MARK}",
        "c=IN IP4 0.0.0.0",
        "t=0 0",
        "m=audio 9 RTP/AVP 96",
        f"a=rtpmap:96 {REFUSED_SDP_MARK}/8000",
    )
)
