"""The edge as a fraud and exploit barrier: what a hostile caller sends never reaches a slot
or a trunk. Real Kamailio, SIPp peers on loopback (see conftest.py for the addresses)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import pytest

from callcenter.testkit.hostile_sdp import HOSTILE_BODIES
from callcenter.testkit.raw_sip import RawResponse, RawSip, sdp, sip_request
from config.loader import CenterConfig
from config.schemas import TelephonyFile, Trunk
from config.settings import Settings
from tests.edge.conftest import (
    DID,
    EDGE,
    EDGE_HOST,
    EDGE_PORT,
    EdgeFactory,
    Sipp,
    SippResult,
    make_settings,
    slot_loads,
    slots_active,
    wait_for,
)

pytestmark = pytest.mark.sip

SLOT_A = "sip:127.0.0.1:15101"
CALLER = "127.0.0.3"
TRUNK = "127.0.0.7:15601"


def with_trunk(center: CenterConfig) -> CenterConfig:
    telephony = TelephonyFile.model_validate(
        {
            **center.telephony.model_dump(),
            "trunks": {"carrier": Trunk(host="127.0.0.7", port=15601)},
            "outbound_trunk": "carrier",
        }
    )
    return dataclasses.replace(center, telephony=telephony)


def traced_peer(sipp: Sipp, scenario: str, local: str, tmp_path: Path) -> tuple[Path, Path]:
    """A SIPp UAS that also traces every message it receives; returns (log, messages)."""
    messages = tmp_path / f"messages-{local.replace(':', '_')}.log"
    _, log = sipp.start(
        sipp.scenario(scenario), local, "-trace_msg", "-message_file", str(messages)
    )
    return log, messages


def received(messages: Path, method: str) -> int:
    """How many requests of this method a traced SIPp peer received."""
    if not messages.exists():
        return 0
    text = messages.read_text(errors="replace")
    return sum(1 for line in text.splitlines() if line.startswith(f"{method} sip:"))


# ---------------------------------------------------------------- in-dialog requests


@pytest.mark.parametrize("method", ["REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE", "PUBLISH"])
def test_in_dialog_request_other_than_call_control_gets_403_at_the_edge(
    start_edge: EdgeFactory, sipp: Sipp, center: CenterConfig, tmp_path: Path, method: str
) -> None:
    """The toll-fraud path of issue 11: an answered call, then REFER to a mobile number."""
    _, slot_messages = traced_peer(sipp, "slot_uas.xml", SLOT_A.removeprefix("sip:"), tmp_path)
    _, trunk_messages = traced_peer(sipp, "slot_uas.xml", TRUNK, tmp_path)
    edge = start_edge([SLOT_A], center=with_trunk(center))
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot answering probes")
    call = sipp.run(
        sipp.scenario("caller_in_dialog.xml", 403, verb=method), f"{CALLER}:15301",
        "-m", "1", "-s", DID, "-key", "target", "13912345678",
    )  # fmt: skip
    assert call.ok(), call.errors
    assert received(slot_messages, "INVITE") == 1
    assert received(slot_messages, method) == 0
    assert received(slot_messages, "BYE") == 1
    assert received(trunk_messages, "INVITE") == 0
    assert f"in-dialog {method} from {CALLER}" in edge.log_tail(200)
    assert slot_loads(edge) == {SLOT_A: 0}


# ---------------------------------------------------------------- body policy

DID_URI = f"sip:{DID}@127.0.0.1:15060"


def _hang_up(raw: RawSip, invite: bytes, ok: RawResponse) -> None:
    """ACK and BYE an answered raw INVITE through the edge (its Record-Route as Route)."""
    head = invite.decode(errors="replace").split("\r\n")
    original = {
        k.strip(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)
    }
    contact = re.search(r"<([^>]+)>", ok.header("Contact"))
    assert contact
    common = {
        "Route": ok.header("Record-Route"),
        "From": original["From"],
        "To": ok.header("To"),
        "Call-ID": original["Call-ID"],
    }
    local = (raw.host, raw.port)
    for method, cseq in (("ACK", "1 ACK"), ("BYE", "2 BYE")):
        request = sip_request(
            method, contact[1], local, headers={**common, "CSeq": cseq}, content_type=None
        )
        if method == "ACK":
            raw.send(request)
        else:
            bye = raw.final(request)
            assert bye is not None and bye.status == 200, bye


@pytest.mark.parametrize("shape", sorted(HOSTILE_BODIES))
def test_hostile_body_to_the_did_is_refused_before_any_slot(
    start_edge: EdgeFactory, sipp: Sipp, tmp_path: Path, shape: str
) -> None:
    body, content_type, status = HOSTILE_BODIES[shape]
    _, slot_messages = traced_peer(sipp, "slot_uas.xml", SLOT_A.removeprefix("sip:"), tmp_path)
    edge = start_edge([SLOT_A])
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot answering probes")
    raw = RawSip(CALLER, 15311, EDGE)
    try:
        answer = raw.final(
            sip_request("INVITE", DID_URI, (CALLER, 15311), body=body, content_type=content_type)
        )
    finally:
        raw.close()
    assert answer is not None, "no answer from the edge"
    assert answer.status == status, answer.text
    assert received(slot_messages, "INVITE") == 0
    assert f"INVITE from {CALLER}:15311 refused" in edge.log_tail(200)
    assert slot_loads(edge) == {SLOT_A: 0}


def test_a_normal_caller_sdp_still_reaches_a_slot(
    start_edge: EdgeFactory, sipp: Sipp, tmp_path: Path
) -> None:
    """The policy's control: the SDP a real softphone or carrier sends is accepted."""
    _, slot_messages = traced_peer(sipp, "slot_uas.xml", SLOT_A.removeprefix("sip:"), tmp_path)
    edge = start_edge([SLOT_A])
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot answering probes")
    raw = RawSip(CALLER, 15312, EDGE)
    try:
        invite = sip_request(
            "INVITE", DID_URI, (CALLER, 15312),
            body=sdp("a=ptime:20", "a=maxptime:150", "a=sendrecv", payload_types="0 8 101"),
            content_type="application/sdp",
        )  # fmt: skip
        answer = raw.final(invite)
        assert answer is not None and answer.status == 200, answer
        _hang_up(raw, invite, answer)
    finally:
        raw.close()
    assert received(slot_messages, "INVITE") == 1
    wait_for(lambda: slot_loads(edge) == {SLOT_A: 0}, 5, "slot released")


