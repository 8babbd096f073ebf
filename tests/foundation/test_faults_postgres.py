"""Faults under load (issue 11), the database: one ``callcenter up`` on its own append-only
Redis and a PostgreSQL cluster of the test's own (``initdb`` into a temporary directory, a free
loopback port; never the machine's server), agents whose softphones answer, SIPp callers held
through the edge. Then PostgreSQL is restarted twice with the calls up: a fast restart
(``pg_ctl restart -m fast``), and kill -9 of the postmaster left down for a few seconds before
it is started again (crash recovery). While it is down calls are still answered, a ticket is
refused with 503 (never half-stored) and ``/readyz`` names the database.

After each the center is ready and answers a new call within seconds (printed). At the end
every call that reached a slot has one record with a final outcome (the calls that came and
went while the database was down included: their events are written once it is back), every
event of the stream is in the calls' timelines and every agent state change in the state log,
no agent is left reserved or on a call, no ticket is lost or doubled.

Real SIP on fixed loopback ports: run under the global lock
(``flock /tmp/sip.lock .venv/bin/python -m pytest tests/foundation/test_faults_postgres.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, text

from callcenter.db import make_engine
from callcenter.testkit.faults import (
    FINAL_OUTCOMES,
    Center,
    Ports,
    PrivatePostgres,
    PrivateRedis,
    arrived,
    ended,
    free_port,
    new_ticket,
    on_call,
    stream_events,
    wait_for,
)

pytestmark = pytest.mark.sip

CALLS = 8
AGENTS = tuple(str(n) for n in range(1001, 1001 + CALLS))  # every held call answered
HOLD_MS = 60_000  # the held calls end by themselves (the callers' BYE) after the faults
OUTAGE_S = 12.0  # PostgreSQL down after its postmaster is killed (> HEARTBEAT_TTL_SECONDS)


@pytest.fixture
def pg_center(tmp_path: Path) -> Iterator[tuple[Center, PrivatePostgres]]:
    tmp = tmp_path
    database = PrivatePostgres()
    store = PrivateRedis(tmp / "redis")
    running = Center(tmp, Ports(), store, free_port(), database_url=database.url)
    try:
        database.start()
        database.create_database()
        store.start()
        running.start(lines=CALLS + 8, spares=CALLS + 2)
        yield running, database
    finally:
        running.stop()
        store.stop()
        database.stop()


def _ticket(center: Center, mark: str) -> str:
    response = new_ticket(center, mark)
    assert response.status_code == 201, response.text
    return str(response.json()["number"])


def _readyz(center: Center) -> tuple[int, dict[str, object]]:
    response = httpx.get(center.url("/readyz"), timeout=5)
    return response.status_code, response.json()


def test_postgres_restarted_under_load_loses_nothing(
    pg_center: tuple[Center, PrivatePostgres],
) -> None:
    center, database = pg_center
    for n, extension in enumerate(AGENTS):
        center.agent(n, extension)
    callers = center.callers(0, CALLS, hold_ms=HOLD_MS, rate=10)
    wait_for(lambda: sum(1 for s in center.slots().values() if s[2]) >= CALLS, 30,
             "every caller on a slot")  # fmt: skip
    wait_for(lambda: len(on_call(center)) == len(AGENTS), 30, "every agent on a call")
    held = {call for _pid, _s, call in center.slots().values() if call}
    tickets = [_ticket(center, "before")]
    recovery: dict[str, float] = {}

    # 1. A fast restart: every pooled connection is cut; the next use must not fail.
    began = time.monotonic()
    database.restart_fast()
    recovery["postgres fast restart"] = center.recovered(began, 1, timeout=45)
    tickets.append(_ticket(center, "after fast restart"))
    assert not held & ended(center), "calls ended with the database's restart"

    # 2. kill -9 of the postmaster, down for OUTAGE_S (longer than the heartbeats' TTL): calls
    #    are still taken and routed, writes wait for the database.
    before = arrived(center)
    killed_at = time.monotonic()
    database.kill()
    wait_for(lambda: _readyz(center)[0] == 503, 10, "/readyz 503 with the database down")
    refused = new_ticket(center, "while down")
    assert refused.status_code == 503, refused.text
    assert refused.json()["error_id"] == "database-unavailable", refused.text
    assert refused.headers.get("Retry-After")
    # A slot carrying an answered call dies: its call ends, the recording is repaired and
    # the agent is released; a new caller is queued and offered to that agent (their screen
    # pop cannot read the customer records now). All while nothing can be written.
    answered = set(on_call(center).values())
    busy = {call: pid for _slot, (pid, _s, call) in center.slots().items() if call}
    victim = next(call for call in busy if call in answered)
    os.kill(busy[victim], signal.SIGKILL)
    wait_for(lambda: victim in ended(center), 15, "the dead slot's call ended")
    wait_for(lambda: len(on_call(center)) < len(AGENTS), 10, "the dead call's agent released")
    late = center.callers(1, 1, hold_ms=15_000)
    wait_for(lambda: len(on_call(center)) == len(AGENTS), 20, "the new caller offered")
    newcomer = (set(on_call(center).values()) - answered).pop()
    pop = wait_for(lambda: center.client().get(f"cc:routing:call:{newcomer}:pop"), 10,
                   "the new caller's screen pop")  # fmt: skip
    assert json.loads(pop)["records_unavailable"] is True, pop
    center.probe_call(2)  # answered by a slot and over while the database is down
    center.probe_call(3)
    during = arrived(center) - before
    assert len(during) >= 2, during
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - killed_at)))
    # Down longer than the heartbeats live: /readyz names the database, and only it.
    _status, body = _readyz(center)
    assert body["missing"] == ["database: not answering"], body
    started_at = time.monotonic()
    database.start()
    restarted = time.monotonic() - started_at
    recovery["postgres kill -9 (from its start)"] = center.recovered(started_at, 4, timeout=45)
    recovery["postgres kill -9 (from the kill)"] = time.monotonic() - killed_at
    tickets.append(_ticket(center, "after kill"))
    assert not (held - {victim}) & ended(center), "calls ended with the database's crash"
    print(
        "\nrecovery (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in recovery.items())
        + f" (server start itself {restarted:.1f}; outage {OUTAGE_S:.0f} s)"
    )

    # What happened while the database was down is written now it is back, without waiting
    # for any retry timer: every event in the timelines, every agent state change logged.
    with _records(database) as db:
        _caught_up(center, db, 10)

    # The held calls end by themselves (their callers hang up).
    assert callers.wait(HOLD_MS / 1000 + 60) is not None
    assert late.wait(60) is not None
    every = arrived(center)
    assert every >= held | during
    with _records(database) as db:

        def unfinished() -> list[tuple[str, str]]:
            rows: dict[str, str] = {i: o or "" for i, o in db.execute(
                text("SELECT id, outcome FROM calls"))}  # fmt: skip
            db.rollback()
            return [(c, rows.get(c) or "no record") for c in every
                    if rows.get(c) not in FINAL_OUTCOMES]  # fmt: skip

        wait_for(lambda: not unfinished(), 30, "a final record for every call")
        _caught_up(center, db, 15)
        wait_for(lambda: not on_call(center), 15, "no agent left on a call")
        outcome = db.execute(text("SELECT outcome FROM calls WHERE id = :c"), {"c": victim})
        assert outcome.scalar() == "slot_failed"
        rows = db.execute(text("SELECT r.status, c.outcome FROM recordings r "
                               "JOIN calls c ON c.id = r.call_id")).all()  # fmt: skip
        assert rows
        assert all(status != "recording" for status, _o in rows), rows
        assert all(status == "repaired" for status, o in rows if o == "slot_failed"), rows
        # Every call offered to an agent got its screen pop (from the caller's number alone
        # while the customer records could not be read).
        offered = {f["call_id"] for _i, f in stream_events(center)
                   if f.get("type") == "agent_answered"}  # fmt: skip
        client = center.client()
        assert offered
        assert not [c for c in offered if not client.exists(f"cc:routing:call:{c}:pop")]
        numbers = list(db.execute(text("SELECT number FROM tickets")).scalars())
        assert sorted(set(numbers) & set(tickets)) == sorted(tickets)
        assert len(numbers) == len(set(numbers))
        descriptions = list(db.execute(text("SELECT description FROM tickets")).scalars())
        assert "while down" not in descriptions


@contextlib.contextmanager
def _records(database: PrivatePostgres) -> Iterator[Connection]:
    engine = make_engine(database.url)
    try:
        with engine.connect() as db:
            yield db
    finally:
        engine.dispose()


def _caught_up(center: Center, db: Connection, timeout: float) -> None:
    """Every call event of the stream is in a call's timeline and every agent state change
    in the state log (within ``timeout`` seconds)."""
    entries = {entry_id for entry_id, _f in stream_events(center)}
    changes = {entry_id for entry_id, f in center.client().xrange("cc:agent-events")
               if f.get("type") == "agent_state_changed"}  # fmt: skip

    def missing() -> tuple[set[str], set[str]]:
        told = set(db.execute(text("SELECT stream_id FROM call_events")).scalars())
        logged = set(db.execute(text("SELECT stream_id FROM agent_state_changes")).scalars())
        db.rollback()
        return entries - told, changes - logged

    try:
        wait_for(lambda: missing() == (set(), set()), timeout, "events and state changes written")
    except AssertionError:
        untold, unlogged = missing()
        raise AssertionError(f"not in the timelines: {sorted(untold)}; "
                             f"state changes not logged: {sorted(unlogged)}") from None  # fmt: skip
