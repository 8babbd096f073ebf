"""A running edge takes a new telephony version without a restart: trunks, the outbound trunk,
the dial plan, the trunks' addresses and the domain are data (the ``rules`` htable,
ivr/edge/rules.py) reloaded with ``kamcmd htable.reload``. Real Kamailio and SIPp on loopback;
a call in progress keeps going through the change."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import pytest

from callcenter.auth import sip_ha1
from callcenter.testkit.raw_sip import RawSip, sip_request
from config.loader import CenterConfig
from config.schemas import TelephonyFile
from ivr.edge.subscribers import Subscriber, write_subscribers
from tests.edge.conftest import (
    DID,
    EDGE,
    EDGE_HOST,
    EDGE_PORT,
    REALM,
    EdgeFactory,
    Sipp,
    log_lines,
    make_settings,
    slots_active,
    wait_for,
)

pytestmark = pytest.mark.sip

SLOT_A = "sip:127.0.0.1:15101"
SLOT_B = "sip:127.0.0.1:15102"
CALLER = "127.0.0.3"
AGENT = "127.0.0.4"
CARRIER = "127.0.0.7:15601"
BACKUP = "127.0.0.8:15603"


def with_telephony(center: CenterConfig, **changes: object) -> CenterConfig:
    telephony = TelephonyFile.model_validate({**center.telephony.model_dump(), **changes})
    return dataclasses.replace(center, telephony=telephony)


def carrier_only(center: CenterConfig) -> CenterConfig:
    return with_telephony(
        center,
        trunks={"carrier": {"host": "127.0.0.7", "port": 15601, "outbound_prefix": "9"}},
        outbound_trunk="carrier",
    )


def with_backup(center: CenterConfig) -> CenterConfig:
    """The carrier kept, a backup trunk added and made the outbound trunk, 00852 opened."""
    return with_telephony(
        center,
        trunks={
            "carrier": {"host": "127.0.0.7", "port": 15601, "outbound_prefix": "9"},
            "backup": {"host": "127.0.0.8", "port": 15603},
        },
        outbound_trunk="backup",
        dial_plan={"international_prefixes": ["00852"]},
    )


def named_trunk_scenario(sipp: Sipp, trunk: str) -> Path:
    """caller.xml dialling ``sip:NUMBER@edge;trunk=CODE`` (a transfer target's trunk)."""
    return sipp.scenario("caller.xml", uri_params=f";trunk={trunk}")


def slot_dials(sipp: Sipp, number: str, status: int | None = None, slot: str = SLOT_A) -> bool:
    """A slot (SIPp bound to a slot's address) dials a number: answered, or refused with
    ``status``."""
    scenario = (
        sipp.scenario("caller.xml")
        if status is None
        else sipp.scenario("invite_rejected.xml", status)
    )
    args = ["-m", "1", "-s", number] + (["-d", "100"] if status is None else [])
    result = sipp.run(scenario, slot.removeprefix("sip:"), *args)
    return result.ok()


def test_trunks_and_the_dial_plan_follow_a_new_version_without_a_restart(
    start_edge: EdgeFactory, sipp: Sipp, center: CenterConfig
) -> None:
    _, carrier_log = sipp.start(sipp.scenario("slot_uas.xml"), CARRIER)
    _, backup_log = sipp.start(sipp.scenario("slot_uas.xml"), BACKUP)
    edge = start_edge([SLOT_A, SLOT_B], center=carrier_only(center))
    pid = edge.pid
    # A call in progress over the carrier (from the second slot) while the rules change.
    held, _ = sipp.start(
        sipp.scenario("caller.xml"), SLOT_B.removeprefix("sip:"),
        "-m", "1", "-d", "5000", "-s", "13900000000", f"{EDGE_HOST}:{EDGE_PORT}",
    )  # fmt: skip
    wait_for(lambda: len(log_lines(carrier_log, "INVITE")) == 1, 10, "the held call at carrier")
    assert "sip:913900000000@127.0.0.7:15601" in log_lines(carrier_log, "INVITE")[0]
    assert slot_dials(sipp, "0085212345678", 403)  # not in the dial plan yet

    started = time.monotonic()
    assert edge.follow_config(with_backup(center)) == ["rules"]
    applied = time.monotonic() - started
    print(f"\ntrunks, outbound trunk and dial plan applied in {applied * 1000:.0f} ms")

    # The next call goes to the new outbound trunk, without the carrier's prefix.
    assert slot_dials(sipp, "13900000001")
    (invite,) = log_lines(backup_log, "INVITE")
    assert "sip:13900000001@127.0.0.8:15603" in invite
    # A slot naming a trunk still gets that one.
    named = sipp.run(
        named_trunk_scenario(sipp, "carrier"), SLOT_A.removeprefix("sip:"),
        "-m", "1", "-d", "100", "-s", "13900000002",
    )  # fmt: skip
    assert named.ok(), named.errors
    assert "sip:913900000002@127.0.0.7:15601" in log_lines(carrier_log, "INVITE")[-1]
    # The new dial plan: 00852 numbers now go out.
    assert slot_dials(sipp, "0085212345678")
    assert "sip:0085212345678@127.0.0.8:15603" in log_lines(backup_log, "INVITE")[-1]
    # The call in progress was not touched: it ends normally, its BYE through the edge.
    assert held.wait(timeout=20) == 0
    assert len(log_lines(carrier_log, "BYE")) == 2  # the held call's and the named one's
    # Every trunk removed: slots cannot call out any more, at once.
    assert edge.follow_config(with_telephony(center, trunks={}, outbound_trunk=None)) == ["rules"]
    assert slot_dials(sipp, "13900000003", 403)
    assert "to 13900000003 refused: no trunk" in edge.log_tail(20)
    # The same rules from outside still never reach a trunk.
    outside = sipp.run(
        sipp.scenario("invite_rejected.xml", 404), f"{CALLER}:15301", "-m", "1", "-s", "13900000004"
    )
    assert outside.ok(), outside.errors
    assert edge.pid == pid and edge.is_running()
    assert len(log_lines(backup_log, "INVITE")) == 2


def test_a_new_trunks_address_is_trusted_live(
    start_edge: EdgeFactory, sipp: Sipp, center: CenterConfig, state_dir: Path
) -> None:
    _, slot_log = sipp.start(sipp.scenario("slot_uas.xml"), SLOT_A.removeprefix("sip:"))
    settings = make_settings(state_dir)
    settings.sip.edge.dids_from_trunks_only = True  # the production default
    edge = start_edge([SLOT_A], settings=settings, center=carrier_only(center))
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot answering probes")
    backup_host = BACKUP.split(":")[0]

    def contact_at_backup(status: int) -> bool:
        contact = f"sip:1001@{backup_host}:15201"
        return sipp.register(f"{AGENT}:15401", "1001", contact, status=status).ok()

    refused = sipp.run(
        sipp.scenario("invite_rejected.xml", 403), f"{backup_host}:15602", "-m", "1", "-s", DID
    )
    assert refused.ok(), refused.errors
    assert contact_at_backup(200)  # not a trunk's address yet: a softphone may be there
    assert edge.follow_config(with_backup(center)) == ["rules"]
    # Now a trunk: its calls to the DID reach a slot, and no softphone may register there.
    call = sipp.run(
        sipp.scenario("caller.xml"), f"{backup_host}:15602", "-m", "1", "-d", "100", "-s", DID
    )
    assert call.ok(), call.errors
    assert len(log_lines(slot_log, "INVITE")) == 1
    assert contact_at_backup(403)
    # Removed again, the address is refused again.
    assert edge.follow_config(carrier_only(center)) == ["rules"]
    again = sipp.run(
        sipp.scenario("invite_rejected.xml", 403), f"{backup_host}:15602", "-m", "1", "-s", DID
    )
    assert again.ok(), again.errors


def challenge_realm(raw: RawSip) -> str:
    request = sip_request(
        "REGISTER", f"sip:{EDGE_HOST}:{EDGE_PORT}", (raw.host, raw.port),
        headers={"From": f"<sip:1001@{REALM}>;tag=r1", "To": f"<sip:1001@{REALM}>",
                 "Contact": f"<sip:1001@{raw.host}:{raw.port}>", "Expires": "60"},
    )  # fmt: skip
    response = raw.final(request)
    assert response is not None and response.status == 401, response
    match = re.search(r'realm="([^"]+)"', response.header("WWW-Authenticate"))
    assert match, response.text
    return match.group(1)


def test_the_domain_follows_a_new_version_without_a_restart(
    start_edge: EdgeFactory, sipp: Sipp, center: CenterConfig
) -> None:
    edge = start_edge([SLOT_A])
    pid = edge.pid
    raw = RawSip(AGENT, 15402, EDGE)
    try:
        assert challenge_realm(raw) == REALM
        started = time.monotonic()
        assert edge.follow_config(with_telephony(center, sip_domain="cc.example")) == ["rules"]
        print(f"\nsip_domain applied in {(time.monotonic() - started) * 1000:.0f} ms")
        assert challenge_realm(raw) == "cc.example"
    finally:
        raw.close()

    def registers(password: str, status: int) -> bool:
        contact = f"sip:1001@{AGENT}:15201"
        return sipp.register(f"{AGENT}:15401", "1001", contact, password=password,
                             status=status, domain="cc.example").ok()  # fmt: skip

    # The HA1s were made with the old realm: they no longer match until rewritten.
    assert registers("pw1001", 403)
    ha1 = sip_ha1("1001", "cc.example", "pw1001")
    write_subscribers(edge.paths.db_dir, [Subscriber("1001", "cc.example", ha1)])
    assert registers("pw1001", 200)
    assert edge.pid == pid
