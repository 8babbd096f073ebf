"""Retention per queue, legal hold, erasure by number: exactly the right files go, each
deletion is audited, and what a caller keyed in is gone from call records and Redis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from callcenter.context import AppContext
from callcenter.models import AuditEntry
from cti.models import Call, CallEvent, Customer, CustomerPhone, CustomerUnit, Unit
from recordings import jobs
from recordings.models import Recording
from recordings.retention import apply_retention
from tests.conftest import auth
from tests.recordings.conftest import MadeCall
from ticketing.models import SatisfactionCallback, Ticket, TicketEvent

NOW = datetime.now(UTC)


def _files(ctx: AppContext) -> set[str]:
    root = Path(ctx.settings.recordings_dir)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _key(ctx: AppContext, made: MadeCall, suffix: str = ".wav") -> str:
    return made.path.relative_to(ctx.settings.recordings_dir).with_suffix(suffix).as_posix()


def _audited(ctx: AppContext, action: str) -> list[str]:
    with ctx.sessions() as session:
        return list(
            session.scalars(
                select(AuditEntry.object_id)
                .where(AuditEntry.action == action)
                .order_by(AuditEntry.id)
            )
        )


def test_retention_deletes_exactly_the_expired_files(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    # general: 365 days (the file's default); complaint: 730 days (its own)
    old_general = make_call(queue="general", started=NOW - timedelta(days=400))
    young_general = make_call(queue="general", started=NOW - timedelta(days=300))
    old_complaint = make_call(queue="complaint", started=NOW - timedelta(days=400))
    ancient_complaint = make_call(queue="complaint", started=NOW - timedelta(days=800))
    no_queue = make_call(queue=None, started=NOW - timedelta(days=366))
    held = make_call(queue="general", started=NOW - timedelta(days=500))
    for made in (old_general, young_general, ancient_complaint):
        jobs.process_recording(made.recording_id)
    hold = client.put(
        f"/api/v1/recordings/{held.recording_id}/legal-hold",
        json={"hold": True, "reason": "诉讼保全"},
        headers=auth(client, "lead1"),
    )
    assert hold.status_code == 200, hold.text
    assert (
        client.put(
            f"/api/v1/recordings/{held.recording_id}/legal-hold",
            json={"hold": False, "reason": "x"},
            headers=auth(client, "1001"),
        ).status_code
        == 403
    )
    before = _files(ctx)
    deleted = apply_retention(ctx, actor="retention")
    expected = {old_general.recording_id, ancient_complaint.recording_id, no_queue.recording_id}
    assert set(deleted) == expected
    gone = {
        _key(ctx, old_general),
        _key(ctx, old_general, ".opus"),
        _key(ctx, ancient_complaint),
        _key(ctx, ancient_complaint, ".opus"),
        _key(ctx, no_queue),
    }
    assert before - _files(ctx) == gone
    assert _files(ctx) == before - gone
    assert young_general.path.exists() and old_complaint.path.exists() and held.path.exists()
    assert set(_audited(ctx, "recording.deleted")) == expected
    with ctx.sessions() as session:  # closed here: left open it held a lock the teardown waits on
        actions = set(session.scalars(select(AuditEntry.action)))
    assert "recording.legal_hold" in actions
    with ctx.sessions() as session:
        rows = {r.id: r.deleted_at for r in session.scalars(select(Recording))}
    assert {rid for rid, at in rows.items() if at is not None} == expected
    assert apply_retention(ctx, actor="retention") == []  # nothing twice


def test_erasure_by_number(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    number = "13700137000"
    first = make_call(caller=number, collected={"room": "1201"})
    second = make_call(caller=number)
    held = make_call(caller=number)
    other = make_call(caller="13800138000", collected={"room": "0808"})
    jobs.process_recording(first.recording_id)
    with ctx.sessions() as session, session.begin():
        session.get(Recording, held.recording_id).legal_hold = True  # type: ignore[union-attr]
    for made in (first, second, other):
        ctx.redis.set(ctx.keys.routing(f"call:{made.call_id}:pop"), '{"name": "张伟"}')
    before = _files(ctx)

    denied = client.post(
        "/api/v1/recordings/erasure",
        json={"number": number, "reason": "客户要求删除"},
        headers=auth(client, "qa1"),
    )
    assert denied.status_code == 403
    bad = client.post(
        "/api/v1/recordings/erasure",
        json={"number": "abc", "reason": "x"},
        headers=auth(client, "admin"),
    )
    assert bad.status_code == 422 and "number" in bad.json()["message"]
    response = client.post(
        "/api/v1/recordings/erasure",
        json={"number": number, "reason": "客户要求删除"},
        headers=auth(client, "admin"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["recordings_deleted"]) == {first.recording_id, second.recording_id}
    assert body["recordings_held"] == [held.recording_id]
    assert body["screen_pops_deleted"] == 2
    assert number not in response.text

    gone = {_key(ctx, first), _key(ctx, first, ".opus"), _key(ctx, second)}
    assert before - _files(ctx) == gone
    assert held.path.exists() and other.path.exists()
    assert ctx.redis.exists(ctx.keys.routing(f"call:{other.call_id}:pop"))
    assert not ctx.redis.exists(ctx.keys.routing(f"call:{first.call_id}:pop"))
    with ctx.sessions() as session:
        call = session.get(Call, first.call_id)
        assert call is not None
        assert call.caller_number == "" and call.collected == {}
        assert all("digits" not in step for step in call.menu_path)
        timeline = session.scalars(select(CallEvent.data).where(CallEvent.call_id == first.call_id))
        assert "1201" not in str(list(timeline)) and number not in str(list(timeline))
        kept = session.get(Call, other.call_id)
        assert kept is not None and kept.collected == {"room": "0808"}
    assert set(_audited(ctx, "recording.erased")) == {first.recording_id, second.recording_id}
    assert set(_audited(ctx, "call.redacted")) == {first.call_id, second.call_id, held.call_id}
    assert set(_audited(ctx, "screen_pop.erased")) == {first.call_id, second.call_id}
    with ctx.sessions() as session:
        details = list(session.scalars(select(AuditEntry.details)))
    assert number not in str(details)
    found = client.get(
        "/api/v1/recordings", params={"caller": number}, headers=auth(client, "qa1")
    ).json()["items"]
    assert [item["id"] for item in found] == [held.recording_id]


def _ticket(number: str, contact: str, customer_id: int | None) -> Ticket:
    return Ticket(
        number=number,
        category="water_leak",
        status="registered",
        reporter="李四",
        unit="3-2-1201",
        what="漏水",
        when_text="今天",
        contact=contact,
        customer_id=customer_id,
        created_by="1001",
    )


def _people(ctx: AppContext, ids: list[int]) -> list[tuple[Any, ...]]:
    """What is kept about customers ``ids``: the rows a wrong erasure would change."""
    with ctx.sessions() as session:
        customers = session.execute(
            select(Customer.id, Customer.name, Customer.notes).where(Customer.id.in_(ids))
        ).all()
        phones = session.execute(
            select(CustomerPhone.customer_id, CustomerPhone.number)
            .where(CustomerPhone.customer_id.in_(ids))
            .order_by(CustomerPhone.id)
        ).all()
        units = session.execute(
            select(CustomerUnit.customer_id, CustomerUnit.unit_id).where(
                CustomerUnit.customer_id.in_(ids)
            )
        ).all()
    return [*map(tuple, customers), *map(tuple, phones), *map(tuple, units)]


def test_erasure_covers_tickets_customers_and_routing_state_and_loses_nothing_else(
    client: TestClient, ctx: AppContext, make_call: Callable[..., MadeCall]
) -> None:
    number, household, neighbour = "13700137001", "13600136001", "13900139001"
    erased_call = make_call(caller=number, collected={"room": "1201"})
    other_call = make_call(caller=neighbour, collected={"room": "0808"})
    with ctx.sessions() as session, session.begin():
        unit_id = session.scalars(select(Unit.id)).first()
        alone = Customer(name="李四", notes="只有这个号码")
        family = Customer(name="王家", notes="两个号码")
        other = Customer(name="赵六", notes="邻居")
        session.add_all([alone, family, other])
        session.flush()
        session.add_all(
            [
                CustomerPhone(customer_id=alone.id, number=number),
                CustomerPhone(customer_id=family.id, number=number),
                CustomerPhone(customer_id=family.id, number=household),
                CustomerPhone(customer_id=other.id, number=neighbour),
            ]
        )
        if unit_id is not None:
            session.add_all(
                [
                    CustomerUnit(customer_id=alone.id, unit_id=unit_id),
                    CustomerUnit(customer_id=other.id, unit_id=unit_id),
                ]
            )
        session.get(Call, erased_call.call_id).customer_id = alone.id  # type: ignore[union-attr]
        mine = _ticket("GD20261206-9001", "137-0013-7001", alone.id)  # free text: normalised
        theirs = _ticket("GD20261206-9002", neighbour, other.id)
        session.add_all([mine, theirs])
        session.flush()
        session.add(
            TicketEvent(ticket_id=mine.id, actor="1001", type="note", data={"contact": number})
        )
        session.add_all(
            [
                SatisfactionCallback(
                    ticket_id=t.id, number=n, scheduled_for=NOW, deadline=NOW, customer_id=c
                )
                for t, n, c in ((mine, number, alone.id), (theirs, neighbour, other.id))
            ]
        )
        ids = {"alone": alone.id, "family": family.id, "other": other.id}
    ctx.redis.hset(
        ctx.keys.routing(f"call:{erased_call.call_id}"),
        mapping={"caller": number, "collected": '{"room": "1201"}', "state": "ended"},
    )
    ctx.redis.hset(
        ctx.keys.routing(f"call:{other_call.call_id}"), mapping={"caller": neighbour, "x": "1"}
    )
    before_other = _people(ctx, [ids["other"]])
    try:
        response = client.post(
            "/api/v1/recordings/erasure",
            json={"number": number, "reason": "客户要求删除"},
            headers=auth(client, "admin"),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["tickets_redacted"] == ["GD20261206-9001"]
        assert body["customers_deleted"] == [ids["alone"]]
        assert (body["customer_phones_deleted"], body["callbacks_redacted"]) == (2, 1)
        assert body["routing_states_redacted"] == 1
        assert number not in response.text
        with ctx.sessions() as session:
            # the lone customer's record is gone; the household keeps its other number
            assert session.get(Customer, ids["alone"]) is None
            assert _people(ctx, [ids["family"]]) == [
                (ids["family"], "王家", "两个号码"),
                (ids["family"], household),
            ]
            ticket = session.scalar(select(Ticket).where(Ticket.number == "GD20261206-9001"))
            assert ticket is not None and ticket.contact == "" and ticket.customer_id is None
            assert ticket.what == "漏水"  # the work done stays on record
            notes = session.scalars(
                select(TicketEvent.data).where(TicketEvent.ticket_id == ticket.id)
            )
            assert number not in str(list(notes))
            numbers = set(session.scalars(select(SatisfactionCallback.number)))
            assert numbers == {"", neighbour}
            erased = session.get(Call, erased_call.call_id)
            assert erased is not None and erased.customer_id is None
            # other customers' data intact: record, phones, units, ticket, call, call-back
            kept = session.scalar(select(Ticket).where(Ticket.number == "GD20261206-9002"))
            assert kept is not None and (kept.contact, kept.customer_id) == (
                neighbour,
                ids["other"],
            )
            kept_call = session.get(Call, other_call.call_id)
            assert kept_call is not None and kept_call.caller_number == neighbour
            assert kept_call.collected == {"room": "0808"}
        assert _people(ctx, [ids["other"]]) == before_other
        left = ctx.redis.hgetall(ctx.keys.routing(f"call:{erased_call.call_id}"))
        assert left == {"state": "ended"}  # the digits and the number gone, the rest kept
        assert ctx.redis.hget(ctx.keys.routing(f"call:{other_call.call_id}"), "caller") == neighbour
        audited = {
            action: _audited(ctx, action)
            for action in (
                "ticket.contact_erased",
                "callback.number_erased",
                "customer_phone.erased",
                "customer.erased",
                "call_state.redacted",
            )
        }
        assert audited["ticket.contact_erased"] == ["GD20261206-9001"]
        assert len(audited["callback.number_erased"]) == 1
        assert sorted(audited["customer_phone.erased"]) == sorted(
            [str(ids["alone"]), str(ids["family"])]
        )
        assert audited["customer.erased"] == [str(ids["alone"])]
        assert audited["call_state.redacted"] == [erased_call.call_id]
        with ctx.sessions() as session:
            assert number not in str(list(session.scalars(select(AuditEntry.details))))
    finally:
        with ctx.sessions() as session, session.begin():  # the seeded PostgreSQL is shared
            session.execute(delete(SatisfactionCallback))
            for table in (CustomerUnit, CustomerPhone):
                session.execute(delete(table).where(table.customer_id.in_(list(ids.values()))))
            session.execute(
                update(Call)
                .values(customer_id=None)
                .where(Call.customer_id.in_(list(ids.values())))
            )
            session.execute(
                update(Ticket)
                .values(customer_id=None)
                .where(Ticket.customer_id.in_(list(ids.values())))
            )
            session.execute(delete(Customer).where(Customer.id.in_(list(ids.values()))))