# ---------------------------------------------------------------- registrar and scanners

SCANNER = "127.0.0.2"
AGENT = "127.0.0.4"


def register(
    sipp: Sipp, user: str, password: str, status: int, contact: str, local: str = AGENT
) -> SippResult:
    return sipp.register(f"{local}:15401", user, contact, password=password, status=status)


@pytest.mark.parametrize(
    "contact",
    [
        "sip:1001@127.0.0.1:15060",  # the edge itself
        "sip:1001@127.0.0.1:15101",  # a slot
        "sip:1001@127.0.0.1:21000",  # the slots' host, any port
        "sip:1001@127.0.0.7:15601",  # the trunk
        "sip:1001@127.0.0.4:15201>, <sip:1001@127.0.0.7:15601",  # two Contacts, one the trunk
    ],
)
def test_register_contact_pointing_at_the_edge_a_slot_or_a_trunk_gets_403(
    start_edge: EdgeFactory, sipp: Sipp, center: CenterConfig, contact: str
) -> None:
    edge = start_edge([SLOT_A], center=with_trunk(center))
    refused = register(sipp, "1001", "pw1001", 403, contact)
    assert refused.ok(), refused.errors
    assert not edge.contacts("1001")
    assert f"REGISTER for 1001 from {AGENT}:15401 refused" in edge.log_tail(50)
    # The softphone's own address is fine.
    accepted = register(sipp, "1001", "pw1001", 200, f"sip:1001@{AGENT}:15201")
    assert accepted.ok(), accepted.errors


def sipvicious(tmp_path: Path, tool: str, *args: str, timeout: float = 60) -> str:
    """A sipvicious tool from 127.0.0.2 against the test edge; its combined output."""
    command = [
        "/usr/bin/python3", str(Path(__file__).parent / "sipvicious_bound.py"), SCANNER, tool,
        "-p", str(EDGE_PORT), *args, EDGE_HOST,
    ]  # fmt: skip
    # HOME: sipvicious keeps its session files under ~/.sipvicious
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    return done.stdout + done.stderr


def test_scanners_user_agents_are_dropped_unanswered(
    start_edge: EdgeFactory, tmp_path: Path
) -> None:
    """sipvicious says User-Agent: friendly-scanner: svmap finds no SIP device at all."""
    edge = start_edge([SLOT_A])
    found = sipvicious(tmp_path, "svmap")
    assert f"{EDGE_HOST}:{EDGE_PORT}" not in found, found
    cracked = sipvicious(tmp_path, "svcrack", "-u", "1001", "-r", "1000-1003", "--maximumtime=2")
    assert "found nothing" in cracked, cracked
    assert f"scanner OPTIONS from {SCANNER}" in edge.log_tail(50)
    assert f"scanner REGISTER from {SCANNER}" in edge.log_tail(50)


def open_settings(state_dir: Path, **tuning: int) -> Settings:
    """Scanner User-Agents let through, so sipvicious meets the registrar's own rules."""
    settings = make_settings(state_dir, **tuning)
    settings.sip.edge.scanner_user_agents = []
    return settings


def test_known_and_unknown_extensions_answer_the_same(
    start_edge: EdgeFactory, tmp_path: Path, state_dir: Path
) -> None:
    start_edge([SLOT_A], settings=open_settings(state_dir))  # agents 1001 and 1002
    for method in ("REGISTER", "INVITE", "OPTIONS"):
        found = sipvicious(tmp_path, "svwar", "-e", "1000-1010", "-m", method, "--maximumtime=2")
        assert "1001" not in found and "1002" not in found, (method, found)
    raw = RawSip(CALLER, 15313, EDGE)
    try:
        answers = {}
        for user in ("1001", "1999"):
            target = f"sip:{user}@{EDGE_HOST}:{EDGE_PORT}"
            register_ = raw.final(sip_request("REGISTER", target, (CALLER, 15313)))
            invite = raw.final(sip_request("INVITE", target, (CALLER, 15313), body=sdp()))
            assert register_ is not None and invite is not None
            challenge = re.sub(r'nonce="[^"]*"', "", register_.header("WWW-Authenticate"))
            answers[user] = (register_.status, challenge, invite.status)
    finally:
        raw.close()
    assert answers["1001"] == answers["1999"] and answers["1001"][0] == 401, answers


