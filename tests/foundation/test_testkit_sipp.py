"""The SIPp kit (``callcenter.testkit``): its scenario files ship with the package and are
filled before SIPp reads them, every scenario it writes is well-formed XML, the runner gives
each SIPp a control port of its own, and ``fault_config`` is the shipped queues with two
typed changes. SIPp itself runs in the SIP tests that use the kit."""

from __future__ import annotations

import re
import socket
import tomllib
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from callcenter.testkit import sipp
from callcenter.testkit.faults import fault_config
from callcenter.testkit.rtp import dtmf_pcap, tone_pcap
from callcenter.testkit.scenarios import (
    SCENARIO_DIR,
    ScenarioError,
    agent_scenario,
    bench_caller_scenario,
    caller_scenario,
    customer_scenario,
    dtmf,
    pause,
    rejected_scenario,
    ringing_scenario,
    scenario,
)

ROOT = Path(__file__).resolve().parents[2]


def test_scenario_files_ship_with_the_package() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["*"]
    assert "*.xml" in patterns
    assert (SCENARIO_DIR / "__init__.py").exists()  # a package: found by packages.find
    assert {p.name for p in SCENARIO_DIR.glob("*.xml")} >= {"register.xml", "caller.xml"}


def test_a_scenario_is_copied_with_its_words_filled(tmp_path: Path) -> None:
    refused = scenario("invite_rejected.xml", tmp_path, status=486)
    assert refused.parent == tmp_path
    assert not re.search(r"@[A-Z_]+@", refused.read_text())
    assert '<recv response="486"' in refused.read_text()
    assert refused.read_text().count("sip:13800138000@[local_ip]") == 3  # the default caller
    hostile = scenario("invite_rejected.xml", tmp_path, status=486, caller="138%22")
    assert hostile.read_text().count("sip:138%22@[local_ip]") == 3
    nat = scenario("register.xml", tmp_path, status=403, via="127.0.0.4:5999;rport")
    assert nat.read_text().count("Via: SIP/2.0/[transport] 127.0.0.4:5999;rport;") == 2
    assert '<recv response="403"/>' in nat.read_text()
    plain = scenario("register.xml", tmp_path)  # the defaults: 200, SIPp's own address
    assert '<recv response="200"/>' in plain.read_text()
    assert "[local_ip]:[local_port];branch" in plain.read_text()
    trunk = scenario("caller.xml", tmp_path, uri_params=";trunk=backup")
    assert "[remote_port];trunk=backup SIP/2.0" in trunk.read_text()


def test_a_word_not_given_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="@VERB@"):
        scenario("caller_in_dialog.xml", tmp_path, status=403)
    with pytest.raises(ScenarioError, match="no SIPp scenario"):
        scenario("nothing.xml", tmp_path)


def test_every_scenario_is_well_formed_xml(tmp_path: Path) -> None:
    tone = tone_pcap(tmp_path / "tone.pcap", 440, 0.1)
    written = [
        caller_scenario(tmp_path / "c.xml", [("pause", 10), ("dtmf", "1"), ("info", "2"),
                                             ("audio", tone), ("wait_bye", 0)]),
        caller_scenario(tmp_path / "held.xml", [], hangup=False, sdp_media_port=40000),
        rejected_scenario(tmp_path / "r.xml", "4000000000", 404),
        agent_scenario(tmp_path / "a.xml", tone),
        agent_scenario(tmp_path / "busy.xml", None, reject=486),
        customer_scenario(tmp_path / "cu.xml", tone, 100, via="127.0.0.1:5060"),
        ringing_scenario(tmp_path / "ring.xml"),
        ringing_scenario(tmp_path / "never.xml", None),
        bench_caller_scenario(tmp_path / "b.xml", pause(10) + dtmf("#"), per_call_target=True),
    ]  # fmt: skip
    words = {"status": "200", "verb": "REFER"}
    written += [scenario(p.name, tmp_path, **words) for p in SCENARIO_DIR.glob("*.xml")]
    for path in written:
        root = ElementTree.parse(path).getroot()
        assert root.tag == "scenario", path
        assert not re.search(r"@[A-Z_]+@", path.read_text()), path
    assert str(dtmf_pcap("#")).endswith("dtmf_2833_pound.pcap")


def test_each_sipp_gets_a_free_control_port_of_its_own(tmp_path: Path) -> None:
    first = sipp.command(tmp_path / "x.xml", "127.0.0.3:5070", target="127.0.0.1:5060")
    port = int(first[first.index("-cp") + 1])
    assert port in sipp.CONTROL_PORTS and first[-1] == "127.0.0.1:5060"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("0.0.0.0", port + 1))  # another process's SIPp holds the next one
        second = sipp.command(tmp_path / "x.xml", "127.0.0.3:5071")
    assert int(second[second.index("-cp") + 1]) not in (port, port + 1)
    assert "127.0.0.1:5060" not in second  # a UAS names no target


def test_fault_config_changes_the_general_queue_by_its_model(tmp_path: Path) -> None:
    queues = tomllib.loads((fault_config(tmp_path / "config") / "queues.toml").read_text())
    general = queues["queues"]["general"]
    assert general["off_shift_agents_may_answer"] is True
    assert general["wrap_up_seconds"] == 2
    assert queues["queues"]["repair"].get("off_shift_agents_may_answer") is not True
