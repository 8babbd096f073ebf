"""The edge follows the admin API within seconds (real Kamailio, baresip and SIPp on loopback):
an agent created through the API registers their softphone at once; once disabled, their
registration is gone and a new REGISTER is refused; a changed SIP password works and the old
one stops."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from callcenter import runtime
from callcenter.app import create_app
from callcenter.context import AppContext, build_context
from callcenter.testkit.baresip import start_baresip
from config.settings import Settings
from tests.conftest import TEST_REDIS_URL, auth
from tests.edge.conftest import EDGE_PORT, EdgeFactory, Sipp, wait_for

pytestmark = pytest.mark.sip

SLOT = "sip:127.0.0.1:15101"
AGENT = "127.0.0.4"
SIGN_IN = "Harbour-Lantern-42"
SIP_PASSWORD = "Kettle-Orchard-77"
NEW_SIP_PASSWORD = "Lantern-Harbour-88"


@pytest.fixture
def admin_ctx(
    edge_settings: Settings, seeded_sqlite_template: Path, redis_client: object
) -> Iterator[AppContext]:
    """The API's context on the edge's state directory (its subscriber table, ctl socket)."""
    shutil.copy(seeded_sqlite_template, edge_settings.state_dir / "callcenter.db")
    settings = edge_settings.model_copy(update={"redis_url": TEST_REDIS_URL})
    context = build_context(settings)
    runtime.set_context(context)
    yield context
    runtime.set_context(None)
    context.close()


def register(sipp: Sipp, user: str, password: str, status: int) -> bool:
    contact = f"sip:{user}@{AGENT}:15201"
    return sipp.register(f"{AGENT}:15401", user, contact, password=password, status=status).ok()


def test_api_agent_registers_at_once_and_disabling_unregisters_and_refuses(
    start_edge: EdgeFactory, admin_ctx: AppContext, sipp: Sipp, tmp_path: Path
) -> None:
    edge = start_edge([SLOT], agents=())
    with TestClient(create_app(admin_ctx)) as client:
        admin = auth(client, "admin")
        created = client.post(
            "/api/v1/users",
            json={
                "username": "ning",
                "password": SIGN_IN,
                "role": "agent",
                "display_name": "客服专员 宁静",
                "agent": {"extension": "2001", "sip_password": SIP_PASSWORD, "shift": "day"},
            },
            headers=admin,
        )
        assert created.status_code == 201, created.text
        created_at = time.monotonic()

        account = f"<sip:2001@127.0.0.1:{EDGE_PORT}>;auth_pass={SIP_PASSWORD};regint=3600"
        phone, _log = start_baresip(tmp_path, AGENT, account)
        try:
            wait_for(lambda: edge.contacts("2001"), 10, "baresip registered")
            registered_after = time.monotonic() - created_at
            print(f"registered {registered_after:.2f} s after the API created the agent")
            assert registered_after < 5

            user_id = created.json()["id"]
            disabled = client.patch(
                f"/api/v1/users/{user_id}", json={"active": False}, headers=admin
            )
            assert disabled.status_code == 200
            # The registration is gone when the API answers, and a new REGISTER is refused.
            assert not edge.contacts("2001")
            assert register(sipp, "2001", SIP_PASSWORD, 403)
            assert not edge.contacts("2001")
        finally:
            phone.terminate()
            phone.wait(timeout=10)

        enabled = client.patch(f"/api/v1/users/{user_id}", json={"active": True}, headers=admin)
        assert enabled.status_code == 200
        assert register(sipp, "2001", SIP_PASSWORD, 200)
        assert edge.contacts("2001")

        changed = client.patch(
            f"/api/v1/users/{user_id}",
            json={"agent": {"sip_password": NEW_SIP_PASSWORD}},
            headers=admin,
        )
        assert changed.status_code == 200
        # The phone that registered with the old password no longer receives calls ...
        assert not edge.contacts("2001")
        # ... the old password is refused and the new one works.
        assert register(sipp, "2001", SIP_PASSWORD, 403)
        assert register(sipp, "2001", NEW_SIP_PASSWORD, 200)
        assert edge.contacts("2001")
        # The seeded agents were written alongside and still register.
        assert register(sipp, "1001", "pw1001", 200)
