"""What each page shows, read from the same services and tables the API uses.

Functions here take the context and the signed-in user and return plain dicts for the
templates; they never render and never touch the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import ColumnElement, and_, func, or_, select

from callcenter.auth import Principal
from callcenter.context import AppContext
from callcenter.errors import NotFound
from callcenter.models import Role, User
from cti import numbers
from cti import services as cti_services
from cti.models import Agent, AgentQueue, Call, CustomerPhone, Department
from cti.state import CHOOSABLE_REASONS, REASON_NAMES, STATE_NAMES, AgentState, NotReadyReason
from pages import overdue
from pages.i18n import t
from ticketing import reports
from ticketing import services as ticket_services
from ticketing.models import SatisfactionCallback, Ticket
from ticketing.state import DEPARTMENT_STEPS, REQUIRED_FIELDS, STATUS_NAMES, Status

PAGE_SIZE = 50
OVERDUE_LISTED = 200  # tickets listed under the overdue report's figures (latest first)
RECENT_CALLS = 10
DISPOSITIONS = ("resolved", "ticket_created", "info_given", "transferred", "callback_needed")


def _name(pair: tuple[str, str], lang: str) -> str:
    return pair[0] if lang == "zh-CN" else pair[1]


def local_text(ctx: AppContext, moment: datetime | None) -> str:
    """``moment`` as the center's wall clock (settings.timezone), ``2026-12-07 03:37``: the
    pages never show a UTC ISO timestamp."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(ctx.settings.timezone)).strftime("%Y-%m-%d %H:%M")


def state_names(lang: str) -> dict[str, str]:
    return {str(state): _name(names, lang) for state, names in STATE_NAMES.items()}


def reason_names(lang: str) -> dict[str, str]:
    return {code: _name(names, lang) for code, names in REASON_NAMES.items()}


def agent_reasons(lang: str) -> list[dict[str, str]]:
    """The not-ready reasons an agent may choose (``forced`` is a lead's)."""
    order = [r for r in NotReadyReason if r in CHOOSABLE_REASONS and r is not NotReadyReason.forced]
    return [{"code": str(r), "name": _name(REASON_NAMES[str(r)], lang)} for r in order]


def queue_names(ctx: AppContext, lang: str) -> dict[str, str]:
    return {
        code: (queue.name.zh if lang == "zh-CN" else queue.name.en)
        for code, queue in ctx.config.queues.queues.items()
    }


def department_names(ctx: AppContext, lang: str) -> dict[str, str]:
    """The departments' names as dispatch.toml gives them, by code."""
    return {
        code: (department.name.zh if lang == "zh-CN" else department.name.en)
        for code, department in ctx.config.dispatch.departments.items()
    }


# ---------------------------------------------------------------- /desktop


def desktop(ctx: AppContext, user: Principal, lang: str) -> dict[str, Any]:
    agent_id = user.agent_id
    snapshot = cti_services.routing_for(ctx).agent(agent_id) if agent_id is not None else None
    targets = {
        code: (target.name.zh if lang == "zh-CN" else target.name.en)
        for code, target in ctx.config.telephony.transfer_targets.items()
    }
    with ctx.sessions() as session:
        colleagues = [
            {"extension": ext, "name": name}
            for ext, name in session.execute(
                select(Agent.extension, User.display_name)
                .join(User, User.id == Agent.user_id)
                .where(Agent.active.is_(True), Agent.id != (agent_id or 0))
                .order_by(Agent.extension)
            )
        ]
        recent = (
            [
                {
                    "id": call.id,
                    "caller": call.caller_number,
                    "queue": call.queue_code or "",
                    "arrived": local_text(ctx, call.arrived_at),
                    "outcome": call.outcome or "",
                    "disposition": call.disposition or "",
                }
                for call in session.scalars(
                    select(Call)
                    .where(Call.agent_id == agent_id)
                    .order_by(Call.arrived_at.desc())
                    .limit(RECENT_CALLS)
                )
            ]
            if agent_id is not None
            else []
        )
        # the callbacks (回访) a lead assigned to me, still open, the earliest first
        callbacks = (
            [
                {
                    "id": cb.id,
                    "ticket": number,
                    "what": what,
                    "number": cb.number,
                    "scheduled": local_text(ctx, cb.scheduled_for),
                    "deadline": local_text(ctx, cb.deadline),
                    "status": cb.status,
                    "attempts": cb.attempts,
                }
                for cb, number, what in session.execute(
                    select(SatisfactionCallback, Ticket.number, Ticket.what)
                    .join(Ticket, Ticket.id == SatisfactionCallback.ticket_id)
                    .where(
                        SatisfactionCallback.assigned_agent_id == agent_id,
                        SatisfactionCallback.status.in_(("scheduled", "in_progress")),
                    )
                    .order_by(SatisfactionCallback.scheduled_for)
                    .limit(50)
                )
            ]
            if agent_id is not None
            else []
        )
    categories = ticket_services.categories(ctx)
    return {
        "agent_id": agent_id,
        "snapshot": snapshot,
        "department_names": department_names(ctx, lang),
        "reasons": agent_reasons(lang),
        "queues": queue_names(ctx, lang),
        "targets": targets,
        "colleagues": colleagues,
        "categories": categories,
        "dispositions": DISPOSITIONS,
        "recent_calls": recent,
        "callbacks": callbacks,
        "timezone": ctx.settings.timezone,
    }


