"""Ticket routes under /api/v1: registration, lifecycle steps, queues, callbacks, reports."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response

from callcenter.auth import Principal, current_user, get_ctx, require
from callcenter.context import AppContext
from callcenter.errors import Forbidden
from callcenter.models import Role
from callcenter.params import MAX_OFFSET, IsoDateTime, RowId
from ticketing import (
    assignment,
    attempts,
    dispatch,
    idempotency,
    queries,
    registration,
    reports,
    transitions,
)
from ticketing.errors import TICKET_NOT_AN_AGENT, TICKET_OTHER_DEPARTMENT
from ticketing.schemas import (
    CallbackAssign,
    CallbackAttemptCreate,
    CallbackPublic,
    CategoryPublic,
    TicketCreate,
    TicketDetail,
    TicketPage,
    TicketPublic,
    TransitionRequest,
)

router = APIRouter(tags=["tickets"])

FRONT_DESK = (Role.agent, Role.lead)
READERS = (Role.agent, Role.lead, Role.qa, Role.department)
# The context and the caller, checked for a role, as typed dependencies of every route.
Ctx = Annotated[AppContext, Depends(get_ctx)]
SignedIn = Annotated[Principal, Depends(current_user)]
FrontDesk = Annotated[Principal, Depends(require(*FRONT_DESK))]
Reader = Annotated[Principal, Depends(require(*READERS))]
Reporter = Annotated[Principal, Depends(require(Role.lead, Role.qa))]
CallbackReader = Annotated[Principal, Depends(require(*FRONT_DESK, Role.qa))]
Assigner = Annotated[Principal, Depends(require(Role.lead))]


_REPLAYED = {
    idempotency.REPLAYED_HEADER: {
        "description": "with an Idempotency-Key: true when the answer is the ticket an earlier "
        "request with that key registered (nothing written now), else false",
        "schema": {"type": "string", "enum": ["true", "false"]},
    }
}


@router.post(
    "/tickets",
    status_code=201,
    response_model=TicketPublic,
    summary="Register a report (screen pop with call_id, API, or walk_in at the front desk)",
    responses={201: {"description": "the ticket registered (or replayed)", "headers": _REPLAYED}},
)
def create_ticket(
    ctx: Ctx,
    user: FrontDesk,
    body: TicketCreate,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=idempotency.HEADER,
            description="a key per ticket the client means to register (8-128 characters "
            "from A-Z a-z 0-9 - _ . : + / =, e.g. a UUID): a retry with the same key and "
            "body within 24 h answers the ticket already registered",
        ),
    ] = None,
) -> dict[str, Any]:
    key = idempotency.parse_key(idempotency_key)
    if key is None:
        ticket = registration.create_ticket(ctx, body, actor=user)
        return queries.ticket_summary(ctx, ticket)  # as written: not read back
    once = idempotency.IdempotencyKey(user.user_id, key, idempotency.fingerprint(body))
    registered = registration.register(ctx, body, actor=user, idempotency=once)
    response.headers[idempotency.REPLAYED_HEADER] = "true" if registered.replayed else "false"
    return queries.ticket_summary(ctx, registered.ticket)


@router.get("/tickets", response_model=TicketPage, summary="Tickets, newest first, filtered")
def list_tickets(
    ctx: Ctx,
    user: Reader,
    status: str | None = None,
    department: str | None = Query(default=None, description="department id or code"),
    overdue: bool | None = None,
    customer_number: str | None = Query(default=None, description="caller or customer number"),
    created_from: IsoDateTime | None = Query(default=None, alias="from"),
    created_to: IsoDateTime | None = Query(default=None, alias="to"),
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    if user.role is Role.department:
        # Department staff see their own department's queue only.
        if department is not None and department not in {str(user.department_id)}:
            with ctx.sessions() as session:
                if dispatch.resolve_department(session, department).id != user.department_id:
                    raise Forbidden(
                        "department staff see only their own department / 只能查看本部门工单",
                        error_id=TICKET_OTHER_DEPARTMENT,
                    )
        department = str(user.department_id)
    return queries.list_tickets(
        ctx,
        status=status,
        department=department,
        overdue=overdue,
        customer_number=customer_number,
        created_from=created_from,
        created_to=created_to,
        limit=limit,
        offset=offset,
    )


@router.get("/tickets/reports/overdue", summary="Overdue work (未按时完成记录), by period")
def overdue_report(
    ctx: Ctx,
    _user: Reporter,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
) -> dict[str, Any]:
    return reports.overdue_report(ctx, since=since, until=until)


@router.get(
    "/tickets/{ticket_id}", response_model=TicketDetail, summary="A ticket with its timeline"
)
def get_ticket(
    ctx: Ctx,
    user: Reader,
    ticket_id: RowId,
) -> dict[str, Any]:
    return queries.ticket_detail(ctx, ticket_id, viewer=user)


@router.post(
    "/tickets/{ticket_id}/transitions",
    response_model=TicketDetail,
    summary="One lifecycle step: 409 with the allowed next states, 422 naming a missing field",
)
def transition(
    ctx: Ctx,
    user: SignedIn,
    ticket_id: RowId,
    body: TransitionRequest,
) -> dict[str, Any]:
    return transitions.transition_detail(
        ctx, ticket_id, body.model_dump(exclude_none=True), actor=user
    )


@router.get("/ticket-categories", response_model=list[CategoryPublic], summary="Dispatch table")
def ticket_categories(ctx: Ctx, _user: SignedIn) -> list[dict[str, Any]]:
    return dispatch.categories(ctx)


@router.get(
    "/departments/{department}/tickets",
    response_model=TicketPage,
    summary="A department's ticket queue (department staff: their own department only)",
)
def department_tickets(
    ctx: Ctx,
    user: Reader,
    department: str,
    status: str | None = None,
    overdue: bool | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    with ctx.sessions() as session:
        dept = dispatch.resolve_department(session, department)
    if user.role is Role.department and user.department_id != dept.id:
        raise Forbidden(
            "department staff see only their own department / 只能查看本部门工单",
            details={"department_id": dept.id},
            error_id=TICKET_OTHER_DEPARTMENT,
        )
    return queries.list_tickets(
        ctx, status=status, department=str(dept.id), overdue=overdue, limit=limit, offset=offset
    )


@router.get(
    "/callbacks",
    response_model=list[CallbackPublic],
    summary="Callbacks (回访) by status; assigned_to=me (the caller's), none, or an agent id",
)
def list_callbacks(
    ctx: Ctx,
    user: CallbackReader,
    status: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    assigned_to: str | None = Query(
        default=None, pattern=r"^(me|none|[1-9][0-9]{0,9})$", description="me, none or an agent id"
    ),
) -> list[dict[str, Any]]:
    agent: int | None = None
    if assigned_to == "me":
        if user.agent_id is None:
            raise Forbidden(
                "this account is not an agent / 此账号不是坐席", error_id=TICKET_NOT_AN_AGENT
            )
        agent = user.agent_id
    elif assigned_to and assigned_to != "none":
        agent = int(assigned_to)
    return queries.list_callbacks(
        ctx, status=status, limit=limit, assigned_to=agent, unassigned=assigned_to == "none"
    )


@router.put(
    "/callbacks/{callback_id}/assignee",
    response_model=CallbackPublic,
    summary="Give an open callback to one agent (agent_id null: back to the callback queue)",
)
def assign_callback(
    ctx: Ctx,
    user: Assigner,
    callback_id: RowId,
    body: CallbackAssign,
) -> dict[str, Any]:
    cb = assignment.assign_callback(ctx, callback_id, body.agent_id, actor=user)
    detail = queries.ticket_detail(ctx, cb.ticket_id)
    return next(c for c in detail["callbacks"] if c["id"] == cb.id)


@router.get("/callbacks/report", summary="回访总结报告: callback summary for a period")
def callback_report(
    ctx: Ctx,
    _user: Reporter,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
) -> dict[str, Any]:
    return reports.callback_report(ctx, since=since, until=until)


@router.post(
    "/callbacks/{callback_id}/attempts",
    response_model=CallbackPublic,
    summary="Record a callback attempt: answered with a result, or not answered (retried)",
)
def record_attempt(
    ctx: Ctx,
    user: FrontDesk,
    callback_id: RowId,
    body: CallbackAttemptCreate,
) -> dict[str, Any]:
    cb = attempts.record_attempt(ctx, callback_id, actor=user, **body.model_dump())
    detail = queries.ticket_detail(ctx, cb.ticket_id)
    return next(c for c in detail["callbacks"] if c["id"] == cb.id)
