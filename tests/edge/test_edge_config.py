"""Rendering the edge's files: kamailio.cfg, the slot list, the credential tables."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from callcenter.auth import sip_ha1
from callcenter.context import AppContext
from config.loader import CenterConfig
from config.schemas import TelephonyFile
from config.settings import EdgeTuning
from cti.models import Agent
from ivr.edge.cfgtext import EdgeConfigError
from ivr.edge.config import edge_config_problems, edge_uri, render_config
from ivr.edge.dids import render_dids_table, write_dids_table
from ivr.edge.dispatcher import normalize_slot_uri, render_dispatcher_list
from ivr.edge.paths import EdgePaths, edge_paths
from ivr.edge.rules import render_rules_table, rules, write_rules_table
from ivr.edge.subscribers import (
    SUBSCRIBER_HEADER,
    Subscriber,
    render_subscriber_table,
    sync_subscribers,
    write_subscribers,
)
from tests.edge.conftest import make_settings


def with_telephony(center: CenterConfig, **changes: object) -> CenterConfig:
    telephony = TelephonyFile.model_validate({**center.telephony.model_dump(), **changes})
    return dataclasses.replace(center, telephony=telephony)


def accepted_by_kamailio(
    paths: EdgePaths, text: str, center: CenterConfig, rules_table: str | None = None
) -> None:
    """The rendered kamailio.cfg ``text`` and the tables it reads, written where the edge
    keeps them, pass ``kamailio -c`` (a parse and module check, nothing started)."""
    paths.config.write_text(text)
    paths.dispatcher_list.write_text(render_dispatcher_list(["127.0.0.1:21000"]))
    write_subscribers(paths.db_dir, [])
    write_dids_table(paths.db_dir, center)
    if rules_table is not None:
        write_rules_table(paths.db_dir, rules_table)
    check = subprocess.run(
        ["kamailio", "-c", "-f", str(paths.config), "-Y", str(paths.runtime_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_rendered_config_is_accepted_by_kamailio(state_dir: Path, center: CenterConfig) -> None:
    settings = make_settings(state_dir)
    settings.sip.trunk_addresses = ["192.0.2.10"]
    settings.sip.edge.flood_exempt_addresses = ["198.51.100.7"]
    center = with_telephony(
        center,
        dids=[{"number": "4008001234"}, {"number": "+862161234567"}],
        trunks={"carrier": {"host": "192.0.2.10", "port": 5070, "outbound_prefix": "9"}},
        outbound_trunk="carrier",
    )
    paths = edge_paths(settings)
    paths.directory.mkdir(parents=True)
    paths.runtime_dir.mkdir()
    text = render_config(settings, center, paths)
    assert "$sht(dids=>$rU)" in text  # the DIDs are data (ivr/edge/dids.py), not script
    assert render_dids_table(center).splitlines()[1:] == [
        "4008001234:0:1:1:0",
        "+4008001234:0:1:1:0",
        "862161234567:0:1:1:0",
        "+862161234567:0:1:1:0",
    ]
    # Trunks, their addresses and the realm are data too (ivr/edge/rules.py), not script.
    assert "192.0.2.10" not in text and "callcenter.local" not in text
    data = rules(settings, center)
    assert data["peer.192.0.2.10"] == 1  # a trunk: flood-exempt, DIDs, never a Contact
    assert data["peer.198.51.100.7"] == 2  # flood-exempt only
    assert data["trunk.carrier"] == "sip:9|@192.0.2.10:5070;transport=udp"
    assert data["outbound"] == "carrier" and data["trunks"] == 1
    assert data["realm"] == "callcenter.local"
    assert "@@" not in text
    # Trap: a "#!define" with a trailing comment would carry the comment into its value.
    assert not [
        line for line in text.splitlines() if line.startswith("#!define") and "#" in line[8:]
    ]
    accepted_by_kamailio(paths, text, center, render_rules_table(settings, center))
    # db_text's separator is escaped in the table (an IPv6 trunk host, the dial plan)
    assert (
        "trunk.carrier:0:0:sip\\:9|@192.0.2.10\\:5070;transport=udp:0"
        in (paths.db_dir / "rules").read_text().splitlines()
    )


def test_tls_listener_and_registrations_in_redis_are_rendered_and_checked(
    state_dir: Path, center: CenterConfig
) -> None:
    settings = make_settings(state_dir)
    settings.sip.tls_port = 15061
    paths = edge_paths(settings)
    text = render_config(settings, center, paths)
    assert "listen=tls:127.0.0.1:15061" in text and 'loadmodule "tls.so"' in text
    assert f'"certificate", "{paths.tls_dir / "edge.crt"}"' in text  # generated for the demo
    assert 'modparam("usrloc", "db_mode", 3)' in text  # Redis only: every edge sees them
    assert 'modparam("usrloc", "db_url", "redis://127.0.0.1:' in text
    settings.sip.tls_port = 0
    plain = render_config(settings, center, paths)
    assert "listen=tls:" not in plain and 'loadmodule "tls.so"' not in plain
    # Each wrong setting named.
    for change, problem in (
        ({"tls_port": settings.sip.edge_port}, "already the UDP/TCP port"),
        ({"tls_port": 15061, "tls_certificate": "/etc/edge.crt"}, "go together"),
    ):
        wrong = settings.model_copy(update={"sip": settings.sip.model_copy(update=change)})
        with pytest.raises(EdgeConfigError, match=problem):
            render_config(wrong, center, paths)
    production = settings.model_copy(
        update={
            "environment": "production",
            "sip": settings.sip.model_copy(update={"tls_port": 15061}),
        }
    )
    with pytest.raises(EdgeConfigError, match=r"production needs sip\.tls_certificate"):
        render_config(production, center, paths)
    unix = settings.model_copy(update={"redis_url": "unix:///run/redis.sock?db=0"})
    with pytest.raises(EdgeConfigError, match=r"registrations in Redis over TCP"):
        render_config(unix, center, paths)


def test_registrations_keys_are_under_the_centers_prefix(
    state_dir: Path, center: CenterConfig
) -> None:
    settings = make_settings(state_dir).model_copy(update={"redis_prefix": "center-b"})
    paths = edge_paths(settings)
    text = render_config(settings, center, paths)
    assert '"center-b:location=entry:ruid&usrdom:username&' in text
    assert '"center-b:version=entry:table_name"' in text
    in_memory = settings.model_copy(
        update={"sip": settings.sip.model_copy(update={"edge": EdgeTuning(usrloc_db_mode=1)})}
    )
    assert 'modparam("usrloc", "db_mode", 1)' in render_config(in_memory, center, paths)
    # db_redis takes the text before the first ':' as the keys' prefix, and ';=&,' or a SCAN
    # pattern's characters would break its keys parameter: such a prefix is named.
    for bad in ("cc:test", "a=b", "a;b", "a*", "", "a b"):
        wrong = settings.model_copy(update={"redis_prefix": bad})
        with pytest.raises(EdgeConfigError, match=r"redis_prefix"):
            render_config(wrong, center, paths)
        assert any("redis_prefix" in p for p in edge_config_problems(wrong, center))


def test_tls_trunk_is_refused_with_a_clear_message(state_dir: Path, center: CenterConfig) -> None:
    settings = make_settings(state_dir)
    center = with_telephony(center, trunks={"carrier": {"host": "192.0.2.10", "transport": "tls"}})
    with pytest.raises(EdgeConfigError, match=r"trunks\.carrier\.transport: tls"):
        render_config(settings, center, edge_paths(settings))


def test_unresolvable_trunk_host_is_named(state_dir: Path, center: CenterConfig) -> None:
    settings = make_settings(state_dir)
    center = with_telephony(center, trunks={"carrier": {"host": "no-such-host.invalid"}})
    with pytest.raises(EdgeConfigError, match=r"trunks\.carrier\.host: cannot resolve"):
        render_config(settings, center, edge_paths(settings))


def test_no_trunk_means_slots_cannot_call_out(state_dir: Path, center: CenterConfig) -> None:
    settings = make_settings(state_dir)
    text = render_config(settings, center, edge_paths(settings))
    route = text.split("route[TO_TRUNK] {", 1)[1].split("\n}", 1)[0]
    no_trunk = route.split("$sht(rules=>trunks) == 0) {", 1)[1].split("}", 1)[0]
    assert 'sl_send_reply("403"' in no_trunk and "exit;" in no_trunk
    data = rules(settings, center)
    assert data["trunks"] == 0 and "outbound" not in data
    assert not [key for key in data if key.startswith("trunk.")]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:21000", "sip:127.0.0.1:21000"),
        ("sip:127.0.0.1:21000", "sip:127.0.0.1:21000"),
        (" sip:slot-host:21001 ", "sip:slot-host:21001"),
    ],
)
def test_slot_uris_are_normalized(given: str, expected: str) -> None:
    assert normalize_slot_uri(given) == expected


@pytest.mark.parametrize(
    "bad", ["127.0.0.1", "sip:127.0.0.1:21000;transport=udp", "sip:1.2.3.4:0", "x y:1"]
)
def test_bad_slot_uris_are_refused(bad: str) -> None:
    with pytest.raises(EdgeConfigError, match="slot address"):
        normalize_slot_uri(bad)


def test_dispatcher_list_has_one_call_per_slot_and_no_duplicates() -> None:
    text = render_dispatcher_list(["127.0.0.1:21000", "sip:127.0.0.1:21000", "127.0.0.1:21001"])
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    assert rows == [
        "1 sip:127.0.0.1:21000 0 0 duid=127_0_0_1_21000;maxload=1",
        "1 sip:127.0.0.1:21001 0 0 duid=127_0_0_1_21001;maxload=1",
    ]


# ---------------------------------------------------------------- subscribers


def test_bad_rows_are_left_out_not_written() -> None:
    good = sip_ha1("1001", "callcenter.local", "pw1001")
    text, problems = render_subscriber_table(
        [
            Subscriber("1001", "callcenter.local", good),
            Subscriber("", "callcenter.local", good),  # an empty field would break the table
            Subscriber("1002", "callcenter.local", ""),
            Subscriber("1003", "callcenter.local", "not-hex"),
            Subscriber("1001", "callcenter.local", good),
        ]
    )
    assert text == f"{SUBSCRIBER_HEADER}\n1:1001:callcenter.local:{good}\n"
    assert len(problems) == 4
    assert any("'1003'" in p and "32 hex" in p for p in problems)


def test_separator_is_escaped() -> None:
    ha1 = "0" * 32
    text, _ = render_subscriber_table([Subscriber("a:b", "x\\y", ha1)])
    assert text.splitlines()[1] == f"1:a\\:b:x\\\\y:{ha1}"


def test_rewrite_within_the_same_second_changes_the_mtime(tmp_path: Path) -> None:
    ha1 = "0" * 32
    write_subscribers(tmp_path, [Subscriber("1001", "r", ha1)])
    first = os.stat(tmp_path / "subscriber").st_mtime
    write_subscribers(tmp_path, [Subscriber("1001", "r", ha1), Subscriber("1002", "r", ha1)])
    second = os.stat(tmp_path / "subscriber").st_mtime
    assert int(second) > int(first)
    assert (tmp_path / "version").read_text().splitlines()[1:] == [
        "subscriber:7",
        "dids:2",
        "rules:2",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_sync_subscribers_writes_active_agents(ctx: AppContext) -> None:
    with ctx.sessions.begin() as session:
        agent = session.query(Agent).filter_by(extension="1012").one()
        agent.active = False
    problems = sync_subscribers(ctx)
    assert problems == []
    table = (edge_paths(ctx.settings).db_dir / "subscriber").read_text().splitlines()
    realm = ctx.config.telephony.sip_domain
    users = [line.split(":")[1] for line in table[1:]]
    assert users == [f"{n}" for n in range(1001, 1012)]
    assert f":1001:{realm}:{sip_ha1('1001', realm, 'pw1001')}" in table[1]


def test_edge_must_listen_on_one_address(state_dir: Path, center: CenterConfig) -> None:
    settings = make_settings(state_dir)
    settings.sip.edge_host = "0.0.0.0"
    with pytest.raises(EdgeConfigError, match=r"sip.edge_host: '0.0.0.0' listens everywhere"):
        render_config(settings, center, edge_paths(settings))
    settings.sip.edge_host = "edge.example"
    with pytest.raises(EdgeConfigError, match="is not an IP address"):
        render_config(settings, center, edge_paths(settings))


def test_edge_uri_for_slots(state_dir: Path) -> None:
    settings = make_settings(state_dir)
    assert edge_uri(settings, "1001") == "sip:1001@127.0.0.1:15060"
    assert edge_uri(settings, "13900000000", trunk="carrier") == (
        "sip:13900000000@127.0.0.1:15060;trunk=carrier"
    )


def test_sync_job_uses_the_runtime_context(ctx: AppContext) -> None:
    from ivr.edge.jobs import sync_edge_subscribers

    assert sync_edge_subscribers() == []
    table = edge_paths(ctx.settings).db_dir / "subscriber"
    first = table.stat().st_mtime_ns
    assert sync_edge_subscribers() == []  # twice: same content, file left alone
    assert table.stat().st_mtime_ns == first
    assert len(table.read_text().splitlines()) == 1 + 12


def test_edge_config_problems_for_check_config(state_dir: Path, center: CenterConfig) -> None:
    settings = make_settings(state_dir)
    assert edge_config_problems(settings, center) == []
    bad = with_telephony(center, trunks={"carrier": {"host": "192.0.2.1", "transport": "tls"}})
    (problem,) = edge_config_problems(settings, bad)
    assert problem.startswith("SIP edge: telephony.toml: trunks.carrier.transport")


def test_a_stale_pid_file_never_ends_an_unrelated_process(
    state_dir: Path, center: CenterConfig
) -> None:
    from ivr.edge.process import Edge

    edge = Edge(make_settings(state_dir), center, [])
    edge.paths.directory.mkdir(parents=True)
    pid_file = edge.paths.directory / "kamailio.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # this very test process: not a kamailio of ours
    edge._stop_stale()
    assert not pid_file.exists()  # forgotten, and we are still here


def test_security_rules_are_rendered_from_settings(state_dir: Path, center: CenterConfig) -> None:
    settings = make_settings(state_dir, max_body_bytes=4096, auth_fail_limit=3)
    settings.sip.edge.scanner_user_agents = ["friendly-scanner", "Scan.Tool"]
    center = with_telephony(center, dial_plan={"international_prefixes": ["00852"]})
    text = render_config(settings, center, edge_paths(settings))
    assert "if ($bs > 4096)" in text
    assert "$var(fails) >= 3" in text
    assert '=~ "(friendly-scanner|scan[.]tool)"' in text
    data = rules(settings, center)  # the dial plan is data (rules htable), not script
    assert data["plan.national"] == "^((1[3-9][0-9]{9})|(0[1-9][0-9]{9,10}))$"
    assert data["plan.international"] == "^(00852[0-9]{4,12})$"
    assert "plan.international" not in rules(settings, with_telephony(center, dial_plan={}))
    # An edge on a loopback address (tests) cannot refuse loopback Contacts wholesale.
    assert '"^(127[.]' not in text
    settings.sip.edge_host = "192.0.2.5"
    assert '"^(127[.]' in render_config(settings, center, edge_paths(settings))


def test_scanner_user_agents_are_checked(state_dir: Path, center: CenterConfig) -> None:
    settings = make_settings(state_dir)
    settings.sip.edge.scanner_user_agents = ['evil" || 1']
    with pytest.raises(EdgeConfigError, match=r"scanner_user_agents\[0\]"):
        render_config(settings, center, edge_paths(settings))


def test_dids_from_trunks_only_is_on_in_production(state_dir: Path, center: CenterConfig) -> None:
    center = with_telephony(center, trunks={"carrier": {"host": "192.0.2.10"}})
    settings = make_settings(state_dir)
    assert "not a trunk" not in render_config(settings, center, edge_paths(settings))
    production = settings.model_copy(update={"environment": "production"})
    text = render_config(production, center, edge_paths(production))
    assert "refused: not a trunk" in text and "$sht(rules=>peer.$si) != 1" in text
    assert rules(production, center)["peer.192.0.2.10"] == 1
    # No trunk at all: nothing to compare with, so DIDs stay reachable (checked live).
    assert "$sht(rules=>trunk_addresses) > 0" in text
    bare = with_telephony(center, trunks={})
    assert rules(production, bare)["trunk_addresses"] == 0


@pytest.mark.parametrize("mode", ["nat", "always"])
def test_media_relay_is_rendered_and_accepted_by_kamailio(
    state_dir: Path, center: CenterConfig, mode: str
) -> None:
    settings = make_settings(state_dir)
    settings.sip.media_relay.rtpengine = "udp:127.0.0.1:22299"
    settings.sip.media_relay.mode = mode  # type: ignore[assignment]
    paths = edge_paths(settings)
    paths.directory.mkdir(parents=True)
    paths.runtime_dir.mkdir()
    text = render_config(settings, center, paths)
    assert 'modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:22299")' in text
    assert ("isbflagset(6)" in text) == (mode == "nat")
    assert "rtpengine_manage(" in text and "@@" not in text
    accepted_by_kamailio(paths, text, center)


def test_media_relay_off_by_default_and_bad_sockets_named(
    state_dir: Path, center: CenterConfig
) -> None:
    settings = make_settings(state_dir)
    paths = edge_paths(settings)
    assert "rtpengine" not in render_config(settings, center, paths).split("####### routing")[0]
    settings.sip.media_relay.rtpengine = "tcp:127.0.0.1:22222"
    with pytest.raises(EdgeConfigError, match=r"sip\.media_relay\.rtpengine"):
        render_config(settings, center, paths)
    settings.sip.media_relay.rtpengine = "udp:127.0.0.1:22222"
    settings.sip.media_relay.port_min = 40000
    settings.sip.media_relay.port_max = 39000
    with pytest.raises(EdgeConfigError, match="port_min"):
        render_config(settings, center, paths)


def test_a_version_the_edge_cannot_take_changes_nothing(
    state_dir: Path, center: CenterConfig
) -> None:
    from ivr.edge.process import Edge

    edge = Edge(make_settings(state_dir), center, [])
    edge.render()
    tables = {name: (edge.paths.db_dir / name).read_text() for name in ("dids", "rules")}
    bad = with_telephony(
        center,
        dids=[{"number": "4009999999"}],
        trunks={"carrier": {"host": "no-such-host.invalid"}},
    )
    with pytest.raises(EdgeConfigError, match=r"trunks\.carrier\.host: cannot resolve"):
        edge.follow_config(bad)
    # Neither table was written (the DIDs are rendered with the rules, then both written).
    assert {name: (edge.paths.db_dir / name).read_text() for name in tables} == tables
    assert edge.center_config is center
    good = with_telephony(center, trunks={"carrier": {"host": "192.0.2.10"}})
    assert edge.follow_config(good) == ["rules"]  # not running: written, nothing to reload
    assert "trunk.carrier:" in (edge.paths.db_dir / "rules").read_text()