# ---------------------------------------------------------------- /lead


def lead(ctx: AppContext, lang: str, user: Principal) -> dict[str, Any]:
    routing = cti_services.routing_for(ctx)
    with ctx.sessions() as session:
        my_extension = (
            session.scalar(select(Agent.extension).where(Agent.id == user.agent_id))
            if user.agent_id is not None
            else None
        )
        people = dict(
            session.execute(
                select(Agent.id, User.display_name).join(User, User.id == Agent.user_id)
            ).all()
        )
        memberships: dict[int, dict[str, int]] = {}
        for agent_id, queue_code, level in session.execute(
            select(AgentQueue.agent_id, AgentQueue.queue_code, AgentQueue.skill_level)
        ):
            memberships.setdefault(agent_id, {})[queue_code] = level
    agents = cti_services.list_agents(ctx)
    for row in agents:
        row["name"] = people.get(row["agent_id"], "")
        # a logged-out agent has no live queues: show the ones they are configured for
        row["queues"] = row["queues"] or dict(sorted(memberships.get(row["agent_id"], {}).items()))
        call_id = row.get("call_id")
        row["call_queue"] = (
            routing.redis.hget(routing.key(f"call:{call_id}"), "queue") if call_id else None
        )
    staffing = cti_services.staffing(ctx)
    names = shift_names(ctx, lang)
    return {
        "agents": agents,
        "live_alerts": live_alerts(ctx),
        "queues": routing.queue_status(),
        "staffing": staffing,
        "staffing_view": staffing_view(staffing, names, lang),
        "shift_names": names,
        "queue_names": queue_names(ctx, lang),
        "my_extension": my_extension,
    }


def live_alerts(ctx: AppContext) -> list[dict[str, Any]]:
    """The wallboard's alerts but staffing (the console shows routing's own staffing report):
    answer rate and service level under target, long waits. Empty when Redis does not answer
    (the page still opens; its script polls again)."""
    from metrics.reader import LiveReader

    try:
        snapshot = LiveReader(ctx).snapshot()
    except redis.RedisError:
        return []
    return [a for a in snapshot["alerts"] if a["kind"] != "staffing"]


def shift_names(ctx: AppContext, lang: str) -> dict[str, str]:
    return {
        code: (shift.name.zh if lang == "zh-CN" else shift.name.en)
        for code, shift in ctx.config.shifts.shifts.items()
    }


def staffing_view(report: dict[str, Any], names: dict[str, str], lang: str) -> dict[str, str]:
    """The shifts in force by name and the alert in the page's language only (the API's
    ``message`` carries both languages)."""
    alert = (
        t("lead.below_minimum", lang)
        .replace("{online}", str(report["logged_in"]))
        .replace("{minimum}", str(report["minimum"]))
        if report["alert"]
        else ""
    )
    in_force = set(report["shifts_in_force"])
    shifts = t("list.sep", lang).join(name for code, name in names.items() if code in in_force)
    return {"shifts": shifts, "alert_text": alert}


# ---------------------------------------------------------------- /tickets


