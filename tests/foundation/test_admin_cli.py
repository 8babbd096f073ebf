"""``callcenter user ...`` run as a real subprocess against a production-configured database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from callcenter.app import create_app
from callcenter.context import build_context
from config.settings import Settings
from tests.conftest import TEST_REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
SECRET = "a-long-random-production-secret-for-this-test-0123456789"
PASSWORD = "Harbour-Lantern-42"


@pytest.fixture
def production(tmp_path: Path, redis_client: redis.Redis) -> dict[str, str]:
    return {
        **os.environ,
        "CALLCENTER_ENVIRONMENT": "production",
        "CALLCENTER_SECRET_KEY": SECRET,
        "CALLCENTER_STATE_DIR": str(tmp_path),
        "CALLCENTER_REDIS_URL": TEST_REDIS_URL,
    }


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "callcenter.cli", "user", *args],
        cwd=ROOT, env=env, input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def api(tmp_path: Path, production: dict[str, str]) -> Iterator[TestClient]:
    settings = Settings(
        environment="production", secret_key=SECRET, state_dir=tmp_path, redis_url=TEST_REDIS_URL
    )
    context = build_context(settings)
    with TestClient(create_app(context)) as client:
        yield client
    context.close()


def sign_in(client: TestClient, username: str, password: str) -> int:
    return client.post(
        "/api/v1/auth/token", json={"username": username, "password": password}
    ).status_code


def test_first_admin_on_an_empty_production_database(
    production: dict[str, str], api: TestClient
) -> None:
    created = cli(production, "add", "--role", "admin", "chief", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert "user chief created" in created.stdout
    response = api.post("/api/v1/auth/token", json={"username": "chief", "password": PASSWORD})
    assert response.status_code == 200 and response.json()["role"] == "admin"
    old = {"Authorization": f"Bearer {response.json()['access_token']}"}
    log = api.get("/api/v1/audit", params={"object_type": "user"}, headers=old).json()
    assert log[0]["action"] == "user.create" and log[0]["actor"].startswith("cli")

    again = cli(production, "add", "--role", "admin", "chief", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "taken" in again.stderr

    new_password = "Copper-Meadow-19"
    changed = cli(production, "passwd", "chief", stdin=new_password + "\n")
    assert changed.returncode == 0, changed.stderr
    assert api.get("/api/v1/me", headers=old).status_code == 401
    assert sign_in(api, "chief", PASSWORD) == 401
    assert sign_in(api, "chief", new_password) == 200

    last = cli(production, "disable", "chief")
    assert last.returncode == 1 and "last active admin" in last.stderr
    second = cli(production, "add", "--role", "admin", "deputy", stdin=PASSWORD + "\n")
    assert second.returncode == 0, second.stderr
    assert cli(production, "disable", "chief").returncode == 0
    assert sign_in(api, "chief", new_password) == 401
    assert cli(production, "enable", "chief").returncode == 0
    assert sign_in(api, "chief", new_password) == 200
    listed = cli(production, "list")
    assert "chief\tadmin\tactive" in listed.stdout


def test_weak_or_missing_passwords_and_bad_names_are_refused(
    production: dict[str, str], api: TestClient
) -> None:
    weak = cli(production, "add", "--role", "admin", "chief", stdin="password123\n")
    assert weak.returncode == 1
    assert "password: 是常见密码 / is a commonly used password" in weak.stderr
    missing = cli(production, "add", "--role", "admin", "chief")
    assert missing.returncode == 1 and "password expected on stdin" in missing.stderr
    bad_name = cli(production, "add", "--role", "admin", "no spaces", stdin=PASSWORD + "\n")
    assert bad_name.returncode == 1 and "username" in bad_name.stderr
    unknown = cli(production, "disable", "nobody")
    assert unknown.returncode == 1 and "not found" in unknown.stderr
    assert sign_in(api, "chief", "password123") == 401


def test_an_agent_added_from_the_shell_gets_sip_credentials(
    production: dict[str, str], api: TestClient, tmp_path: Path
) -> None:
    added = cli(
        production, "add", "--role", "agent", "--extension", "2001", "--queue", "general=7",
        "--shift", "day", "ning", stdin=f"{PASSWORD}\nKettle-Orchard-77\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    subscriber = (tmp_path / "kamailio" / "db" / "subscriber").read_text()
    assert ":2001:callcenter.local:" in subscriber
    assert sign_in(api, "ning", PASSWORD) == 200