def test_password_guessing_bans_the_address_while_an_agent_elsewhere_registers(
    start_edge: EdgeFactory, sipp: Sipp, tmp_path: Path, state_dir: Path
) -> None:
    # pike far above what svcrack sends: the ban must come from the failed authentications.
    edge = start_edge([SLOT_A], settings=open_settings(state_dir, pike_max_requests=1000))
    words = tmp_path / "words.txt"
    words.write_text("".join(f"guess{n}\n" for n in range(12)) + "pw1001\n")
    cracked = sipvicious(tmp_path, "svcrack", "-u", "1001", "-d", str(words), "--maximumtime=3")
    assert "pw1001" not in cracked and "found nothing" in cracked, cracked
    assert SCANNER in edge.banned_addresses()
    assert f"password guessing from {SCANNER}" in edge.log_tail(50)
    assert edge.log_tail(200).count(f"REGISTER for 1001 from {SCANNER}") == 5
    elsewhere = register(sipp, "1001", "pw1001", 200, "sip:1001@127.0.0.3:15201", local=CALLER)
    assert elsewhere.ok(), elsewhere.errors


# ---------------------------------------------------------------- dial plan


def test_a_slot_dialling_outside_the_dial_plan_gets_403_and_the_trunk_sees_nothing(
    start_edge: EdgeFactory, sipp: Sipp, center: CenterConfig, tmp_path: Path
) -> None:
    _, trunk_messages = traced_peer(sipp, "slot_uas.xml", TRUNK, tmp_path)
    edge = start_edge([SLOT_A], center=with_trunk(center))
    # The "slot" is a SIPp caller bound to the slot's address.
    for number in ("0044207123456", "004420712345", "4008001234", "12345678901", "+8613912345678"):
        refused = sipp.run(
            sipp.scenario("invite_rejected.xml", 403), "127.0.0.1:15101", "-m", "1", "-s", number
        )
        assert refused.ok(), (number, refused.errors)
        assert f"to {number} refused: not in the dial plan" in edge.log_tail(50)
    assert received(trunk_messages, "INVITE") == 0
    call = sipp.run(
        sipp.scenario("caller.xml"), "127.0.0.1:15101", "-m", "1", "-d", "100", "-s", "02161234567"
    )
    assert call.ok(), call.errors
    assert received(trunk_messages, "INVITE") == 1


def test_international_prefixes_in_the_dial_plan_open_only_those_countries(
    start_edge: EdgeFactory, sipp: Sipp, center: CenterConfig, tmp_path: Path
) -> None:
    _, trunk_messages = traced_peer(sipp, "slot_uas.xml", TRUNK, tmp_path)
    trunked = with_trunk(center)
    telephony = TelephonyFile.model_validate(
        {
            **trunked.telephony.model_dump(),
            "dial_plan": {"international_prefixes": ["00852"]},
        }
    )
    start_edge([SLOT_A], center=dataclasses.replace(trunked, telephony=telephony))
    refused = sipp.run(
        sipp.scenario("invite_rejected.xml", 403), "127.0.0.1:15101", "-m", "1",
        "-s", "0044207123456",
    )  # fmt: skip
    assert refused.ok(), refused.errors
    call = sipp.run(
        sipp.scenario("caller.xml"), "127.0.0.1:15101", "-m", "1", "-d", "100",
        "-s", "0085212345678",
    )  # fmt: skip
    assert call.ok(), call.errors
    assert received(trunk_messages, "INVITE") == 1


def test_dids_only_from_trunk_addresses_when_asked(
    start_edge: EdgeFactory, sipp: Sipp, center: CenterConfig, state_dir: Path, tmp_path: Path
) -> None:
    _, slot_messages = traced_peer(sipp, "slot_uas.xml", SLOT_A.removeprefix("sip:"), tmp_path)
    settings = make_settings(state_dir)
    settings.sip.edge.dids_from_trunks_only = True  # the production default
    edge = start_edge([SLOT_A], settings=settings, center=with_trunk(center))
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot answering probes")
    refused = sipp.run(
        sipp.scenario("invite_rejected.xml", 403), f"{CALLER}:15301", "-m", "1", "-s", DID
    )
    assert refused.ok(), refused.errors
    assert f"INVITE from {CALLER}:15301 to DID {DID} refused: not a trunk" in edge.log_tail(50)
    assert received(slot_messages, "INVITE") == 0
    from_trunk = sipp.run(
        sipp.scenario("caller.xml"), "127.0.0.7:15602", "-m", "1", "-d", "100", "-s", DID
    )
    assert from_trunk.ok(), from_trunk.errors
    assert received(slot_messages, "INVITE") == 1