@dataclass(frozen=True)
class TicketFilters:
    status: str = ""
    department: str = ""
    track: str = ""
    overdue: bool = False
    number: str = ""
    phone: str = ""
    text: str = ""
    before: int | None = None  # keyset: tickets with a smaller id (newest first)

    def query_args(self) -> dict[str, str]:
        out = {
            "status": self.status,
            "department": self.department,
            "track": self.track,
            "overdue": "1" if self.overdue else "",
            "number": self.number,
            "phone": self.phone,
            "text": self.text,
        }
        return {k: v for k, v in out.items() if v}


def _departments(ctx: AppContext, lang: str) -> list[dict[str, Any]]:
    with ctx.sessions() as session:
        rows = session.scalars(select(Department).order_by(Department.id)).all()
        return [
            {"id": d.id, "code": d.code, "name": d.name_zh if lang == "zh-CN" else d.name_en}
            for d in rows
        ]


def _conditions(
    ctx: AppContext, user: Principal, filters: TicketFilters, departments: list[dict[str, Any]]
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if user.role is Role.department:
        conditions.append(Ticket.department_id == user.department_id)
    elif filters.department:
        by_code = {d["code"]: d["id"] for d in departments}
        conditions.append(Ticket.department_id == by_code.get(filters.department, -1))
    if filters.status:
        conditions.append(Ticket.status == filters.status)
    if filters.track:
        conditions.append(Ticket.track == filters.track)
    if filters.overdue:
        conditions.append(Ticket.overdue.is_(True))
    if filters.number:
        conditions.append(Ticket.number.like(f"{_escape(filters.number.strip())}%", escape="\\"))
    if filters.phone:
        number = numbers.normalize(filters.phone)
        owners = select(CustomerPhone.customer_id).where(CustomerPhone.number == number)
        conditions.append(or_(Ticket.contact == number, Ticket.customer_id.in_(owners)))
    if filters.text:
        pattern = f"%{_escape(filters.text.strip())}%"
        conditions.append(
            or_(
                Ticket.what.like(pattern, escape="\\"),
                Ticket.description.like(pattern, escape="\\"),
                Ticket.reporter.like(pattern, escape="\\"),
                Ticket.unit.like(pattern, escape="\\"),
            )
        )
    return conditions


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def ticket_list(
    ctx: AppContext, user: Principal, filters: TicketFilters, lang: str
) -> dict[str, Any]:
    """One page, newest first, by keyset (``id < before``): a page costs the same on the
    first and the last of 10,000 tickets (the primary key orders it)."""
    departments = _departments(ctx, lang)
    dept_names = {d["id"]: d["name"] for d in departments}
    conditions = _conditions(ctx, user, filters, departments)
    query = select(Ticket)
    if conditions:
        query = query.where(and_(*conditions))
    if filters.before is not None:
        query = query.where(Ticket.id < filters.before)
    categories = {c["code"]: c for c in ticket_services.categories(ctx)}
    with ctx.sessions() as session:
        rows = list(session.scalars(query.order_by(Ticket.id.desc()).limit(PAGE_SIZE + 1)))
        count_query = select(func.count(Ticket.id))
        if conditions:
            count_query = count_query.where(and_(*conditions))
        total = session.scalar(count_query) or 0
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    items = [
        {
            "number": t.number,
            "status": t.status,
            "status_name": _status_name(t.status, lang),
            "category": _category_name(categories, t.category, lang),
            "department": dept_names.get(t.department_id or 0, ""),
            "track": t.track,
            "unit": t.unit,
            "what": t.what,
            "contact": t.contact,
            "created": local_text(ctx, t.created_at),
            "due": local_text(ctx, t.due_at),
            "overdue": t.overdue,
        }
        for t in rows
    ]
    return {
        "items": items,
        "total": total,
        "next_before": rows[-1].id if more and rows else None,
        "departments": departments,
        "statuses": [{"code": s.value, "name": _name(STATUS_NAMES[s], lang)} for s in Status],
        "own_department": dept_names.get(user.department_id or 0)
        if user.role is Role.department
        else None,
    }


def _status_name(status: str, lang: str) -> str:
    try:
        return _name(STATUS_NAMES[Status(status)], lang)
    except ValueError:
        return status


def _category_name(categories: dict[str, dict[str, Any]], code: str, lang: str) -> str:
    category = categories.get(code)
    if category is None:
        return code
    return str(category["name_zh"] if lang == "zh-CN" else category["name_en"])


def ticket_id_by_number(ctx: AppContext, number: str) -> int:
    with ctx.sessions() as session:
        ticket_id = session.scalar(select(Ticket.id).where(Ticket.number == number))
    if ticket_id is None:
        raise NotFound(f"no ticket numbered {number!r} / 工单不存在", details={"number": number})
    return ticket_id


def transitions_for(user: Principal, detail: dict[str, Any]) -> list[str]:
    """The next steps this user may take (the service checks again on POST)."""
    if user.role is Role.qa:
        return []
    allowed = list(detail["allowed_next"])
    if user.role is Role.department:
        if user.department_id != detail["department_id"]:
            return []
        allowed = [s for s in allowed if Status(s) in DEPARTMENT_STEPS]
    return allowed


def ticket_page(ctx: AppContext, user: Principal, number: str, lang: str) -> dict[str, Any]:
    ticket_id = ticket_id_by_number(ctx, number)
    detail = ticket_services.ticket_detail(ctx, ticket_id, viewer=user)
    categories = {c["code"]: c for c in ticket_services.categories(ctx)}
    steps = transitions_for(user, detail)
    department_names = {d["id"]: d["name"] for d in _departments(ctx, lang)}
    agents = _agent_names(ctx)
    return {
        "agents": agents if user.role in (Role.lead, Role.admin) else [],
        "agent_names": {a["id"]: f"{a['extension']} {a['name']}" for a in agents},
        "department_name": department_names.get(detail["department_id"] or 0, ""),
        "ticket": detail,
        "status_name": _status_name(detail["status"], lang),
        "category_name": _category_name(categories, detail["category"], lang),
        "created": local_text(ctx, detail["created_at"]),
        "due": local_text(ctx, detail["due_at"]),
        "timeline": [
            {
                **event,
                "at_text": local_text(ctx, event["at"]),
                "to_name": _status_name(event["to_status"], lang) if event["to_status"] else "",
            }
            for event in detail["timeline"]
        ],
        "steps": [
            {
                "to": step,
                "name": _status_name(step, lang),
                "fields": list(REQUIRED_FIELDS.get(Status(step), ())),
            }
            for step in steps
        ],
    }


def _agent_names(ctx: AppContext) -> list[dict[str, Any]]:
    with ctx.sessions() as session:
        return [
            {"id": agent_id, "extension": extension, "name": name}
            for agent_id, extension, name in session.execute(
                select(Agent.id, Agent.extension, User.display_name)
                .join(User, User.id == Agent.user_id)
                .where(Agent.active.is_(True))
                .order_by(Agent.extension)
            )
        ]


def agent_state_name(state: str, lang: str) -> str:
    try:
        return _name(STATE_NAMES[AgentState(state)], lang)
    except ValueError:
        return state


# ---------------------------------------------------------------- /tickets/reports/overdue


def overdue_page(
    ctx: AppContext, user: Principal, window: overdue.Window, lang: str
) -> dict[str, Any]:
    """The overdue report for ``window`` (local dates): per period and department, then the
    tickets. Department staff see their own department only."""
    zone = ZoneInfo(ctx.settings.timezone)
    since, until = window.utc_bounds(zone)
    own = user.role is Role.department
    report = reports.overdue_report(
        ctx, since=since, until=until, department_id=user.department_id if own else None
    )
    departments = _departments(ctx, lang)
    if own:
        departments = [d for d in departments if d["id"] == user.department_id]
    codes = [d["code"] for d in departments]
    items = [i for i in report["items"] if i["department"] in codes]
    categories = {c["code"]: c for c in ticket_services.categories(ctx)}
    figures = overdue.by_period(items, window, codes, zone)
    # only the departments with overdue work get a column (13 departments do not fit)
    shown = [d for d in departments if figures["totals"][d["code"]]] or departments[:1]
    names = {d["code"]: d["name"] for d in departments}
    latest = items[::-1][:OVERDUE_LISTED]  # the latest first; the figures count them all
    return {
        "departments": shown,
        "figures": figures,
        "listed": len(latest),
        "items": [
            {
                **item,
                "department_name": names.get(item["department"], ""),
                "category_name": _category_name(categories, item["category"], lang),
                "status_name": _status_name(item["status"], lang),
                "due": local_text(ctx, item["due_at"]),
                "overdue_text": local_text(ctx, item["overdue_at"]),
            }
            for item in latest
        ],
        "own_department": departments[0]["name"]
        if user.role is Role.department and departments
        else None,
    }
