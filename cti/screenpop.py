"""The screen pop: who is calling, built when routing offers a call, before the agent answers.

The payload (documented in docs/cti.md) goes to the agent's desktop WebSocket as
``{"type": "offer", ...}`` through the Redis channel ``{prefix}:agent:{id}:events``, is kept for
a reconnecting desktop at ``{prefix}:routing:call:{id}:pop``, and is POSTed as JSON to
``settings.screen_pop_webhook_url`` when one is set (fire and forget, 3 s timeout, failures
logged; the desktop never waits for the webhook).
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from callcenter.context import AppContext
from callcenter.db import database_down
from cti import numbers
from cti.models import Call, Customer, CustomerPhone, CustomerUnit, Unit
from cti.routing import Offer, Routing

log = logging.getLogger(__name__)

RECENT_LIMIT = 5
POP_TTL_SECONDS = 3600
WEBHOOK_TIMEOUT_SECONDS = 3.0
CLOSED_TICKET_STATES = {"closed", "archived", "cancelled", "canceled"}


def _money(value: Decimal | None) -> str:
    return f"{(value or Decimal('0')):.2f}"


def customer_id_for(session: Session, number: str) -> int | None:
    """The customer a normalised number belongs to (the lowest id if several)."""
    if not number:
        return None
    return session.scalar(
        select(CustomerPhone.customer_id)
        .where(CustomerPhone.number == number)
        .order_by(CustomerPhone.customer_id)
        .limit(1)
    )


def find_customer(session: Session, number: str) -> Customer | None:
    customer_id = customer_id_for(session, number)
    return session.get(Customer, customer_id) if customer_id is not None else None


def customer_record(session: Session, customer_id: int) -> dict[str, Any] | None:
    """Name, kind, member flag, fee status and arrears, units and phones (plain queries: this
    runs on every offer, so no ORM object loading)."""
    row = session.execute(
        select(
            Customer.id,
            Customer.name,
            Customer.kind,
            Customer.member,
            Customer.fee_status,
            Customer.arrears_amount,
            Customer.notes,
        ).where(Customer.id == customer_id)
    ).first()
    if row is None:
        return None
    units = session.execute(
        select(Unit.code, Unit.building, Unit.entrance, Unit.room, CustomerUnit.relation)
        .join(CustomerUnit, CustomerUnit.unit_id == Unit.id)
        .where(CustomerUnit.customer_id == customer_id)
        .order_by(Unit.code)
    ).all()
    phones = session.execute(
        select(CustomerPhone.number, CustomerPhone.kind)
        .where(CustomerPhone.customer_id == customer_id)
        .order_by(CustomerPhone.id)
    ).all()
    return {
        "id": row.id,
        "name": row.name,
        "kind": row.kind,
        "member": row.member,
        "fee_status": str(row.fee_status),
        "arrears_amount": _money(row.arrears_amount),
        "notes": row.notes,
        "units": [
            {
                "code": u.code,
                "building": u.building,
                "entrance": u.entrance,
                "room": u.room,
                "relation": u.relation,
            }
            for u in units
        ],
        "phones": [{"number": p.number, "kind": p.kind} for p in phones],
    }


def _tickets(session: Session, customer_id: int | None, number: str) -> list[dict[str, Any]]:
    try:
        from ticketing.models import Ticket
    except ImportError:  # ticketing not in this build
        return []
    conditions: list[ColumnElement[bool]] = [Ticket.contact == number] if number else []
    if customer_id is not None:
        conditions.append(Ticket.customer_id == customer_id)
    if not conditions:
        return []
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.number,
            Ticket.category,
            Ticket.status,
            Ticket.track,
            Ticket.what,
            Ticket.unit,
            Ticket.created_at,
            Ticket.due_at,
            Ticket.overdue,
            Ticket.closed_at,
        )
        .where(or_(*conditions))
        .order_by(Ticket.created_at.desc())
        .limit(20)
    ).all()
    return [
        {
            "id": t.id,
            "number": t.number,
            "category": t.category,
            "status": t.status,
            "track": t.track,
            "what": t.what,
            "unit": t.unit,
            "created_at": _iso(t.created_at),
            "due_at": _iso(t.due_at),
            "overdue": t.overdue,
            "open": t.closed_at is None and t.status not in CLOSED_TICKET_STATES,
        }
        for t in rows
    ]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLite hands back naive datetimes from plain column queries: they are UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _recent_calls(
    session: Session, customer_id: int | None, numbers_: list[str], exclude: str
) -> list[dict[str, Any]]:
    conditions: list[ColumnElement[bool]] = [Call.caller_number.in_([n for n in numbers_ if n])]
    if customer_id is not None:
        conditions.append(Call.customer_id == customer_id)
    rows = session.execute(
        select(
            Call.id,
            Call.arrived_at,
            Call.queue_code,
            Call.outcome,
            Call.agent_id,
            Call.disposition,
        )
        .where(or_(*conditions), Call.id != exclude)
        .order_by(Call.arrived_at.desc())
        .limit(RECENT_LIMIT)
    ).all()
    return [
        {
            "id": c.id,
            "arrived_at": _iso(c.arrived_at),
            "queue": c.queue_code,
            "outcome": c.outcome,
            "agent_id": c.agent_id,
            "disposition": c.disposition,
        }
        for c in rows
    ]


def lookup(session: Session, raw_number: str, *, exclude_call: str = "") -> dict[str, Any]:
    """Everything the desktop shows about a number (also ``GET /api/v1/customers/lookup``)."""
    number = numbers.normalize(raw_number) if raw_number else ""
    customer_id = customer_id_for(session, number)
    customer = customer_record(session, customer_id) if customer_id is not None else None
    tickets = _tickets(session, customer_id, number)
    record: dict[str, Any] = {
        "caller": {
            "raw": raw_number,
            "number": number,
            "kind": numbers.kind(number) if number else "unknown",
        },
        "customer": customer,
        "open_tickets": [t for t in tickets if t["open"]][:RECENT_LIMIT],
        "recent_tickets": tickets[:RECENT_LIMIT],
        "recent_calls": _recent_calls(session, customer_id, [number, raw_number], exclude_call),
    }
    if customer is None:
        # An empty record the agent can fill in and link to this number.
        record["new_customer"] = {
            "name": "",
            "kind": "owner",
            "member": False,
            "unit": "",
            "phone": number,
            "create": "POST /api/v1/customers",
            "link_existing": "POST /api/v1/customers/{customer_id}/phones",
        }
    return record


def unread(raw_number: str) -> dict[str, Any]:
    """The record of a caller whose customer data could not be read (the database down):
    the number alone, ``"records_unavailable": true``; the desktop says so and the agent
    looks the caller up again later (``GET /api/v1/customers/lookup``)."""
    number = numbers.normalize(raw_number) if raw_number else ""
    return {
        "caller": {
            "raw": raw_number,
            "number": number,
            "kind": numbers.kind(number) if number else "unknown",
        },
        "customer": None,
        "open_tickets": [],
        "recent_tickets": [],
        "recent_calls": [],
        "records_unavailable": True,
    }


def _lookup_or_unread(ctx: AppContext, raw_number: str, call_id: str) -> dict[str, Any]:
    try:
        with ctx.sessions() as session:
            return lookup(session, raw_number, exclude_call=call_id)
    except Exception as exc:
        if not database_down(exc):
            raise
        log.warning("screen pop of %s without customer records: the database did not "
                    "answer (%s)", call_id, exc)  # fmt: skip
        return unread(raw_number)


def record_key(ctx: AppContext, call_id: str) -> str:
    return ctx.keys.routing(f"call:{call_id}:record")


def prepare(ctx: AppContext, call_id: str, raw_number: str) -> dict[str, Any]:
    """Look the caller up when the call is queued, and keep the record for the offer: the
    queries are done while the caller waits, not between the offer and the pop."""
    record = _lookup_or_unread(ctx, raw_number, call_id)
    if not record.get("records_unavailable"):  # else looked up again at the offer
        text = json.dumps(record, ensure_ascii=False)
        ctx.redis.set(record_key(ctx, call_id), text, ex=POP_TTL_SECONDS)
    return record


def build(
    ctx: AppContext, routing: Routing, offer: Offer, *, now: float | None = None
) -> dict[str, Any]:
    call = routing.call(offer.call_id)
    raw_number = call.get("number") if call.get("callback") == "1" else call.get("caller")
    queue = ctx.config.queues.queues.get(offer.queue)
    arrived = float(call.get("arrived_at") or 0) or None
    now = routing.clock() if now is None else now
    cached = ctx.redis.get(record_key(ctx, offer.call_id))
    if cached and json.loads(str(cached))["caller"]["raw"] == (raw_number or ""):
        record = json.loads(str(cached))
    else:
        record = _lookup_or_unread(ctx, raw_number or "", offer.call_id)
    return {
        "type": "offer",
        "call_id": offer.call_id,
        "agent_id": offer.agent_id,
        "offered_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "queue": {
            "code": offer.queue,
            "name": {"zh-CN": queue.name.zh, "en": queue.name.en} if queue else None,
        },
        "wait_seconds": round(now - arrived, 1) if arrived else None,
        "callback": call.get("callback") == "1",
        # For a call-back the engine places a new call (agent leg first) under this id.
        "placed_call_id": call.get("leg") or None if call.get("callback") == "1" else None,
        "priority": int(call.get("priority") or 0),
        "menu_path": json.loads(call.get("menu_path") or "[]"),
        "digits": json.loads(call.get("collected") or "{}"),
        "did": call.get("did") or None,
        **record,
    }


def deliver(ctx: AppContext, routing: Routing, offers: list[Offer]) -> list[dict[str, Any]]:
    """Build, keep, publish (and optionally POST) the pop for each new offer."""
    pops = []
    for offer in offers:
        payload = build(ctx, routing, offer)
        text = json.dumps(payload, ensure_ascii=False)
        pipe = ctx.redis.pipeline()
        pipe.set(ctx.keys.routing(f"call:{offer.call_id}:pop"), text, ex=POP_TTL_SECONDS)
        if payload["placed_call_id"]:
            key = ctx.keys.routing(f"call:{payload['placed_call_id']}:pop")
            pipe.set(key, text, ex=POP_TTL_SECONDS)
        pipe.publish(ctx.keys.agent_channel(offer.agent_id), text)
        pipe.execute()
        url = getattr(ctx.settings, "screen_pop_webhook_url", "")
        if url:
            threading.Thread(
                target=post_webhook, args=(url, text), name="screen-pop-webhook", daemon=True
            ).start()
        pops.append(payload)
    return pops


def post_webhook(url: str, body: str) -> bool:
    request = urllib.request.Request(
        url,
        data=body.encode(),
        headers={"Content-Type": "application/json; charset=utf-8", "X-Callcenter-Event": "offer"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("screen pop webhook %s failed: %s", url, exc)
        return False
