"""The SIP edge with real SIP: Kamailio in front of SIPp peers over loopback."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import redis

from callcenter.testkit.baresip import start_baresip
from callcenter.testkit.rtp import tone_wav
from config.loader import CenterConfig
from config.schemas import TelephonyFile, Trunk
from config.settings import Settings
from ivr.edge.paths import edge_paths
from ivr.edge.process import Edge, EdgeError
from ivr.edge.subscribers import write_subscribers
from tests.edge.conftest import (
    DID,
    EDGE_PORT,
    REALM,
    EdgeFactory,
    Sipp,
    agent_subscribers,
    log_lines,
    make_settings,
    slot_loads,
    slots_active,
    wait_for,
)

pytestmark = pytest.mark.sip

SLOT_A = "sip:127.0.0.1:15101"
TLS_PORT = EDGE_PORT + 1  # the edge's TLS listener when a test turns it on
SLOT_B = "sip:127.0.0.1:15102"
CALLER = "127.0.0.3"
AGENT = "127.0.0.4"


def register(sipp: Sipp, user: str, password: str, status: int, contact_port: int = 15201) -> bool:
    contact = f"sip:{user}@{AGENT}:{contact_port}"
    return sipp.register(f"{AGENT}:15401", user, contact, password=password, status=status).ok()


def start_slots(sipp: Sipp, *uris: str, scenario: str = "slot_uas.xml") -> list[Path]:
    logs = []
    for uri in uris:
        _, log = sipp.start(sipp.scenario(scenario), uri.removeprefix("sip:"))
        logs.append(log)
    return logs


# ---------------------------------------------------------------- registrar


def test_register_with_right_password_wrong_password_and_unknown_user(
    start_edge: EdgeFactory, sipp: Sipp
) -> None:
    edge = start_edge([SLOT_A])
    assert register(sipp, "1001", "pw1001", 200)
    assert register(sipp, "1001", "wrong-password", 403)
    assert register(sipp, "1999", "pw1999", 403)
    # 1001 may not register on behalf of 1002 even with 1001's own valid credentials.
    assert edge.contacts("1001")
    assert not edge.contacts("1999")


def test_new_agent_registers_without_reload(start_edge: EdgeFactory, sipp: Sipp) -> None:
    edge = start_edge([SLOT_A], agents=("1001",))
    assert register(sipp, "1002", "pw1002", 403)
    # Rewritten within the same second as the first write: the mtime bump makes db_text see it.
    write_subscribers(edge.paths.db_dir, agent_subscribers("1001", "1002"))
    assert register(sipp, "1002", "pw1002", 200)
    assert edge.is_running()


# ---------------------------------------------------------------- calls to the DID


def test_concurrent_calls_take_distinct_slots_and_486_when_all_busy(
    start_edge: EdgeFactory, sipp: Sipp
) -> None:
    logs = start_slots(sipp, SLOT_A, SLOT_B)
    edge = start_edge([SLOT_A, SLOT_B])
    wait_for(lambda: slots_active(edge, [SLOT_A, SLOT_B]), 10, "both slots answering probes")

    # Two calls held for a while (the hold only has to outlast the 486 check below).
    holders, _ = sipp.start(
        sipp.scenario("caller.xml"), f"{CALLER}:15301",
        "-m", "2", "-l", "2", "-r", "10", "-d", "6000", "-s", DID, f"127.0.0.1:{EDGE_PORT}",
    )  # fmt: skip
    wait_for(lambda: slot_loads(edge) == {SLOT_A: 1, SLOT_B: 1}, 5, "one call on each slot")
    assert [len(log_lines(log, "INVITE")) for log in logs] == [1, 1]

    busy = sipp.run(
        sipp.scenario("invite_rejected.xml", 486), f"{CALLER}:15302", "-m", "1", "-s", DID
    )
    assert busy.ok(), busy.errors
    assert holders.poll() is None, "the held calls ended before the 486 check: raise -d"

    assert holders.wait(timeout=20) == 0
    # The BYEs went through the edge (Record-Route honoured): both slots are free again.
    wait_for(lambda: slot_loads(edge) == {SLOT_A: 0, SLOT_B: 0}, 5, "slots released")
    assert [len(log_lines(log, "BYE")) for log in logs] == [1, 1]


def test_call_over_tcp_reaches_a_slot(start_edge: EdgeFactory, sipp: Sipp) -> None:
    (log,) = start_slots(sipp, SLOT_A)
    edge = start_edge([SLOT_A])
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot answering probes")
    call = sipp.run(
        sipp.scenario("caller.xml"),
        f"{CALLER}:15301",
        "-t",
        "t1",
        "-m",
        "1",
        "-d",
        "100",
        "-s",
        DID,
    )
    assert call.ok(), call.errors
    assert len(log_lines(log, "BYE")) == 1
    assert slot_loads(edge) == {SLOT_A: 0}


def test_no_slots_at_all_gives_486(start_edge: EdgeFactory, sipp: Sipp) -> None:
    edge = start_edge([])
    assert edge.slot_states() == {}
    busy = sipp.run(
        sipp.scenario("invite_rejected.xml", 486), f"{CALLER}:15301", "-m", "1", "-s", DID
    )
    assert busy.ok(), busy.errors
    (log,) = start_slots(sipp, SLOT_A)
    edge.add_slot(SLOT_A)
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "added slot answering probes")
    call = sipp.run(
        sipp.scenario("caller.xml"), f"{CALLER}:15301", "-m", "1", "-d", "100", "-s", DID
    )
    assert call.ok(), call.errors
    assert len(log_lines(log, "INVITE")) == 1


def test_unknown_did_gets_404_and_reaches_no_slot(
    start_edge: EdgeFactory, sipp: Sipp, center: CenterConfig
) -> None:
    (log,) = start_slots(sipp, SLOT_A)
    edge = start_edge([SLOT_A])
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot answering probes")
    result = sipp.run(
        sipp.scenario("invite_rejected.xml", 404), f"{CALLER}:15301", "-m", "1", "-s", "4009999999"
    )
    assert result.ok(), result.errors
    # An agent extension is not reachable from outside either.
    result = sipp.run(
        sipp.scenario("invite_rejected.xml", 404), f"{CALLER}:15301", "-m", "1", "-s", "1001"
    )
    assert result.ok(), result.errors
    assert log_lines(log, "INVITE") == []

    # A DID added by a new telephony version is answered by the running edge (htable reload,
    # no restart); removed again, it is refused again.
    pid = edge.pid
    dids = [d.model_dump() for d in center.telephony.dids]
    added = dataclasses.replace(
        center,
        telephony=TelephonyFile.model_validate(
            {**center.telephony.model_dump(), "dids": [*dids, {"number": "+4009999999"}]}
        ),
    )
    assert edge.follow_config(added) == ["dids"]  # its table reloaded, nothing restarted
    call = sipp.run(
        sipp.scenario("caller.xml"), f"{CALLER}:15301", "-m", "1", "-d", "100", "-s", "4009999999"
    )
    assert call.ok(), call.errors
    assert len(log_lines(log, "INVITE")) == 1
    moved = dataclasses.replace(
        center, telephony=center.telephony.model_copy(update={"sip_domain": "cc.example"})
    )
    # The DID gone again and a new domain (the realm): both live (test_edge_live_rules.py)
    assert edge.follow_config(moved) == ["dids", "rules"]
    result = sipp.run(
        sipp.scenario("invite_rejected.xml", 404), f"{CALLER}:15301", "-m", "1", "-s", "4009999999"
    )
    assert result.ok(), result.errors
    assert edge.pid == pid and len(log_lines(log, "INVITE")) == 1


def test_busy_slot_fails_over_to_the_next(start_edge: EdgeFactory, sipp: Sipp) -> None:
    (busy_log,) = start_slots(sipp, SLOT_A, scenario="busy_uas.xml")
    (good_log,) = start_slots(sipp, SLOT_B)
    edge = start_edge([SLOT_A, SLOT_B])
    wait_for(lambda: slots_active(edge, [SLOT_A, SLOT_B]), 10, "both slots answering probes")
    for _ in range(2):
        call = sipp.run(
            sipp.scenario("caller.xml"), f"{CALLER}:15301", "-m", "1", "-d", "100", "-s", DID
        )
        assert call.ok(), call.errors
    assert len(log_lines(good_log, "INVITE")) == 2
    # Whichever slot was tried first, no load is left behind on either.
    assert slot_loads(edge) == {SLOT_A: 0, SLOT_B: 0}
    # With the only good slot gone, the caller gets 486 and the busy slot's load is released.
    edge.remove_slot(SLOT_B)
    busy = sipp.run(
        sipp.scenario("invite_rejected.xml", 486), f"{CALLER}:15302", "-m", "1", "-s", DID
    )
    assert busy.ok(), busy.errors
    assert len(log_lines(busy_log, "INVITE")) >= 1
    assert slot_loads(edge) == {SLOT_A: 0}


def test_caller_cancelling_while_the_slot_rings_frees_the_slot(
    start_edge: EdgeFactory, sipp: Sipp
) -> None:
    (log,) = start_slots(sipp, SLOT_A, scenario="ringing_uas.xml")
    edge = start_edge([SLOT_A])
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot answering probes")
    for _ in range(2):  # the second call proves the first one's load was released
        cancel = sipp.run(
            sipp.scenario("caller_cancel.xml"), f"{CALLER}:15301", "-m", "1", "-s", DID
        )
        assert cancel.ok(), cancel.errors
    assert len(log_lines(log, "INVITE")) == 2
    assert slot_loads(edge) == {SLOT_A: 0}


def test_slot_that_does_not_answer_an_invite_fails_over(
    start_edge: EdgeFactory, sipp: Sipp
) -> None:
    logs = start_slots(sipp, SLOT_A, SLOT_B)
    edge = start_edge([SLOT_A, SLOT_B])
    wait_for(lambda: slots_active(edge, [SLOT_A, SLOT_B]), 10, "both slots answering probes")
    # A slot that answers probes but not INVITEs (hung, or died after its last probe).
    # dispatcher.add puts it first in the set, so with equal loads it is the first choice: the
    # call must wait fr_timer there, then fail over, not be lost.
    hung = "sip:127.0.0.1:15109"
    (hung_log,) = start_slots(sipp, hung, scenario="hung_uas.xml")
    edge.add_slot(hung)
    wait_for(lambda: slots_active(edge, [hung]), 10, "hung slot answering probes")
    call = sipp.run(
        sipp.scenario("caller.xml"), f"{CALLER}:15301", "-m", "1", "-d", "100", "-s", DID
    )
    assert call.ok(), call.errors
    assert len(log_lines(hung_log, "INVITE")) >= 1, "premise: the hung slot was tried first"
    assert sum(len(log_lines(log, "INVITE")) for log in logs) == 1
    assert f"slot {hung} did not answer call" in edge.log_tail(200)
    assert slot_loads(edge) == {SLOT_A: 0, SLOT_B: 0, hung: 0}


def test_dead_slot_leaves_rotation_and_returns(start_edge: EdgeFactory, sipp: Sipp) -> None:
    start_slots(sipp, SLOT_A)
    process_b, _ = sipp.start(sipp.scenario("slot_uas.xml"), SLOT_B.removeprefix("sip:"))
    edge = start_edge([SLOT_A, SLOT_B])
    wait_for(lambda: slots_active(edge, [SLOT_A, SLOT_B]), 10, "both slots answering probes")
    sipp.stop(process_b)
    wait_for(lambda: not edge.slot_states()[SLOT_B].active, 10, "dead slot marked inactive")
    wait_for(lambda: f"slot {SLOT_B} down" in edge.log_tail(200), 5, "slot down logged")
    call = sipp.run(
        sipp.scenario("caller.xml"), f"{CALLER}:15301", "-m", "1", "-d", "100", "-s", DID
    )
    assert call.ok(), call.errors
    (log_b,) = start_slots(sipp, SLOT_B)
    wait_for(lambda: slots_active(edge, [SLOT_B]), 10, "restarted slot back in rotation")
    wait_for(lambda: f"slot {SLOT_B} up" in edge.log_tail(200), 5, "slot up logged")
    assert log_lines(log_b, "INVITE") == []


def test_slots_added_removed_and_load_reset_at_run_time(
    start_edge: EdgeFactory, sipp: Sipp
) -> None:
    logs = start_slots(sipp, SLOT_A, SLOT_B)
    edge = start_edge([SLOT_A])
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot A answering probes")
    edge.add_slot(SLOT_B)
    assert SLOT_B in edge.paths.dispatcher_list.read_text()  # kept for an edge restart
    wait_for(lambda: slots_active(edge, [SLOT_A, SLOT_B]), 10, "added slot B answering probes")
    edge.remove_slot(SLOT_A)
    assert set(edge.slot_states()) == {SLOT_B}
    call = sipp.run(
        sipp.scenario("caller.xml"), f"{CALLER}:15301", "-m", "1", "-d", "100", "-s", DID
    )
    assert call.ok(), call.errors
    assert [len(log_lines(log, "INVITE")) for log in logs] == [0, 1]

    # A call whose BYE the edge never sees (the caller vanished) keeps the slot counted busy
    # until reset_slot_load: here a held call whose SIPp is killed before its BYE.
    holder, _ = sipp.start(
        sipp.scenario("caller.xml"),
        f"{CALLER}:15303",
        "-m",
        "1",
        "-d",
        "60000",
        "-s",
        DID,
        f"127.0.0.1:{EDGE_PORT}",
    )
    wait_for(lambda: slot_loads(edge) == {SLOT_B: 1}, 5, "held call counted on slot B")
    holder.kill()
    holder.wait()
    edge.reset_slot_load(SLOT_B)
    assert slot_loads(edge) == {SLOT_B: 0}


# ---------------------------------------------------------------- flood bans


@pytest.mark.parametrize("flood_scenario", ["flood.xml", "flood_invite.xml"])
def test_flood_gets_the_address_banned_while_others_get_through(
    start_edge: EdgeFactory, sipp: Sipp, flood_scenario: str
) -> None:
    (log,) = start_slots(sipp, SLOT_A)
    edge = start_edge([SLOT_A])
    wait_for(lambda: slots_active(edge, [SLOT_A]), 10, "slot answering probes")
    # INVITEs go to a number that is no DID: the flood must not tie up slots before the ban.
    flood = sipp.run(
        sipp.scenario(flood_scenario), "127.0.0.2:15301", "-m", "200", "-r", "500",
        "-s", "4009999999",
    )  # fmt: skip
    assert flood.returncode in (0, 1), flood.errors
    wait_for(lambda: "127.0.0.2" in edge.banned_addresses(), 5, "127.0.0.2 banned")
    # The ban outlasts the flood: the banned address gets no answer at all.
    banned = sipp.run(sipp.scenario("options.xml"), "127.0.0.2:15302", "-m", "1")
    assert not banned.ok()
    call = sipp.run(
        sipp.scenario("caller.xml"), f"{CALLER}:15301", "-m", "1", "-d", "100", "-s", DID
    )
    assert call.ok(), call.errors
    assert len(log_lines(log, "INVITE")) == 1
    edge.unban("127.0.0.2")
    assert "127.0.0.2" not in edge.banned_addresses()
    wait_for(
        lambda: sipp.run(sipp.scenario("options.xml"), "127.0.0.2:15302", "-m", "1").ok(),
        10,
        "127.0.0.2 answered again after unban",
    )


def test_trunk_addresses_are_never_banned(
    start_edge: EdgeFactory, sipp: Sipp, state_dir: Path
) -> None:
    settings = make_settings(state_dir)
    settings.sip.trunk_addresses = ["127.0.0.6"]
    edge = start_edge([SLOT_A], settings=settings)
    sipp.run(sipp.scenario("flood.xml"), "127.0.0.6:15301", "-m", "200", "-r", "500")
    sipp.run(sipp.scenario("flood.xml"), "127.0.0.2:15301", "-m", "200", "-r", "500")
    wait_for(lambda: "127.0.0.2" in edge.banned_addresses(), 5, "127.0.0.2 banned")
    assert "127.0.0.6" not in edge.banned_addresses()
    ping = sipp.run(sipp.scenario("options.xml"), "127.0.0.6:15302", "-m", "1")
    assert ping.ok(), ping.errors


# ---------------------------------------------------------------- calls placed by slots


def test_slot_reaches_a_registered_agent(start_edge: EdgeFactory, sipp: Sipp) -> None:
    edge = start_edge([SLOT_A])
    _, agent_log = sipp.start(sipp.scenario("slot_uas.xml"), f"{AGENT}:15201")
    assert register(sipp, "1001", "pw1001", 200, contact_port=15201)
    # The "slot" is a SIPp caller bound to the slot's address (127.0.0.1:15101).
    call = sipp.run(
        sipp.scenario("caller.xml"), "127.0.0.1:15101", "-m", "1", "-d", "100", "-s", "1001"
    )
    assert call.ok(), call.errors
    assert len(log_lines(agent_log, "INVITE")) == 1
    assert "sip:1001@127.0.0.4:15201" in log_lines(agent_log, "INVITE")[0]
    assert len(log_lines(agent_log, "BYE")) == 1
    # A known agent who is not registered: 480; from outside the slot set: 404 (above).
    offline = sipp.run(
        sipp.scenario("invite_rejected.xml", 480), "127.0.0.1:15101", "-m", "1", "-s", "1002"
    )
    assert offline.ok(), offline.errors
    assert slot_loads(edge) == {SLOT_A: 0}  # agent legs never count as slot load


def _group_alive(group: int) -> bool:
    """A live (not zombie) process in process group ``group``."""
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == group:
            return True
    return False


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_slot_reaches_a_baresip_softphone_registered_as_1001(
    start_edge: EdgeFactory, edge_settings: Settings, sipp: Sipp, tmp_path: Path, transport: str
) -> None:
    port = EDGE_PORT
    if transport == "tls":  # the TLS listener, with the self-signed certificate it generates
        port = TLS_PORT
        sip = edge_settings.sip.model_copy(update={"tls_port": TLS_PORT})
        edge = start_edge([SLOT_A], settings=edge_settings.model_copy(update={"sip": sip}))
    else:
        edge = start_edge([SLOT_A])
    certificate = edge.paths.tls_dir / "edge.crt"
    # Its own digest REGISTER, with the edge's address as domain (not sip_domain), auto-answer;
    # over TLS it checks the edge's certificate.
    phone, output = start_baresip(
        tmp_path,
        AGENT,
        f"<sip:1001@127.0.0.1:{port};transport={transport}>;auth_pass=pw1001;answermode=auto",
        tone=tone_wav(tmp_path / "tone.wav", 440, 30),
        cafile=certificate if transport == "tls" else None,
    )
    try:
        wait_for(lambda: edge.contacts("1001"), 10, "baresip registered as 1001")
        assert f"Socket: {transport}:127.0.0.1:{port}" in edge.contacts("1001")
        # -rtp_echo: the "slot" answers RTP, so the softphone's media has a live peer.
        call = sipp.run(
            sipp.scenario("caller.xml"), "127.0.0.1:15101", "-m", "1", "-d", "1000",
            "-rtp_echo", "-s", "1001",
        )  # fmt: skip
        assert call.ok(), call.errors
        if transport == "udp":
            # The edge killed and started again: the registration is in Redis (usrloc over
            # db_redis), and the next call reaches the phone, which has not registered again.
            # Kamailio's main process alone: its children live on with the SIP ports, and
            # the start ends them (their process group runs this edge's configuration).
            group = edge.pid or 0
            os.kill(group, signal.SIGKILL)
            wait_for(lambda: not edge.is_running(), 5, "the edge killed")
            assert _group_alive(group)
            edge.start()
            assert edge.pid != group and not _group_alive(group)
            assert edge.contacts("1001")
            again = sipp.run(
                sipp.scenario("caller.xml"), "127.0.0.1:15101", "-m", "1", "-d", "500",
                "-rtp_echo", "-s", "1001",
            )  # fmt: skip
            assert again.ok(), again.errors
    finally:
        phone.terminate()
        phone.wait(timeout=10)
    log = output.read_text(errors="replace")
    assert log.count("Call established") == (2 if transport == "udp" else 1), log
    assert log.count("200 OK") == 1, log  # one REGISTER answered, before the restart


def test_edges_of_one_center_share_registrations_live_and_another_center_sees_none(
    start_edge: EdgeFactory, edge_settings: Settings, sipp: Sipp, redis_client: redis.Redis
) -> None:
    """Three edges on one Redis database: a second edge of the same center (same key prefix)
    reaches a phone registered at the first after both started, and forgets it when the first
    drops it; an edge of another center (another prefix) never sees it."""
    first = start_edge([SLOT_A])
    second = start_edge([SLOT_A], settings=beside(edge_settings, "127.0.0.5", "second"))
    other = start_edge(
        [SLOT_A],
        settings=beside(edge_settings, "127.0.0.8", "other").model_copy(
            update={"redis_prefix": "other-center"}
        ),
    )
    _, agent_log = sipp.start(sipp.scenario("slot_uas.xml"), f"{AGENT}:15201")
    assert register(sipp, "1001", "pw1001", 200)  # at the first edge
    # Every registration key is under the center's prefix; nothing at the database's top level.
    keys = sorted(str(k) for k in redis_client.keys("*") if "location" in str(k))
    assert keys and all(k.startswith("cc:location:") for k in keys), keys
    assert not redis_client.keys("location:*") and not redis_client.keys("version:*")
    assert "127.0.0.4:15201" in second.contacts("1001")
    assert not other.contacts("1001")

    # The slot's call to 1001 through the second edge reaches the phone...
    call = sipp.run(
        sipp.scenario("caller.xml"), "127.0.0.1:15101", "-m", "1", "-d", "100", "-s", "1001",
        "-aa", edge="127.0.0.5:15060",
    )  # fmt: skip
    assert call.ok(), call.errors
    assert len(log_lines(agent_log, "INVITE")) == 1
    # ... through the other center's edge it finds an agent that is not registered there.
    offline = sipp.run(
        sipp.scenario("invite_rejected.xml", 480), "127.0.0.1:15101", "-m", "1", "-s", "1001",
        edge="127.0.0.8:15060",
    )  # fmt: skip
    assert offline.ok(), offline.errors
    assert len(log_lines(agent_log, "INVITE")) == 1

    # Dropped at the first edge (a disabled agent): gone from the second at once.
    first.rpc("ul.rm", "location", "s:1001")
    assert not second.contacts("1001")
    gone = sipp.run(
        sipp.scenario("invite_rejected.xml", 480), "127.0.0.1:15101", "-m", "1", "-s", "1001",
        edge="127.0.0.5:15060",
    )  # fmt: skip
    assert gone.ok(), gone.errors


def beside(settings: Settings, host: str, name: str) -> Settings:
    """Settings for another edge on ``host`` (same port), with its own state directory."""
    state = settings.state_dir / name
    return settings.model_copy(
        update={
            "state_dir": state,
            "sip": settings.sip.model_copy(
                update={
                    "edge_host": host,
                    "kamailio_ctl_socket": str(state / "kamailio" / "ctl.sock"),
                }
            ),
        }
    )


def test_outbound_numbers_go_only_to_the_configured_trunk(
    start_edge: EdgeFactory, sipp: Sipp, center: CenterConfig
) -> None:
    # Without a trunk, a slot cannot call out.
    edge = start_edge([SLOT_A])
    refused = sipp.run(
        sipp.scenario("invite_rejected.xml", 403), "127.0.0.1:15101", "-m", "1", "-s", "13900000000"
    )
    assert refused.ok(), refused.errors
    edge.stop()

    telephony = TelephonyFile.model_validate(
        {
            **center.telephony.model_dump(),
            "trunks": {"carrier": Trunk(host="127.0.0.7", port=15601, outbound_prefix="9")},
            "outbound_trunk": "carrier",
        }
    )
    with_trunk = dataclasses.replace(center, telephony=telephony)
    _, trunk_log = sipp.start(sipp.scenario("slot_uas.xml"), "127.0.0.7:15601")
    edge = start_edge([SLOT_A], center=with_trunk)
    call = sipp.run(
        sipp.scenario("caller.xml"), "127.0.0.1:15101", "-m", "1", "-d", "100", "-s", "13900000000"
    )
    assert call.ok(), call.errors
    invites = log_lines(trunk_log, "INVITE")
    assert len(invites) == 1 and "sip:913900000000@127.0.0.7:15601" in invites[0]
    # The same number dialled from outside never reaches the trunk.
    outside = sipp.run(
        sipp.scenario("invite_rejected.xml", 404), f"{CALLER}:15301", "-m", "1", "-s", "13900000000"
    )
    assert outside.ok(), outside.errors
    # Nor does a forged in-dialog request whose Route set points past the edge to the trunk.
    forged = sipp.run(
        sipp.scenario("forged_route.xml"),
        f"{CALLER}:15301",
        "-m",
        "1",
        "-key",
        "trunk",
        "127.0.0.7:15601",
    )
    assert forged.ok(), forged.errors
    assert len(log_lines(trunk_log, "INVITE")) == 1


# ---------------------------------------------------------------- process


def test_start_fails_clearly_when_the_port_is_taken(
    edge_settings: Settings, center: CenterConfig
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as blocker:
        blocker.bind(("127.0.0.1", EDGE_PORT))
        edge = Edge(edge_settings, center, [SLOT_A])
        started = time.monotonic()
        with pytest.raises(EdgeError, match="kamailio"):
            edge.start(timeout=10)
        assert time.monotonic() - started < 60
        assert not edge.is_running()


def test_stop_and_restart_keep_slots_and_credentials(
    start_edge: EdgeFactory, sipp: Sipp, edge_settings: Settings
) -> None:
    edge = start_edge([SLOT_A])
    edge.add_slot(SLOT_B)
    pid = edge.pid
    edge.stop()
    assert not edge.is_running() and not edge.ping(timeout=0.3)
    assert pid is not None and not Path(f"/proc/{pid}").exists()
    edge.start()
    assert set(edge.slot_states()) == {SLOT_A, SLOT_B}
    assert (edge_paths(edge_settings).db_dir / "subscriber").read_text().count(REALM) == 2
    assert register(sipp, "1001", "pw1001", 200)


def test_start_ends_a_stale_edge_left_by_a_crashed_supervisor(
    start_edge: EdgeFactory, edge_settings: Settings, center: CenterConfig
) -> None:
    lost = start_edge([SLOT_A])
    stale_pid = lost.pid
    # A new supervisor does not know the old Edge object, only the state directory.
    edge = Edge(edge_settings, center, [SLOT_A])
    start_edge.started.append(edge)
    edge.start()
    assert edge.is_running() and edge.pid != stale_pid
    assert not lost.is_running()
