"""Categories, departments and who is told: the dispatch table, the department contacts
(cached per process) and the ``dispatched`` step itself."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.context import AppContext
from callcenter.errors import InvalidInput, NotFound
from callcenter.params import row_id_in
from cti.models import Department, DepartmentContact
from ticketing.change import Change
from ticketing.errors import DEPARTMENT_NOT_FOUND
from ticketing.models import Ticket
from ticketing.state import Status

# Departments and their contacts change rarely (an admin edits them); every request needs
# them. They are cached per database engine for REFERENCE_TTL seconds.
REFERENCE_TTL = 30.0
_reference: weakref.WeakKeyDictionary[Any, dict[Any, tuple[float, Any]]] = (
    weakref.WeakKeyDictionary()
)


def _cached(session: Session, key: Any, load: Any) -> Any:
    cache = _reference.setdefault(session.get_bind(), {})
    entry = cache.get(key)
    if entry is not None and time.monotonic() - entry[0] < REFERENCE_TTL:
        return entry[1]
    value = load()
    cache[key] = (time.monotonic(), value)
    return value


@dataclass(frozen=True)
class DeptRef:
    id: int
    code: str


def department_codes(session: Session) -> dict[int, str]:
    codes: dict[int, str] = _cached(
        session,
        "departments",
        lambda: {d.id: d.code for d in session.scalars(select(Department))},
    )
    return codes


def department_by_code(session: Session, code: str) -> DeptRef:
    for dept_id, dept_code in department_codes(session).items():
        if dept_code == code:
            return DeptRef(dept_id, dept_code)
    dept = session.scalar(select(Department).where(Department.code == code))  # added since cached
    if dept is None:
        raise InvalidInput(
            f"department: {code!r} is not in the database (run `callcenter seed-demo` or sync)",
            details={"field": "department", "value": code},
            error_id=DEPARTMENT_NOT_FOUND,
        )
    return DeptRef(dept.id, dept.code)


def contacts_for(session: Session, department_id: int | None, role: str) -> list[dict[str, Any]]:
    """Who to tell: a department's supervisors or managers, or the company's leadership."""
    key = ("contacts", None if role == "leadership" else department_id, role)
    found: list[dict[str, Any]] = _cached(
        session, key, lambda: _contacts(session, department_id, role)
    )
    return [dict(c) for c in found]


def _contacts(session: Session, department_id: int | None, role: str) -> list[dict[str, Any]]:
    query = select(DepartmentContact).where(DepartmentContact.role == role)
    if role != "leadership":
        query = query.where(DepartmentContact.department_id == department_id)
    rows = session.scalars(query.order_by(DepartmentContact.rank, DepartmentContact.id))
    return [{"role": c.role, "name": c.name, "phone": c.phone, "user_id": c.user_id} for c in rows]


def categories(ctx: AppContext) -> list[dict[str, Any]]:
    d = ctx.config.dispatch
    out = []
    for code, cat in d.categories.items():
        dept = d.departments[cat.department]
        sla = d.sla[cat.sla]
        out.append(
            {
                "code": code,
                "name_zh": cat.name.zh,
                "name_en": cat.name.en,
                "area": cat.area,
                "department": cat.department,
                "department_name_zh": dept.name.zh,
                "department_name_en": dept.name.en,
                "external": dept.external,
                "sla": cat.sla,
                "sla_minutes": sla.minutes,
                "written_notice": sla.written_notice,
            }
        )
    return out


def dispatch_ticket(
    change: Change,
    ticket: Ticket,
    dept: DeptRef,
    *,
    from_status: str,
    actor: str | None = None,
    reason: str | None = None,
) -> None:
    """Move to ``dispatched``: the department's supervisor (manager on the emergency track);
    an emergency also notifies senior leadership at the same moment (同时上报上级主管领导)."""
    track = change.ctx.config.dispatch.tracks[ticket.track]  # type: ignore[index]
    ticket.status = Status.dispatched
    ticket.department_id = dept.id
    ticket.updated_at = change.now
    recipients = contacts_for(change.session, dept.id, track.dispatch_to)
    change.event(
        ticket,
        "dispatched",
        from_status=from_status,
        to_status=Status.dispatched,
        data={
            "department": dept.code,
            "to_role": track.dispatch_to,
            "recipients": recipients,
            **({"reason": reason} if reason else {}),
        },
        actor=actor,
    )
    if track.notify_leadership:
        change.event(
            ticket,
            "leadership_notified",
            data={"recipients": contacts_for(change.session, None, "leadership")},
            actor=actor,
        )


def resolve_department(session: Session, ref: str) -> Department:
    """A department by numeric id or by code."""
    row_id = row_id_in(ref)
    dept = (
        session.get(Department, row_id)
        if row_id is not None
        else session.scalar(select(Department).where(Department.code == ref))
    )
    if dept is None:
        raise NotFound(
            f"department {ref!r} does not exist / 部门不存在",
            details={"department": ref},
            error_id=DEPARTMENT_NOT_FOUND,
        )
    return dept
