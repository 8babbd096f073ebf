"""Customers the agents create and complete from the screen pop: an unknown caller's empty
record made a customer, a phone linked to one. Keyword-only functions taking the context."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from callcenter.audit import record as record_audit
from callcenter.context import AppContext
from callcenter.db import transaction
from callcenter.errors import Conflict, InvalidInput, NotFound
from cti import numbers, screenpop
from cti.errors import CUSTOMER_BAD_PHONE, CUSTOMER_NOT_FOUND, CUSTOMER_PHONE_TAKEN
from cti.models import Customer, CustomerPhone, CustomerUnit, FeeStatus, Unit


def create_customer(ctx: AppContext, *, data: dict[str, Any], actor: str) -> dict[str, Any]:
    """Create a customer from an unknown caller's empty record, linking the phone and unit."""
    number = numbers.normalize(str(data.get("phone") or ""))
    if data.get("phone") and not number:
        raise InvalidInput("phone has no digits", error_id=CUSTOMER_BAD_PHONE)
    with transaction(ctx.sessions) as session:
        if number and screenpop.find_customer(session, number) is not None:
            raise Conflict(
                f"号码已属于其他客户 / {number} already belongs to a customer",
                details={"phone": number},
                error_id=CUSTOMER_PHONE_TAKEN,
            )
        customer = Customer(
            name=str(data["name"]),
            kind=str(data.get("kind") or "owner"),
            member=bool(data.get("member")),
            fee_status=FeeStatus(data.get("fee_status") or "unknown"),
            notes=data.get("notes"),
        )
        session.add(customer)
        session.flush()
        if number:
            session.add(
                CustomerPhone(customer_id=customer.id, number=number, kind=numbers.kind(number))
            )
        unit_code = str(data.get("unit") or "").strip()
        if unit_code:
            unit = session.scalar(select(Unit).where(Unit.code == unit_code))
            if unit is None:
                parts = [*unit_code.split("-"), "", "", ""][:3]
                unit = Unit(code=unit_code, building=parts[0], entrance=parts[1], room=parts[2])
                session.add(unit)
                session.flush()
            session.add(CustomerUnit(customer_id=customer.id, unit_id=unit.id, relation="owner"))
        customer_id = customer.id
        record_audit(
            session,
            actor=actor,
            action="customer.create",
            object_type="customer",
            object_id=str(customer_id),
            details={"phone": number, "unit": unit_code},
        )
    return customer_view(ctx, customer_id)


def link_phone(ctx: AppContext, *, customer_id: int, phone: str, actor: str) -> dict[str, Any]:
    number = numbers.normalize(phone)
    if not number:
        raise InvalidInput(
            "phone has no digits", details={"phone": phone}, error_id=CUSTOMER_BAD_PHONE
        )
    with transaction(ctx.sessions) as session:
        if session.get(Customer, customer_id) is None:
            raise NotFound(
                f"客户不存在 / customer {customer_id} not found", error_id=CUSTOMER_NOT_FOUND
            )
        owner = screenpop.find_customer(session, number)
        if owner is not None and owner.id != customer_id:
            raise Conflict(
                f"号码已属于其他客户 / {number} already belongs to customer {owner.id}",
                details={"phone": number, "customer_id": owner.id},
                error_id=CUSTOMER_PHONE_TAKEN,
            )
        if owner is None:
            session.add(
                CustomerPhone(customer_id=customer_id, number=number, kind=numbers.kind(number))
            )
            record_audit(
                session,
                actor=actor,
                action="customer.link_phone",
                object_type="customer",
                object_id=str(customer_id),
                details={"phone": number},
            )
    return customer_view(ctx, customer_id)


def customer_view(ctx: AppContext, customer_id: int) -> dict[str, Any]:
    with ctx.sessions() as session:
        record = screenpop.customer_record(session, customer_id)
    if record is None:
        raise NotFound(
            f"客户不存在 / customer {customer_id} not found", error_id=CUSTOMER_NOT_FOUND
        )
    return record
