"""docker-compose.yml and the generated systemd units run what ``callcenter up`` runs, with the
same commands (no Docker engine and no systemd needed: the files are read and verified)."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.cli import COMMANDS, node_identity
from callcenter.processes import PROCESSES, argv_of, split_processes, up_processes
from callcenter.systemd import MIGRATE, TARGET, UnitOptions, render_units, unit_name

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def callcenter_services() -> dict[str, dict[str, Any]]:
    """Services running this project's image (the `x-callcenter` anchor)."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image") == "callcenter:latest"
    }


def test_the_image_runs_the_callcenter_command() -> None:
    """Compose gives `callcenter <command>`; up runs `python -m callcenter.cli <command>`: the
    same entry point (the console script is callcenter.cli:main)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["callcenter"\]$', dockerfile, re.MULTILINE)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["callcenter"] == "callcenter.cli:main"
    for spec in (*PROCESSES, *split_processes()):
        assert argv_of(spec) == [sys.executable, "-m", "callcenter.cli", *spec.command]


def test_compose_runs_every_process_up_runs_with_the_same_command() -> None:
    services = callcenter_services()
    long_running = {
        name: service["command"]
        for name, service in services.items()
        if service.get("restart") != "no"
    }
    # The image has the engine: compare with the whole table (up drops the engine only from
    # a build without ivr/), the engine split into the edge and scalable media nodes.
    assert long_running == {spec.name: list(spec.command) for spec in split_processes()}
    up_commands = {spec.name: list(spec.command) for spec in PROCESSES}
    assert {name: long_running[name] for name in up_commands if name != "engine"} == {
        name: command for name, command in up_commands.items() if name != "engine"
    }
    # up's engine runs its own edge in front of its slots; compose runs the two halves
    assert up_commands["engine"] == ["engine"]
    assert long_running["edge"] == ["edge"]
    assert long_running["engine"] == ["engine", "--node", "auto", "--host", "auto"]
    assert {spec.name for spec in up_processes()} <= set(long_running)
    assert "router" in long_running  # without it no call is ever offered to an agent
    for name, service in services.items():
        if service.get("restart") == "no":  # one-shot steps: real subcommands
            assert service["command"][0] in COMMANDS, name
            continue
        assert service["restart"] == "unless-stopped", name  # Docker restarts what dies
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_health_and_networks() -> None:
    services = compose()["services"]
    check = " ".join(services["api"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/readyz" in check
    assert services["api"]["environment"]["CALLCENTER_HTTP__HOST"] == "0.0.0.0"
    # The SIP edge on the host's network, Redis and PostgreSQL reached through their ports
    # published on the host's loopback.
    edge = services["edge"]
    assert edge["network_mode"] == "host"
    assert "127.0.0.1:6379" in edge["environment"]["CALLCENTER_REDIS_URL"]
    assert "@127.0.0.1:5432/" in edge["environment"]["CALLCENTER_DATABASE_URL"]
    # Media nodes scale: no host network (replicas would share its ports and name), no fixed
    # name or published port; they send calls to the edge's public address.
    engine = services["engine"]
    assert "network_mode" not in engine and "ports" not in engine
    assert "container_name" not in engine and "hostname" not in engine
    assert engine["environment"]["CALLCENTER_SIP__EDGE_HOST"] == "${SIP_PUBLIC_ADDRESS}"
    assert "recordings:/var/lib/callcenter/recordings" in engine["volumes"]
    assert "127.0.0.1:6379:6379" in services["redis"]["ports"]
    assert "127.0.0.1:5432:5432" in services["postgres"]["ports"]


def _parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_systemd_units_run_what_up_runs(tmp_path: Path) -> None:
    options = UnitOptions(state_dir=str(tmp_path))
    units = render_units(options)
    specs = up_processes()
    assert set(units) == {MIGRATE, TARGET, *(unit_name(spec) for spec in specs)}
    for spec in specs:
        unit = _parse(units[unit_name(spec)])
        assert unit["Service"]["ExecStart"].split() == argv_of(spec)  # the same command
        assert unit["Service"]["Restart"] == "always"
        assert unit["Service"]["KillMode"] == "control-group"  # slots and Kamailio end too
        assert unit["Unit"]["StartLimitBurst"] == "5"
        assert MIGRATE in unit["Unit"]["Requires"]
        assert unit["Install"]["WantedBy"] == TARGET
    target = _parse(units[TARGET])
    assert set(target["Unit"]["Wants"].split()) == {MIGRATE, *(unit_name(s) for s in specs)}
    migrate = _parse(units[MIGRATE])
    assert migrate["Service"]["Type"] == "oneshot"
    assert migrate["Service"]["ExecStart"].split()[-1] == "migrate"


def test_systemd_units_verify(tmp_path: Path) -> None:
    out = tmp_path / "units"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "callcenter.cli",
            "systemd-units",
            "--out",
            str(out),
            "--state-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    files = sorted(out.iterdir())
    assert {f.name for f in files} == set(render_units(UnitOptions()))
    verify = subprocess.run(
        ["systemd-analyze", "verify", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    # Any unknown key, bad value or missing executable is a message here.
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr


def test_systemd_units_needs_a_directory() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "systemd-units"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--out" in result.stderr


def test_redis_keeps_the_routing_state_on_disk_in_production(tmp_path: Path) -> None:
    """compose's Redis runs with its append-only file; a Redis the center did not start gets it
    turned on by ``migrate`` in production, kept in Redis's own configuration file."""
    import shutil
    import signal

    import redis as redis_lib

    from callcenter.services import aof_wanted, ensure_aof, start_redis
    from config.settings import Settings
    from tests.metrics.conftest import free_port

    redis_service = compose()["services"]["redis"]
    assert redis_service["command"][-2:] == ["--appendonly", "yes"]
    assert redis_service["volumes"]  # the file outlives the container
    assert aof_wanted(None, "production") and not aof_wanted(None, "development")
    assert not aof_wanted(False, "production") and aof_wanted(True, "test")
    assert Settings(environment="test", redis_aof=True).redis_aof is True

    # A Debian-like Redis: a configuration file saying appendonly no.
    port = free_port()
    conf = tmp_path / "redis.conf"
    conf.write_text(f'port {port}\nbind 127.0.0.1\ndir {tmp_path}\nappendonly no\nsave ""\n')
    binary = shutil.which("redis-server")
    assert binary

    def run() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL)
        client = redis_lib.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis_lib.ConnectionError:
                subprocess.run(["sleep", "0.05"], check=True)
        client.close()
        return proc

    url = f"redis://127.0.0.1:{port}/0"
    proc = run()
    try:
        assert "turned on" in ensure_aof(url)
        assert ensure_aof(url) == "Redis append-only file: on"
        client = redis_lib.Redis(port=port, decode_responses=True)
        client.set("kept", "1")
        client.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert re.search(r"^appendonly yes$", conf.read_text(), re.M)
    proc = run()  # restarted from the same configuration: still on, the key still there
    try:
        client = redis_lib.Redis(port=port, decode_responses=True)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.get("kept") == "1"
        client.close()
    finally:
        proc.kill()
        proc.wait()
    # Without a configuration file it is on now, and the message says it will not hold.
    port = free_port()
    own = start_redis(f"redis://127.0.0.1:{port}/0", tmp_path / "own")
    try:
        client = redis_lib.Redis(port=port, decode_responses=True)
        assert client.config_get("appendonly")["appendonly"] == "yes"  # up's own Redis
        client.config_set("appendonly", "no")
        assert "not kept" in ensure_aof(f"redis://127.0.0.1:{port}/0")
        assert client.config_get("appendonly")["appendonly"] == "yes"
        client.close()
    finally:
        own.kill()
        own.wait()


def test_a_scaled_node_takes_its_name_and_address_from_its_container() -> None:
    """``--node auto --host auto`` (compose's media nodes): the container's host name, and
    the address its /etc/hosts gives that name; a loopback answer is refused."""
    hosts = {"3f2a9c1d7e0b": "172.18.0.5", "localhost": "127.0.0.1"}  # as /etc/hosts says
    assert node_identity("auto", "auto", lambda: "3f2a9c1d7e0b", hosts.__getitem__) == (
        "3f2a9c1d7e0b",
        "172.18.0.5",
    )
    assert node_identity("nodeb", "127.0.0.2") == ("nodeb", "127.0.0.2")
    with pytest.raises(ValueError, match="loopback"):
        node_identity("auto", "auto", lambda: "localhost", hosts.__getitem__)
    with pytest.raises(ValueError, match="not an IP address"):
        node_identity("nodeb", "example")
    with pytest.raises(ValueError, match="--node 'bad name'"):
        node_identity("bad name", "127.0.0.2")
