"""Migrations and the data model on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError

from callcenter.audit import record
from callcenter.db import make_engine, make_sessionmaker
from callcenter.migrate import downgrade, upgrade
from callcenter.schema import Base
from cti.models import Call, CallEvent, Customer, CustomerPhone, CustomerUnit, Department, Unit
from recordings.models import Recording
from ticketing.models import Ticket, TicketEvent, WorkOrder


def test_upgrade_to_head_and_down_again(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables
    engine.dispose()
    downgrade(database_url, "base")
    engine = make_engine(database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(database_url)  # and up again: downgrade left nothing behind that blocks it


def test_models_round_trip(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    arrived = datetime(2026, 11, 29, 1, 2, 3, tzinfo=UTC)
    with sessions() as session, session.begin():
        customer = Customer(name="张伟", member=True, arrears_amount=Decimal("1280.00"))
        unit = Unit(code="3-2-1201", building="3", entrance="2", room="1201")
        dept = Department(code="engineering", name_zh="工程部", name_en="Engineering")
        session.add_all([customer, unit, dept])
        session.flush()
        session.add(CustomerPhone(customer_id=customer.id, number="13800138000"))
        session.add(CustomerUnit(customer_id=customer.id, unit_id=unit.id))
        call = Call(
            id="c-1",
            caller_number="13800138000",
            did="4008001234",
            arrived_at=arrived,
            menu_path=[{"digit": "1", "node": "repair"}],
            collected={"room": "321201"},
        )
        session.add(call)
        session.flush()
        session.add(
            CallEvent(
                call_id="c-1",
                stream_id="1-0",
                type="call_arrived",
                at=arrived,
                data={"did": "4008001234"},
            )
        )
        session.add(
            Recording(
                id="r-1",
                call_id="c-1",
                path="/x.wav",
                started_at=arrived,
                duration_seconds=12.5,
                bytes=200044,
                sha256="0" * 64,
                status="complete",
            )
        )
        ticket = Ticket(
            number="GD20261129-0001",
            category="public_water",
            department_id=dept.id,
            reporter="张伟",
            unit="3-2-1201",
            what="水管漏水",
            when_text="今天上午",
            contact="13800138000",
            created_by="1001",
            call_id="c-1",
            customer_id=customer.id,
            due_at=arrived + timedelta(minutes=30),
        )
        session.add(ticket)
        session.flush()
        session.add(
            TicketEvent(
                ticket_id=ticket.id, actor="1001", type="transition", to_status="registered"
            )
        )
        session.add(
            WorkOrder(ticket_id=ticket.id, done="更换阀门", filled_by="eng1", minutes_spent=40)
        )
    with sessions() as session:
        stored = session.get(Call, "c-1")
        assert stored is not None
        assert stored.arrived_at == arrived  # timezone-aware UTC on both databases
        assert stored.menu_path == [{"digit": "1", "node": "repair"}]
        found = session.scalar(select(Customer).where(Customer.name == "张伟"))
        assert found is not None and found.arrears_amount == Decimal("1280.00")
        assert [p.number for p in found.phones] == ["13800138000"]
        stored_ticket = session.scalar(select(Ticket))
        assert stored_ticket is not None
        assert stored_ticket.due_at == arrived + timedelta(minutes=30)
        assert [e.to_status for e in stored_ticket.events] == ["registered"]
    # the stream id makes call events idempotent on replay
    with pytest.raises(DBAPIError), sessions() as session, session.begin():
        session.add(CallEvent(call_id="c-1", stream_id="1-0", type="call_arrived", at=arrived))
    engine.dispose()


def test_audit_log_is_append_only(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session, session.begin():
        record(
            session,
            actor="qa1",
            action="recording.played",
            object_type="recording",
            object_id="r-1",
        )
    for statement in ("UPDATE audit_log SET actor = 'someone'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with sessions() as session:
        assert session.scalar(text("SELECT actor FROM audit_log")) == "qa1"
    engine.dispose()


def test_sqlite_is_durable(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/d.db")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()
