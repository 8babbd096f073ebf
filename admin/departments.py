"""Departments' contacts: who a department's tickets, escalations and dispatch notices reach.

Departments themselves come from ``dispatch.toml`` (mirrored into SQL at start); their contacts
live only in SQL and are edited here. Ticket processes cache contacts for
``ticketing.services.REFERENCE_TTL`` seconds, so a change reaches them within that time.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.schemas import ContactCreate, ContactPublic, ContactUpdate, DepartmentPublic
from callcenter.audit import record as record_audit
from callcenter.errors import InvalidInput, NotFound
from callcenter.models import User
from cti.models import Department, DepartmentContact

# supervisor (派单落实责任人), manager (经理), escalation (上级主管领导), leadership (公司领导:
# reached from any department at the top of the escalation chain).
CONTACT_ROLES = ("supervisor", "manager", "escalation", "leadership")


def _public(contact: DepartmentContact, code: str) -> ContactPublic:
    return ContactPublic(
        id=contact.id,
        department=code,
        role=contact.role,
        name=contact.name,
        phone=contact.phone,
        user_id=contact.user_id,
        rank=contact.rank,
    )


def _department(session: Session, code: str) -> Department:
    department = session.scalar(select(Department).where(Department.code == code))
    if department is None:
        raise NotFound(f"部门不存在 / department {code!r} not found", details={"department": code})
    return department


def _contact(session: Session, department: Department, contact_id: int) -> DepartmentContact:
    contact = session.get(DepartmentContact, contact_id)
    if contact is None or contact.department_id != department.id:
        raise NotFound(
            f"联系人不存在 / contact {contact_id} not found in {department.code}",
            details={"contact_id": contact_id, "department": department.code},
        )
    return contact


def _check(session: Session, *, role: str | None, user_id: int | None) -> None:
    problems: list[dict[str, str]] = []
    if role is not None and role not in CONTACT_ROLES:
        problems.append(
            {"field": "role", "message": f"须为 / must be one of {', '.join(CONTACT_ROLES)}"}
        )
    if user_id is not None and session.get(User, user_id) is None:
        problems.append({"field": "user_id", "message": f"用户不存在 / no user {user_id}"})
    if problems:
        fields = ", ".join(p["field"] for p in problems)
        raise InvalidInput(f"invalid input: {fields}", details={"problems": problems})


def _snapshot(contact: DepartmentContact) -> dict[str, Any]:
    return {
        "role": contact.role,
        "name": contact.name,
        "phone": contact.phone,
        "user_id": contact.user_id,
        "rank": contact.rank,
    }


def list_departments(session: Session) -> list[DepartmentPublic]:
    out = []
    for department in session.scalars(select(Department).order_by(Department.code)):
        contacts = session.scalars(
            select(DepartmentContact)
            .where(DepartmentContact.department_id == department.id)
            .order_by(DepartmentContact.rank, DepartmentContact.id)
        )
        out.append(
            DepartmentPublic(
                id=department.id,
                code=department.code,
                name_zh=department.name_zh,
                name_en=department.name_en,
                external=department.external,
                contacts=[_public(c, department.code) for c in contacts],
            )
        )
    return out


def add_contact(session: Session, *, actor: str, code: str, data: ContactCreate) -> ContactPublic:
    department = _department(session, code)
    _check(session, role=data.role, user_id=data.user_id)
    contact = DepartmentContact(department_id=department.id, **data.model_dump())
    session.add(contact)
    session.flush()
    record_audit(
        session, actor=actor, action="department.contact_add", object_type="department",
        object_id=code, details={"contact_id": contact.id, "before": None,
                                 "after": _snapshot(contact)},
    )  # fmt: skip
    return _public(contact, code)


def update_contact(
    session: Session, *, actor: str, code: str, contact_id: int, data: ContactUpdate
) -> ContactPublic:
    department = _department(session, code)
    contact = _contact(session, department, contact_id)
    sent = data.model_dump(exclude_unset=True)
    for required in ("role", "name", "rank"):
        if required in sent and sent[required] is None:
            raise InvalidInput(
                f"invalid input: {required}",
                details={"problems": [{"field": required, "message": "不能为空 / not null"}]},
            )
    _check(session, role=sent.get("role"), user_id=sent.get("user_id"))
    before = _snapshot(contact)
    for name, value in sent.items():
        setattr(contact, name, value)
    session.flush()
    record_audit(
        session, actor=actor, action="department.contact_update", object_type="department",
        object_id=code, details={"contact_id": contact.id, "before": before,
                                 "after": _snapshot(contact)},
    )  # fmt: skip
    return _public(contact, code)


def delete_contact(session: Session, *, actor: str, code: str, contact_id: int) -> None:
    department = _department(session, code)
    contact = _contact(session, department, contact_id)
    before = _snapshot(contact)
    session.delete(contact)
    record_audit(
        session, actor=actor, action="department.contact_remove", object_type="department",
        object_id=code, details={"contact_id": contact_id, "before": before, "after": None},
    )  # fmt: skip
