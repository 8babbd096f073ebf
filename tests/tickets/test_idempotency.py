"""``POST /api/v1/tickets`` with an ``Idempotency-Key``: a client that retries after a cut
(a 503 ``database-unavailable``, a connection dropped before the answer) gets the ticket its
first request stored instead of a second one. On SQLite and PostgreSQL; the race of two
requests with one key; the migration that adds the keys' table."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select, text, update

from callcenter.context import AppContext
from callcenter.db import Base, make_engine, utcnow
from callcenter.migrate import downgrade, upgrade
from tests.conftest import auth
from tests.tickets.conftest import MakeCtx
from tests.tickets.helpers import counts, payload
from ticketing.idempotency import KEY_LIFETIME
from ticketing.models import Ticket, TicketIdempotencyKey

KEY = "5f0c2a8e-1b7d-4c39-9e0a-6d2f4b8c1a77"
TICKETS = "/api/v1/tickets"


class Desk:
    """A context on one database, an API client on it, and front-desk users signed in once."""

    def __init__(self, ctx: AppContext, client: TestClient) -> None:
        self.ctx = ctx
        self.client = client
        self._signed_in: dict[str, dict[str, str]] = {}

    def headers(self, user: str) -> dict[str, str]:
        if user not in self._signed_in:
            self._signed_in[user] = auth(self.client, user)
        return self._signed_in[user]

    def post(self, key: str | bytes | None, *, user: str = "1001", **changes: Any) -> Response:
        """POST a ticket (the helpers' payload with ``changes``) as ``user``, with ``key``."""
        headers: dict[str, Any] = dict(self.headers(user))
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post(TICKETS, headers=headers, json=payload(**changes))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def desk(request: pytest.FixtureRequest, make_ctx: MakeCtx, client_for: Any) -> Desk:
    ctx = make_ctx(postgres=request.param == "postgres")
    return Desk(ctx, client_for(ctx))


def ticket_count(ctx: AppContext) -> int:
    with ctx.sessions() as session:
        return session.scalar(select(func.count()).select_from(Ticket)) or 0


def test_a_repeat_with_the_same_key_and_body_returns_the_stored_ticket(desk: Desk) -> None:
    ctx = desk.ctx
    first = desk.post(KEY)
    assert first.status_code == 201, first.text
    assert first.headers["Idempotent-Replayed"] == "false"
    stored = counts(ctx)

    again = desk.post(KEY)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["number"] == first.json()["number"]
    # nothing more written: no ticket, no timeline entry, no webhook delivery
    assert counts(ctx) == stored == {**stored, "tickets": 1}


def test_a_replay_answers_the_ticket_as_it_is_now(desk: Desk) -> None:
    ctx = desk.ctx
    first = desk.post(KEY).json()
    moved = desk.client.post(
        f"{TICKETS}/{first['id']}/transitions",
        headers=desk.headers("eng1"),
        json={"to": "assigned", "assignee": "维修工 王师傅"},
    )
    assert moved.status_code == 200, moved.text
    again = desk.post(KEY)
    assert again.status_code == 201
    assert again.json()["status"] == "assigned" and again.json()["assignee"] == "维修工 王师傅"
    assert ticket_count(ctx) == 1


def test_the_same_key_with_another_body_is_refused(desk: Desk) -> None:
    ctx = desk.ctx
    first = desk.post(KEY)
    assert first.status_code == 201
    stored = counts(ctx)
    refused = desk.post(KEY, what="另一件事：电梯困人")
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["error_id"] == "tickets.idempotency-key-reused"
    assert "Idempotency-Key" in body["message"]
    assert body["details"] == {"header": "Idempotency-Key", "ticket_id": first.json()["id"]}
    assert counts(ctx) == stored


@pytest.mark.parametrize(
    "key",
    [
        "",
        "short",  # fewer than 8 characters
        "k" * 129,  # more than 128
        "has a space",
        "semi;colon-key",
        "键" * 10,
        "tab\there-key",
    ],
)
def test_a_bad_key_is_refused_naming_the_header(desk: Desk, key: str) -> None:
    ctx = desk.ctx
    before = counts(ctx)
    refused = desk.post(key.encode("utf-8"))
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["error_id"] == "tickets.bad-idempotency-key"
    assert "Idempotency-Key" in body["message"]
    assert body["details"]["header"] == "Idempotency-Key"
    assert counts(ctx) == before


def test_the_accepted_keys(desk: Desk) -> None:
    """UUIDs, ULIDs, base64 (standard and URL-safe) and the IETF draft's quoted form, which
    is the same key as the bare one."""
    ctx = desk.ctx
    for key in (KEY, "01HZX3N5K8Q2W7E4R6T9Y1U3I5", "aGVsbG8rd29y/bGQ=", "desk_a1-b2.c3:d4"):
        assert desk.post(key).status_code == 201
    assert ticket_count(ctx) == 4
    quoted = desk.post(f'"{KEY}"')
    assert quoted.status_code == 201 and quoted.headers["Idempotent-Replayed"] == "true"
    assert ticket_count(ctx) == 4


def test_two_keys_make_two_tickets_and_no_key_keeps_the_old_behaviour(desk: Desk) -> None:
    ctx = desk.ctx
    a = desk.post(KEY)
    b = desk.post(KEY.replace("5f0c", "6a1d"))
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]
    plain = [desk.post(None) for _ in range(2)]
    assert [p.status_code for p in plain] == [201, 201]
    assert "Idempotent-Replayed" not in plain[0].headers
    assert ticket_count(ctx) == 4


