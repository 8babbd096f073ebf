"""The media relay (issue 15): rtpengine beside the edge carries the RTP of calls between a
slot and a softphone. Real Kamailio and rtpengine (userspace), a baresip softphone registered
as 1001 playing a tone, and a SIPp stand-in slot that echoes the RTP it receives; a capture on
``lo`` shows where the SDPs point and which way the RTP went."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from callcenter.testkit.baresip import start_baresip
from callcenter.testkit.capture import Datagram, LoopbackCapture
from callcenter.testkit.rtp import tone_wav
from config.settings import Settings
from tests.edge.conftest import EdgeFactory, Sipp, wait_for
from tests.edge.test_edge_sip import SLOT_A, TLS_PORT

pytestmark = pytest.mark.sip

RELAY_IP = "127.0.0.9"  # rtpengine's RTP address: neither the slot's nor the phone's
RELAY_PORTS = range(17700, 17800)
PHONE_SIP, PHONE_RTP = 15211, range(15220, 15240)
SLOT_SIP, SLOT_MEDIA = 15101, 15280


def _relay_settings(settings: Settings, mode: str) -> Settings:
    relay = settings.sip.media_relay.model_copy(
        update={
            "rtpengine": "udp:127.0.0.1:17222",
            "mode": mode,
            "address": RELAY_IP,
            "port_min": RELAY_PORTS.start,
            "port_max": RELAY_PORTS.stop - 1,
        }
    )
    return settings.model_copy(
        update={"sip": settings.sip.model_copy(update={"media_relay": relay})}
    )


def _sdp_target(message: bytes) -> tuple[str, int]:
    text = message.decode(errors="replace")
    connection = re.search(r"\nc=IN IP4 ([0-9.]+)", text)
    media = re.search(r"\nm=audio ([0-9]+) ", text)
    assert connection and media, text
    return connection.group(1), int(media.group(1))


def _rtp(grams: list[Datagram], source: range | int, destination: range | int) -> int:
    """RTP packets (version 2, no padding/extension/CSRC) between these ports."""

    def within(port: int, where: range | int) -> bool:
        return port in where if isinstance(where, range) else port == where

    return sum(
        1
        for d in grams
        if within(d.source[1], source)
        and within(d.destination[1], destination)
        and d.payload[:1] == b"\x80"
    )


@pytest.mark.parametrize("mode", ["always", "nat", "always-tls"])
def test_a_call_to_a_softphone_goes_through_the_relay_when_configured(
    start_edge: EdgeFactory,
    edge_settings: Settings,
    sipp: Sipp,
    tmp_path: Path,
    mode: str,
) -> None:
    if not shutil.which("rtpengine"):
        pytest.fail("the media relay tests need rtpengine (bash scripts/dev.sh setup)")
    tls = mode.endswith("-tls")
    mode = mode.removesuffix("-tls")
    settings = _relay_settings(edge_settings, mode)
    if tls:  # the phone registers and takes the call over TLS (SIP encrypted, RTP not)
        sip = settings.sip.model_copy(update={"tls_port": TLS_PORT})
        settings = settings.model_copy(update={"sip": sip})
    edge = start_edge([SLOT_A], settings=settings)
    assert edge.relay is not None and edge.relay.is_running()
    port, transport = (TLS_PORT, "tls") if tls else (15060, "udp")
    certificate = edge.paths.tls_dir / "edge.crt" if tls else None
    account = f"<sip:1001@127.0.0.1:{port};transport={transport}>;auth_pass=pw1001;answermode=auto"
    ports = {PHONE_SIP, SLOT_SIP, SLOT_MEDIA, *RELAY_PORTS, *PHONE_RTP}
    capture = LoopbackCapture(ports)
    phone, output = start_baresip(tmp_path, "127.0.0.4", account,
                                  tone=tone_wav(tmp_path / "tone.wav", 440, 30),
                                  cafile=certificate)  # fmt: skip
    try:
        wait_for(lambda: edge.contacts("1001") != "", 10, "baresip registered as 1001")
        call = sipp.run(
            sipp.scenario("caller.xml"), f"127.0.0.1:{SLOT_SIP}", "-m", "1", "-d", "3000",
            "-mp", str(SLOT_MEDIA), "-rtp_echo", "-s", "1001",
        )  # fmt: skip
        assert call.ok(), call.errors
    finally:
        phone.terminate()
        phone.wait(timeout=10)
        capture.close()
    assert "Call established" in output.read_text(errors="replace")
    grams = capture.datagrams
    answer = next(
        d for d in grams if d.destination[1] == SLOT_SIP and d.payload.startswith(b"SIP/2.0 200")
    )
    to_slot = _sdp_target(answer.payload)
    if tls:
        # the phone's SIP is encrypted; its RTP going to rtpengine's ports shows the SDP it
        # received named rtpengine
        sent, got = _rtp(grams, PHONE_RTP, RELAY_PORTS), _rtp(grams, RELAY_PORTS, PHONE_RTP)
        print(f"tls: SDP to the slot {to_slot}; RTP phone->relay {sent}, relay->phone {got}")
        assert to_slot[0] == RELAY_IP and to_slot[1] in RELAY_PORTS
        assert _rtp(grams, PHONE_RTP, RELAY_PORTS) > 50 and _rtp(grams, RELAY_PORTS, PHONE_RTP) > 50
        assert _rtp(grams, PHONE_RTP, SLOT_MEDIA) == _rtp(grams, SLOT_MEDIA, PHONE_RTP) == 0
        return
    invite = next(d for d in grams if d.destination[1] == PHONE_SIP and d.payload[:6] == b"INVITE")
    to_phone = _sdp_target(invite.payload)
    counts = {
        "phone->relay": _rtp(grams, PHONE_RTP, RELAY_PORTS),
        "relay->slot": _rtp(grams, RELAY_PORTS, SLOT_MEDIA),
        "slot->relay": _rtp(grams, SLOT_MEDIA, RELAY_PORTS),
        "relay->phone": _rtp(grams, RELAY_PORTS, PHONE_RTP),
        "phone->slot": _rtp(grams, PHONE_RTP, SLOT_MEDIA),
        "slot->phone": _rtp(grams, SLOT_MEDIA, PHONE_RTP),
    }
    print(f"mode {mode}: SDP to the phone {to_phone}, to the slot {to_slot}; RTP {counts}")
    if mode == "always":
        # both SDPs name rtpengine, and every RTP packet went through it, both ways
        assert to_phone[0] == RELAY_IP and to_phone[1] in RELAY_PORTS
        assert to_slot[0] == RELAY_IP and to_slot[1] in RELAY_PORTS
        assert min(counts[k] for k in ("phone->relay", "relay->slot")) > 50, counts
        assert min(counts[k] for k in ("slot->relay", "relay->phone")) > 50, counts
        assert counts["phone->slot"] == counts["slot->phone"] == 0, counts
    else:
        # a phone on loopback is not behind NAT: media flows directly, rtpengine untouched
        assert to_phone == ("127.0.0.1", SLOT_MEDIA)
        assert to_slot[0] == "127.0.0.4"
        assert counts["phone->slot"] > 50 and counts["slot->phone"] > 50, counts
        assert counts["phone->relay"] == counts["relay->phone"] == 0, counts
    assert edge.relay.is_running()


def test_in_nat_mode_a_phone_registered_from_behind_nat_is_relayed(
    start_edge: EdgeFactory, edge_settings: Settings, sipp: Sipp, tmp_path: Path
) -> None:
    """nathelper's test 16: the REGISTER's Via names port 5999 (with rport) but it comes from
    another port, as through a NAT that rewrites ports; calls to that phone go through
    rtpengine (the baresip case above, registered without NAT, is not relayed)."""
    edge = start_edge([SLOT_A], settings=_relay_settings(edge_settings, "nat"))
    # the Via names port 5999 with rport while SIPp sends from 15401
    registered = sipp.register("127.0.0.4:15401", "1001", "sip:1001@127.0.0.4:15402",
                               via="127.0.0.4:5999;rport")  # fmt: skip
    assert registered.ok(), registered.failure()
    assert edge.contacts("1001"), "1001 is not registered"
    sipp.start(sipp.scenario("slot_uas.xml"), "127.0.0.4:15402")
    capture = LoopbackCapture({15402, SLOT_SIP})
    try:
        call = sipp.run(
            sipp.scenario("caller.xml"), f"127.0.0.1:{SLOT_SIP}", "-m", "1", "-d", "500",
            "-mp", str(SLOT_MEDIA), "-s", "1001",
        )  # fmt: skip
        assert call.ok(), call.errors
    finally:
        capture.close()
    invite = next(
        d for d in capture.datagrams if d.destination[1] == 15402 and d.payload[:6] == b"INVITE"
    )
    answer = next(
        d
        for d in capture.datagrams
        if d.destination[1] == SLOT_SIP and d.payload.startswith(b"SIP/2.0 200")
    )
    to_phone, to_slot = _sdp_target(invite.payload), _sdp_target(answer.payload)
    print(f"NATed phone: SDP to the phone {to_phone}, to the slot {to_slot}")
    assert to_phone[0] == RELAY_IP and to_phone[1] in RELAY_PORTS
    assert to_slot[0] == RELAY_IP and to_slot[1] in RELAY_PORTS
    assert b";mr=1" in invite.payload  # in-dialog requests will reach rtpengine_manage (BYE)
