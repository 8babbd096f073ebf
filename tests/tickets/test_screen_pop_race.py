"""A screen-pop ticket for a call whose record is not written yet, and the migration that made
that possible (tickets.call_id lost its foreign key) keeping every ticket's data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from callcenter.context import AppContext
from callcenter.db import make_engine
from callcenter.migrate import downgrade, upgrade
from callcenter.streams import CallEvent
from cti.models import Call
from ivr.records import apply_event
from tests.conftest import auth
from tests.tickets.conftest import MakeCtx
from tests.tickets.helpers import payload
from ticketing.models import Ticket


def _pop_before_the_call_record(ctx: AppContext, client: Any) -> None:
    desk = auth(client, "1001")
    response = client.post(
        "/api/v1/tickets",
        headers=desk,
        json=payload(call_id="live-call-1", contact="138 0013 8000"),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["call_id"] == "live-call-1" and created["channel"] == "phone"
    # the contact number found the customer, as the call record would have
    assert created["customer_id"] is not None
    timeline = client.get(f"/api/v1/tickets/{created['id']}", headers=desk).json()["timeline"]
    assert timeline[0]["data"]["call_id"] == "live-call-1"
    assert timeline[0]["data"]["customer"]["customer_id"] == created["customer_id"]

    # The calls consumer now writes the call's record from the event stream: no conflict, and
    # the ticket and the call meet on the id.
    arrived = CallEvent(
        type="call_arrived",
        call_id="live-call-1",
        node="node1",
        slot="node1-s01",
        data={"caller": "13800138000", "did": "4008001234"},
    )
    with ctx.sessions() as session, session.begin():
        assert apply_event(session, "1-1", arrived)
    with ctx.sessions() as session:
        linked = session.execute(
            select(Ticket.number, Call.caller_number).join(Call, Call.id == Ticket.call_id)
        ).all()
    assert linked == [(created["number"], "13800138000")]


def test_screen_pop_before_the_call_record_on_sqlite(ctx: AppContext, client: Any) -> None:
    _pop_before_the_call_record(ctx, client)


@pytest.mark.postgres
def test_screen_pop_before_the_call_record_on_postgres(make_ctx: MakeCtx, client_for: Any) -> None:
    ctx = make_ctx(postgres=True)
    with ctx.engine.begin() as conn:
        conn.execute(text("DELETE FROM call_events"))
        conn.execute(text("DELETE FROM calls"))
    _pop_before_the_call_record(ctx, client_for(ctx))


def _insert(conn: Any, table: str, **values: Any) -> None:
    columns = ", ".join(values)
    conn.execute(
        text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"),
        values,
    )


def test_call_id_migration_keeps_every_ticket_row(database_url: str) -> None:
    """On SQLite the migration rebuilds ``tickets``; with foreign keys on, dropping the old
    table would have deleted its events, work orders and callbacks (ON DELETE CASCADE)."""
    upgrade(database_url, "0002_cti")
    engine = make_engine(database_url)
    at = datetime(2026, 12, 7, 2, 0, tzinfo=UTC).isoformat()
    ticket = {
        "category": "public_water",
        "track": "general",
        "status": "resolved",
        "reporter": "张伟",
        "unit": "3-2-1201",
        "what": "漏水",
        "when_text": "刚才",
        "contact": "13800138000",
        "description": "",
        "channel": "phone",
        "sla_class": "30m",
        "escalation_level": 0,
        "overdue": False,
        "created_by": "1001",
        "created_at": at,
        "updated_at": at,
    }
    with engine.begin() as conn:
        _insert(conn, "calls", id="recorded-call", direction="in", caller_number="1", did="2",
                menu_path="[]", collected="{}", priority=0)  # fmt: skip
        _insert(conn, "tickets", id=1, number="GD20261207-0001", call_id="recorded-call", **ticket)
        _insert(conn, "ticket_events", ticket_id=1, at=at, actor="1001", type="registered",
                data="{}")  # fmt: skip
        _insert(conn, "work_orders", ticket_id=1, done="换阀门", materials="", minutes_spent=5,
                attachments="[]", filled_by="eng1", completed_at=at)  # fmt: skip
    engine.dispose()

    upgrade(database_url)
    engine = make_engine(database_url)
    assert not [
        fk for fk in inspect(engine).get_foreign_keys("tickets") if fk["referred_table"] == "calls"
    ]
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM ticket_events")) == 1
        assert conn.scalar(text("SELECT count(*) FROM work_orders")) == 1
        assert conn.scalar(text("SELECT call_id FROM tickets WHERE id = 1")) == "recorded-call"
        _insert(conn, "tickets", id=2, number="GD20261207-0002", call_id="not-yet-recorded",
                **ticket)  # fmt: skip
        if database_url.startswith("sqlite"):  # foreign keys are back on after migrating
            assert conn.scalar(text("PRAGMA foreign_keys")) == 1
    engine.dispose()

    # Down again: a reference to a call that was never recorded cannot be kept by a foreign key.
    downgrade(database_url, "0002_cti")
    engine = make_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, call_id FROM tickets ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "recorded-call"), (2, None)]
        assert conn.scalar(text("SELECT count(*) FROM ticket_events")) == 1
    engine.dispose()
    upgrade(database_url)
