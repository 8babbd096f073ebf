"""Sign-in that resists attack: throttling per account and per address, argon2 off the event
loop, and the same work for users that do not exist."""

from __future__ import annotations

import asyncio
import base64
import re
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from callcenter.app import create_app
from callcenter.auth import hash_password
from callcenter.context import AppContext
from callcenter.models import Role, User

ATTACKER = ("127.0.0.2", 40000)
OFFICE = ("127.0.0.3", 40000)


def basic(username: str, password: str) -> dict[str, str]:
    return {
        "Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    }


@pytest.fixture
def app(ctx: AppContext) -> FastAPI:
    return create_app(ctx)


@pytest.fixture
def attacker(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=ATTACKER) as client:
        yield client


@pytest.fixture
def office(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=OFFICE) as client:
        yield client


def sign_in(client: TestClient, username: str, password: str) -> httpx.Response:
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def test_wrong_passwords_for_one_account_are_throttled(
    ctx: AppContext, attacker: TestClient, office: TestClient
) -> None:
    limit = ctx.settings.signin.max_failures_per_account
    statuses = [sign_in(attacker, "admin", f"guess{n}").status_code for n in range(30)]
    assert statuses[:limit] == [401] * limit
    assert statuses[limit:] == [429] * (30 - limit)
    refused = sign_in(attacker, "admin", "guess-again")
    assert refused.json()["error_id"] == "too-many-sign-in-attempts"
    assert refused.json()["details"]["scope"] == "account"
    retry_after = int(refused.headers["Retry-After"])
    assert 0 < retry_after <= ctx.settings.signin.window_seconds
    # The right password is refused while the account is locked, from anywhere, by any means.
    assert sign_in(attacker, "admin", "pwadmin").status_code == 429
    assert sign_in(office, "admin", "pwadmin").status_code == 429
    assert office.get("/api/v1/me", headers=basic("admin", "pwadmin")).status_code == 429
    # Another account from another address still works.
    assert sign_in(office, "lead1", "pwlead1").status_code == 200
    assert office.get("/api/v1/me", headers=basic("qa1", "pwqa1")).status_code == 200


def test_http_basic_guessing_is_throttled_too(ctx: AppContext, attacker: TestClient) -> None:
    limit = ctx.settings.signin.max_failures_per_account
    statuses = [
        attacker.get("/api/v1/me", headers=basic("lead1", f"guess{n}")).status_code
        for n in range(limit + 3)
    ]
    assert statuses == [401] * limit + [429] * 3
    assert "Retry-After" in attacker.get("/api/v1/me", headers=basic("lead1", "x")).headers


def test_one_address_guessing_many_accounts_is_throttled(
    ctx: AppContext, attacker: TestClient, office: TestClient
) -> None:
    """Password spraying: a few guesses at each of many accounts stays under the per-account
    limit, so the address limit stops it. A valid account of the attacker's own does not lift
    the address's lock: a success refunds only its own attempt."""
    per_address = ctx.settings.signin.max_failures_per_address
    users = [str(n) for n in range(1001, 1013)] + ["lead1", "qa1", "admin", "eng1", "sec1"]
    statuses = []
    for n in range(per_address + 5):
        user = users[n % len(users)]
        statuses.append(sign_in(attacker, user, f"spray{n}").status_code)
        # The attacker owns agent 1012 and signs in with it between guesses.
        assert sign_in(attacker, "1012", "pw1012").status_code in (200, 429)
    assert statuses[:per_address] == [401] * per_address
    assert set(statuses[per_address:]) == {429}
    refused = sign_in(attacker, "1012", "pw1012")
    assert refused.status_code == 429 and refused.json()["details"]["scope"] == "address"
    # Other addresses are not affected, and neither are the sprayed accounts from them.
    assert sign_in(office, "1001", "pw1001").status_code == 200


def test_throttle_window_expires(ctx: AppContext, attacker: TestClient) -> None:
    limit = ctx.settings.signin.max_failures_per_account
    for n in range(limit):
        assert sign_in(attacker, "qa1", f"guess{n}").status_code == 401
    assert sign_in(attacker, "qa1", "pwqa1").status_code == 429
    # Expiry is Redis's own: shorten the window that is running instead of waiting 5 minutes.
    for key in ctx.redis.scan_iter(f"{ctx.keys.prefix}:signin:*"):
        ctx.redis.pexpire(key, 50)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sign_in(attacker, "qa1", "pwqa1").status_code == 429:
        time.sleep(0.05)
    assert sign_in(attacker, "qa1", "pwqa1").status_code == 200


def verifications(client: TestClient) -> tuple[float, float]:
    """(count, seconds) of argon2 verifications so far, from /metrics."""
    text = client.get("/metrics").text
    count = re.search(r"^callcenter_password_verify_seconds_count (\S+)$", text, re.M)
    total = re.search(r"^callcenter_password_verify_seconds_sum (\S+)$", text, re.M)
    assert count and total, text
    return float(count.group(1)), float(total.group(1))


@pytest.mark.parametrize("username", ["nobody-by-this-name", "disabled-user"])
def test_unknown_or_disabled_users_cost_one_verification(
    ctx: AppContext, office: TestClient, username: str
) -> None:
    if username == "disabled-user":
        with ctx.sessions() as session, session.begin():
            session.add(
                User(
                    username=username,
                    display_name=username,
                    password_hash=hash_password("pw-disabled"),
                    role=Role.qa,
                    active=False,
                )
            )
    before, _ = verifications(office)
    assert sign_in(office, username, "whatever").status_code == 401
    assert office.get("/api/v1/me", headers=basic(username, "whatever")).status_code == 401
    after, _ = verifications(office)
    assert after - before == 2
    known_before, _ = verifications(office)
    assert sign_in(office, "qa1", "wrong").status_code == 401
    assert verifications(office)[0] - known_before == 1


async def _burst_with_probe(app: FastAPI, logins: int) -> tuple[float, list[float]]:
    """Run ``logins`` bad sign-ins at once while a probe coroutine ticks every millisecond on
    the same event loop; return the probe's worst gap and each login's latency."""
    transport = httpx.ASGITransport(app=app, client=ATTACKER)
    gaps: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def login(client: httpx.AsyncClient, n: int) -> float:
        started = time.perf_counter()
        response = await client.post(
            "/api/v1/auth/token", json={"username": f"nobody{n}", "password": "bad"}
        )
        assert response.status_code == 401
        return time.perf_counter() - started

    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        probing = asyncio.create_task(probe())
        latencies = await asyncio.gather(*(login(client, n) for n in range(logins)))
        done.set()
        await probing
    return max(gaps), list(latencies)


def test_argon2_runs_off_the_event_loop(ctx: AppContext, app: FastAPI) -> None:
    """While bad sign-ins hash, the event loop keeps serving: the probe's worst gap is a small
    fraction of one argon2 verification (measured here, in the same run). With argon2 on the
    loop, the probe waits at least one whole verification."""
    with TestClient(app) as client:  # runs startup; its /metrics reads the verification cost
        count0, seconds0 = verifications(client)
        worst_gap, latencies = asyncio.run(_burst_with_probe(app, logins=8))
        count1, seconds1 = verifications(client)
    assert count1 - count0 == 8
    one_verification = (seconds1 - seconds0) / 8
    print(
        f"argon2 verify {one_verification * 1000:.0f} ms; 8 concurrent bad sign-ins: "
        f"latency median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms; event-loop worst gap {worst_gap * 1000:.1f} ms"
    )
    assert worst_gap < one_verification / 2
