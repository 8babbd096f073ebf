"""Demo accounts and the demo secret only in development on loopback; the warning names every
demo credential that works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from admin import users
from admin.schemas import UserCreate
from callcenter.context import AppContext, build_context
from callcenter.demo import DemoRefused, demo_refusal, prepare_for_start
from callcenter.migrate import upgrade
from callcenter.models import User
from config.settings import HttpSettings, Settings, SipSettings
from tests.conftest import TEST_REDIS_URL, auth

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-long-random-production-secret-for-this-test-0123456789"
HINT = "callcenter user add --role admin USERNAME"


def test_demo_is_allowed_only_in_development_on_loopback() -> None:
    assert demo_refusal(Settings(environment="development")) is None
    assert demo_refusal(Settings(environment="test", http=HttpSettings(host="::1"))) is None
    assert demo_refusal(Settings(http=HttpSettings(host="localhost"))) is None
    production = Settings(environment="production", secret_key=SECRET)
    assert demo_refusal(production) == "environment is production"
    assert "0.0.0.0" in str(demo_refusal(Settings(http=HttpSettings(host="0.0.0.0"))))
    edge = Settings(sip=SipSettings(edge_host="192.168.1.20"))
    assert "SIP edge listens on 192.168.1.20" in str(demo_refusal(edge))
    assert demo_refusal(Settings(http=HttpSettings(host="callcenter.example.com"))) is not None


def test_warning_names_every_demo_credential_that_works(
    client: TestClient, ctx: AppContext
) -> None:
    lines = prepare_for_start(ctx)
    warning = next(line for line in lines if "demo passwords are in use" in line)
    for credential in [
        "sign-in admin/pwadmin",
        "sign-in lead1/pwlead1",
        "sign-in qa1/pwqa1",
        "sign-in csa1/pwcsa1",
        "sign-in eng1/pweng1",
        "sign-in sec1/pwsec1",
        "sign-in env1/pwenv1",
        "sign-in fin1/pwfin1",
        "sign-in 1012/pw1012",
        "SIP 1001/pw1001",
        "SIP 1012/pw1012",
    ]:
        assert credential in warning, credential
    assert any("demo secret" in line for line in lines)

    admin = auth(client, "admin")
    me = client.get("/api/v1/users", params={"q": "1001"}, headers=admin).json()[0]
    client.patch(
        f"/api/v1/users/{me['id']}",
        json={"password": "Copper-Meadow-19", "agent": {"sip_password": "Kettle-Orchard-77"}},
        headers=admin,
    )
    eng1 = client.get("/api/v1/users", params={"q": "eng1"}, headers=admin).json()[0]
    client.patch(f"/api/v1/users/{eng1['id']}", json={"active": False}, headers=admin)
    warning = next(line for line in prepare_for_start(ctx) if "demo passwords are in use" in line)
    assert "1001/" not in warning and "eng1/" not in warning
    assert "sign-in 1002/pw1002" in warning and "SIP 1002/pw1002" in warning


def test_production_refuses_a_database_whose_demo_credentials_work(
    ctx: AppContext, settings: Settings
) -> None:
    production = build_context(
        settings.model_copy(update={"environment": "production", "secret_key": SECRET})
    )
    try:
        with pytest.raises(DemoRefused) as refused:
            prepare_for_start(production)
        assert "environment is production" in str(refused.value)
        assert "sign-in admin/pwadmin" in str(refused.value)
        assert "SIP 1001/pw1001" in str(refused.value)
    finally:
        production.close()


def test_production_with_a_real_admin_starts_without_demo_data(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    settings = Settings(
        environment="production", secret_key=SECRET, state_dir=tmp_path, redis_url=TEST_REDIS_URL
    )
    upgrade(settings.database_url)
    context = build_context(settings)
    try:
        with pytest.raises(DemoRefused) as refused:
            prepare_for_start(context)
        assert HINT in str(refused.value)
        admin = {
            "username": "chief", "password": "Harbour-Lantern-42", "role": "admin",
            "display_name": "chief",
        }  # fmt: skip
        users.create(context, actor="test", data=UserCreate.model_validate(admin))
        assert prepare_for_start(context) == []
        with context.sessions() as session:
            assert session.scalar(select(func.count()).select_from(User)) == 1
    finally:
        context.close()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "CALLCENTER_STATE_DIR": str(tmp_path / "var"),
        "CALLCENTER_REDIS_URL": TEST_REDIS_URL,
        **extra,
    }


def test_up_refuses_demo_data_in_production_and_says_how_to_create_the_first_admin(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    env = _env(tmp_path, CALLCENTER_ENVIRONMENT="production", CALLCENTER_SECRET_KEY=SECRET)
    done = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "up"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "environment is production" in done.stdout and HINT in done.stdout
    assert "starting api" not in done.stdout
    url = f"sqlite:///{(tmp_path / 'var' / 'callcenter.db').resolve()}"
    context = build_context(Settings(environment="test", database_url=url))
    with context.sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
    context.close()


def test_seed_demo_refuses_a_non_loopback_bind(tmp_path: Path) -> None:
    env = _env(tmp_path, CALLCENTER_HTTP__HOST="0.0.0.0")
    done = subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "seed-demo"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "the API listens on 0.0.0.0" in done.stderr and HINT in done.stderr
    assert not (tmp_path / "var" / "callcenter.db").exists()
