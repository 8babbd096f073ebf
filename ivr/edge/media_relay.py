"""The media relay for NATed softphones: Debian's rtpengine (userspace, no kernel module)
beside the edge's Kamailio, which drives it over the NG protocol (docs/edge.md "Media relay").

Off unless ``sip.media_relay.rtpengine`` names its control socket. When on, the edge:

- loads Kamailio's ``rtpengine`` module (Debian's base ``kamailio`` package) and, for calls
  between a slot and a registered softphone, has rtpengine rewrite both SDPs
  (``rtpengine_manage``: offer on the slot's INVITE, answer on the phone's reply, delete on
  BYE, CANCEL or a failed call), so each side sends RTP to rtpengine's address and ports;
- with ``mode = "nat"`` only for phones nathelper found behind NAT when they registered
  (``nat_uac_test(19)``, kept as a branch flag in usrloc); ``"always"`` for every such call;
- runs rtpengine itself (``Edge.start``), in the foreground, ended with its parent like
  Kamailio, and answers for it in ``Edge.is_running`` (a dead relay means a restart).

Pure Python: nothing here imports pjsua2.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

from callcenter.supervision import die_with_parent, log_tail, stop_child
from config.settings import Settings
from ivr.edge.cfgtext import EdgeConfigError, quote

NAT_BFLAG = 6  # branch flag: the contact registered from behind NAT (usrloc keeps it)
RELAYED_FLAG = 7  # transaction flag: this call's media goes through rtpengine
RR_PARAM = "mr=1"  # Record-Route parameter: in-dialog requests of a relayed call
# rtpengine rewrites the c= and o= lines and drops ICE (the slots speak plain RTP/AVP).
OFFER_FLAGS = "replace-origin replace-session-connection ICE=remove"


def control_address(settings: Settings) -> tuple[str, int] | None:
    """rtpengine's NG socket from ``sip.media_relay.rtpengine`` ("udp:IP:PORT"), None when off."""
    value = settings.sip.media_relay.rtpengine.strip()
    if not value:
        return None
    match = re.fullmatch(r"udp:([0-9.]+):([0-9]{1,5})", value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise EdgeConfigError(
            f"sip.media_relay.rtpengine: {value!r}: give rtpengine's NG socket as udp:IP:PORT"
        )
    try:
        ipaddress.IPv4Address(match.group(1))
    except ValueError:
        raise EdgeConfigError(
            f"sip.media_relay.rtpengine: {match.group(1)!r} is not an IPv4 address"
        ) from None
    return match.group(1), int(match.group(2))


def relay_address(settings: Settings) -> str:
    """The address rtpengine advertises in SDP and receives RTP on."""
    relay = settings.sip.media_relay
    address = relay.address or settings.sip.edge_host
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise EdgeConfigError(
            f"sip.media_relay.address: {address!r} is not an IP address"
        ) from None
    if not relay.port_min < relay.port_max:
        raise EdgeConfigError(
            f"sip.media_relay: port_min {relay.port_min} must be below port_max {relay.port_max}"
        )
    return address


def render_module(settings: Settings) -> str:
    """The module lines of kamailio.cfg ("" when the relay is off)."""
    control = control_address(settings)
    if control is None:
        return ""
    relay_address(settings)  # checked here: the edge refuses to start on a bad one
    host, port = control
    return "\n".join(
        [
            "# Media relay (ivr/edge/media_relay.py): rtpengine over its NG control socket.",
            'loadmodule "rtpengine.so"',
            f'modparam("rtpengine", "rtpengine_sock", {quote(f"udp:{host}:{port}")})',
            'modparam("rtpengine", "rtpengine_tout_ms", 1000)',
            'modparam("rtpengine", "rtpengine_retr", 2)',
            f'modparam("usrloc", "nat_bflag", {NAT_BFLAG})',
        ]
    )


def render_routes(settings: Settings) -> str:
    """The MEDIA_RELAY* routes of kamailio.cfg; with the relay off they do nothing."""
    if control_address(settings) is None:
        return "\n".join(
            [
                "route[MEDIA_RELAY_REGISTER] {\n\treturn;\n}",
                "route[MEDIA_RELAY] {\n\treturn;\n}",
                "route[MEDIA_RELAY_INDIALOG] {\n\treturn;\n}",
                "route[MEDIA_RELAY_END] {\n\treturn;\n}",
            ]
        )
    always = settings.sip.media_relay.mode == "always"
    choose = "" if always else f"\tif (!isbflagset({NAT_BFLAG})) {{\n\t\treturn;\n\t}}\n"
    flags = quote(OFFER_FLAGS)
    return f"""# A REGISTER from behind NAT (private Contact or Via, source address or port not the
# ones the phone put in its Via): its contact carries the NAT branch flag.
route[MEDIA_RELAY_REGISTER] {{
	if (nat_uac_test("19")) {{
		setbflag({NAT_BFLAG});
	}}
}}

# A slot's INVITE to a softphone (after lookup): rtpengine takes the call's media
# (mode {settings.sip.media_relay.mode}).
route[MEDIA_RELAY] {{
{choose}	setflag({RELAYED_FLAG});
	add_rr_param(";{RR_PARAM}");
	if (!rtpengine_manage({flags})) {{
		xlog("L_ERR", "edge: media relay did not take call $ci (rtpengine not answering)\\n");
		sl_send_reply("503", "Media relay unavailable");
		exit;
	}}
	t_on_reply("MEDIA_RELAY_REPLY");
}}

# In-dialog requests of a relayed call: re-offers, answers in ACK, delete on BYE.
route[MEDIA_RELAY_INDIALOG] {{
	if (!check_route_param("{RR_PARAM}")) {{
		return;
	}}
	rtpengine_manage({flags});
	if (is_method("INVITE|UPDATE")) {{
		setflag({RELAYED_FLAG});
		t_on_reply("MEDIA_RELAY_REPLY");
	}}
}}

# A relayed call that failed before it was answered.
route[MEDIA_RELAY_END] {{
	if (isflagset({RELAYED_FLAG})) {{
		rtpengine_delete();
	}}
}}

# The phone's answer: rtpengine's address in place of the phone's. A body the reply screen
# (core onreply_route, run first) replaced is not the phone's answer: leave it.
onreply_route[MEDIA_RELAY_REPLY] {{
	if ($var(why) == "" && has_body("application/sdp")) {{
		rtpengine_manage({flags});
	}}
}}
"""


class MediaRelayError(RuntimeError):
    """rtpengine could not be started or does not answer."""


def ng_ping(host: str, port: int, timeout: float = 0.3) -> bool:
    """True when rtpengine answers an NG ``ping`` with ``pong``."""
    cookie = secrets.token_hex(6).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(cookie + b" d7:command4:pinge", (host, port))
            data = sock.recv(4096)
        except OSError:
            return False
    return data.startswith(cookie + b" ") and b"4:pong" in data


class MediaRelay:
    """rtpengine as a child of the edge's supervisor."""

    def __init__(self, settings: Settings, directory: Path) -> None:
        control = control_address(settings)
        assert control is not None, "MediaRelay only for a configured relay"
        self.settings = settings
        self.control = control
        self.address = relay_address(settings)
        self.log = directory / "rtpengine.log"
        self._process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        relay = self.settings.sip.media_relay
        host, port = self.control
        return [
            relay.binary,
            "--config-file=none",  # not Debian's /etc/rtpengine/rtpengine.conf
            "--table=-1",  # userspace forwarding: no kernel module
            "--foreground",
            "--log-stderr",
            f"--interface={self.address}",
            f"--listen-ng={host}:{port}",
            f"--port-min={relay.port_min}",
            f"--port-max={relay.port_max}",
            "--log-level=5",
        ]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.is_running():
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self.log.exists():
            os.replace(self.log, self.log.with_suffix(".log.1"))
        parent = os.getpid()
        try:
            with open(self.log, "ab") as log_file:
                self._process = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    # dies with the process that started it, like the edge's Kamailio
                    preexec_fn=lambda: die_with_parent(signal.SIGTERM, parent),
                )
        except FileNotFoundError:
            raise MediaRelayError(
                f"rtpengine binary {self.settings.sip.media_relay.binary!r} not found: install "
                "the Debian package rtpengine-daemon (bash scripts/dev.sh setup)"
            ) from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise MediaRelayError(
                    f"rtpengine exited with code {self._process.returncode} at start; log "
                    f"{self.log}:\n{self.log_tail()}"
                )
            if ng_ping(*self.control):
                return
            time.sleep(0.05)
        self.stop()
        raise MediaRelayError(f"rtpengine did not answer on {self.control} within {timeout} s")

    def stop(self, timeout: float = 5.0) -> None:
        process = self._process
        if process is None:
            return
        stop_child(process, timeout)
        self._process = None

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log, lines)
