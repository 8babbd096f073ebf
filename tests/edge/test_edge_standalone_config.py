"""``callcenter edge`` (the edge alone, media nodes joining it through Redis) follows a
``telephony`` version stored through the admin API: a new DID is answered and a new trunk
takes a slot's outside call, without restarting Kamailio. Real Kamailio, SIPp on loopback."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from callcenter import runtime
from callcenter.app import create_app
from callcenter.context import build_context
from callcenter.health import rotations
from config.settings import Settings
from ivr.edge.membership import announce, withdraw
from ivr.edge.paths import edge_paths
from tests.conftest import auth
from tests.edge.conftest import EDGE_HOST, EDGE_PORT, Sipp, log_lines, wait_for

pytestmark = pytest.mark.sip

ROOT = Path(__file__).resolve().parents[2]
SLOT_A = "sip:127.0.0.1:15101"  # a slot stand-in answering the DID
SLOT_B = "sip:127.0.0.1:15102"  # a slot's address, dialling out
CALLER = "127.0.0.3"
NEW_DID = "4009999999"


class Announcer:
    """A media node announcing its slots, as ``callcenter engine --node`` does."""

    def __init__(self, client: redis.Redis, prefix: str, uris: list[str]) -> None:
        self.client, self.prefix, self.uris = client, prefix, uris
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.is_set():
            announce(self.client, self.prefix, "nodex", self.uris)
            self.stopping.wait(0.4)

    def __enter__(self) -> Announcer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join(5)
        withdraw(self.client, self.prefix, "nodex")


@pytest.fixture
def edge_alone(
    edge_settings: Settings, seeded_sqlite_template: Path, redis_client: redis.Redis
) -> Iterator[subprocess.Popen[bytes]]:
    shutil.copy(seeded_sqlite_template, edge_settings.state_dir / "callcenter.db")
    env = dict(os.environ)
    env.update(
        {
            "CALLCENTER_ENVIRONMENT": "test",
            "CALLCENTER_STATE_DIR": str(edge_settings.state_dir),
            "CALLCENTER_REDIS_URL": edge_settings.redis_url,
            "CALLCENTER_SIP__EDGE_HOST": EDGE_HOST,
            "CALLCENTER_SIP__EDGE_PORT": str(EDGE_PORT),
            "CALLCENTER_SIP__EDGE__CHILDREN": "2",
            "CALLCENTER_SIP__EDGE__LOG_LEVEL": "2",
        }
    )
    log = (edge_settings.state_dir / "edge-process.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "callcenter.cli", "edge"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log.close()


def kamcmd(settings: Settings, *args: str) -> str:
    result = subprocess.run(
        ["kamcmd", "-s", f"unix:{edge_paths(settings).ctl_socket}", *args],
        capture_output=True,
        text=True,
        timeout=5,
        check=False,
    )
    return result.stdout + result.stderr


def test_callcenter_edge_follows_a_telephony_version_stored_through_the_api(
    edge_alone: subprocess.Popen[bytes],
    edge_settings: Settings,
    redis_client: redis.Redis,
    sipp: Sipp,
) -> None:
    settings = edge_settings
    _, slot_log = sipp.start(sipp.scenario("slot_uas.xml"), SLOT_A.removeprefix("sip:"))
    _, trunk_log = sipp.start(sipp.scenario("slot_uas.xml"), "127.0.0.7:15601")

    def slots_in_rotation() -> bool:
        record = next(
            (r for r in rotations(redis_client, settings.redis_prefix) if r.node == "edge"), None
        )
        return record is not None and record.slots == 2 and record.in_rotation >= 1

    with Announcer(redis_client, settings.redis_prefix, [SLOT_A, SLOT_B]):
        wait_for(slots_in_rotation, 30, "the announced slots in the edge's rotation")
        pid = int((edge_paths(settings).directory / "kamailio.pid").read_text())
        unknown = sipp.run(
            sipp.scenario("invite_rejected.xml", 404), f"{CALLER}:15301", "-m", "1", "-s", NEW_DID
        )
        assert unknown.ok(), unknown.errors
        no_trunk = sipp.run(
            sipp.scenario("invite_rejected.xml", 403), SLOT_B.removeprefix("sip:"),
            "-m", "1", "-s", "13900000000",
        )  # fmt: skip
        assert no_trunk.ok(), no_trunk.errors

        context = build_context(settings)
        runtime.set_context(context)
        try:
            with TestClient(create_app(context)) as client:
                admin = auth(client, "admin")
                document = client.get("/api/v1/config/telephony", headers=admin).json()["document"]
                document["dids"].append({"number": NEW_DID})
                document["trunks"] = {"carrier": {"host": "127.0.0.7", "port": 15601}}
                document["outbound_trunk"] = "carrier"
                stored = client.put("/api/v1/config/telephony", json=document, headers=admin)
                stored_at = time.monotonic()
                assert stored.status_code == 201, stored.text
                assert stored.json()["restart_needed"] == []
        finally:
            runtime.set_context(None)
            context.close()

        def applied() -> bool:
            trunk = kamcmd(settings, "htable.get", "rules", "trunk.carrier")
            did = kamcmd(settings, "htable.get", "dids", f"s:{NEW_DID}")  # not a number
            return "127.0.0.7" in trunk and not did.startswith("error")

        try:
            wait_for(applied, 10, "the running edge holding the new DID and trunk")
        except AssertionError as exc:
            log = (settings.state_dir / "edge-process.log").read_text(errors="replace")
            raise AssertionError(f"{exc}; callcenter edge's log:\n{log[-4000:]}") from None
        print(f"\nstored version in the standalone edge's Kamailio after "
              f"{(time.monotonic() - stored_at) * 1000:.0f} ms")  # fmt: skip

        answered = sipp.run(
            sipp.scenario("caller.xml"), f"{CALLER}:15301", "-m", "1", "-d", "100", "-s", NEW_DID
        )
        assert answered.ok(), answered.errors
        assert len(log_lines(slot_log, "INVITE")) == 1
        out = sipp.run(
            sipp.scenario("caller.xml"), SLOT_B.removeprefix("sip:"),
            "-m", "1", "-d", "100", "-s", "13900000000",
        )  # fmt: skip
        assert out.ok(), out.errors
        (invite,) = log_lines(trunk_log, "INVITE")
        assert "sip:13900000000@127.0.0.7:15601" in invite
        # The same Kamailio all along: nothing was restarted.
        assert int((edge_paths(settings).directory / "kamailio.pid").read_text()) == pid
        assert edge_alone.poll() is None