def test_keys_belong_to_the_user_who_sent_them(desk: Desk) -> None:
    ctx = desk.ctx
    mine = desk.post(KEY)
    theirs = desk.post(KEY, user="lead1", what="另一件事：电梯困人")
    assert mine.status_code == theirs.status_code == 201
    assert theirs.headers["Idempotent-Replayed"] == "false"
    assert mine.json()["id"] != theirs.json()["id"]
    assert ticket_count(ctx) == 2


def test_a_key_older_than_its_lifetime_registers_a_new_ticket(desk: Desk) -> None:
    ctx = desk.ctx
    first = desk.post(KEY).json()
    with ctx.sessions.begin() as session:
        session.execute(
            update(TicketIdempotencyKey).values(
                created_at=utcnow() - KEY_LIFETIME - timedelta(minutes=1)
            )
        )
    again = desk.post(KEY, what="另一件事：电梯困人")
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "false"
    assert again.json()["id"] != first["id"]
    with ctx.sessions() as session:
        rows = session.execute(select(TicketIdempotencyKey.ticket_id)).scalars().all()
    assert rows == [again.json()["id"]]  # the expired key's row was replaced


def _race(ctx: AppContext, client: TestClient, before_release: Callable[[], None]) -> None:
    """Two requests with one key at once (``before_release`` runs while they are under
    way): one ticket, both answers name it."""
    answers: list[Response] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)
    headers = {**auth(client, "1001"), "Idempotency-Key": KEY}

    def send() -> None:
        start.wait()
        try:
            answers.append(client.post(TICKETS, headers=headers, json=payload()))
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    before_release()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
    assert answers[0].json()["id"] == answers[1].json()["id"]
    assert sorted(a.headers["Idempotent-Replayed"] for a in answers) == ["false", "true"]
    assert ticket_count(ctx) == 1
    with ctx.sessions() as session:  # the loser's number was given back: numbers stay dense
        numbers = session.execute(select(Ticket.number)).scalars().all()
    assert [n.endswith("-0001") for n in numbers] == [True]


def test_two_concurrent_posts_with_one_key_make_one_ticket_on_sqlite(
    make_ctx: MakeCtx, client_for: Any
) -> None:
    ctx = make_ctx()
    _race(ctx, client_for(ctx), lambda: None)


@pytest.mark.postgres
def test_two_concurrent_posts_with_one_key_make_one_ticket_on_postgres(
    make_ctx: MakeCtx, client_for: Any
) -> None:
    """Both requests are held at the number counter (a lock taken here) after each has looked
    for the key and found none; released, one commits first and the other's key row clashes
    with it: it answers the first one's ticket."""
    ctx = make_ctx(postgres=True)
    client = client_for(ctx)
    holder = ctx.engine.connect()
    transaction = holder.begin()
    holder.execute(text("LOCK TABLE ticket_number_counters IN EXCLUSIVE MODE"))

    def both_waiting() -> None:
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query ILIKE '%ticket_number_counters%'"
        )
        try:
            for _ in range(400):
                with ctx.engine.connect() as conn:
                    if conn.execute(waiting).scalar() == 2:
                        break
                threading.Event().wait(0.05)
            else:
                raise AssertionError("the two requests never both reached the counter")
        finally:
            transaction.commit()
            holder.close()

    _race(ctx, client, both_waiting)


def test_the_keys_table_matches_the_model_after_upgrade_and_goes_on_downgrade(
    database_url: str,
) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert [d for d in diff if "ticket_idempotency_keys" in repr(d)] == []
    downgrade(database_url, "0008_callback_assignee")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        tables = conn.dialect.get_table_names(conn)
    engine.dispose()
    assert "ticket_idempotency_keys" not in tables and "tickets" in tables
    upgrade(database_url)
