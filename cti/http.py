"""The desktop and lead API: agent sessions and states, the event socket, call control, lead
actions, customers. Thin routes over :mod:`cti.services` and :mod:`cti.customers`;
walkthrough in docs/cti.md."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, WebSocket
from starlette.concurrency import run_in_threadpool

from callcenter.auth import Principal, get_ctx, require
from callcenter.context import AppContext
from callcenter.errors import CallCenterError, Unauthorized
from callcenter.models import Role
from callcenter.params import RowId
from callcenter.streams import Command
from cti import customers, screenpop, services, sockets
from cti.schemas import (
    AgentStatePublic,
    ClickToCall,
    ClickToCallPublic,
    CommandPublic,
    ConsultRequest,
    CustomerCreate,
    ForceState,
    PhoneLink,
    QueuesUpdate,
    StateChange,
    SuperviseRequest,
    TransferRequest,
    WrapUpRequest,
)

router = APIRouter(tags=["cti"])

Ctx = Annotated[AppContext, Depends(get_ctx)]
AgentUser = Annotated[Principal, Depends(require(Role.agent, Role.lead))]
Lead = Annotated[Principal, Depends(require(Role.lead))]
Staff = Annotated[Principal, Depends(require(Role.agent, Role.lead, Role.qa))]


def _command(command: Command) -> CommandPublic:
    return CommandPublic(
        command_id=command.id, call_id=command.call_id, type=command.type, data=command.data
    )


# ---------------------------------------------------------------- the agent's own session


@router.post(
    "/agents/me/login",
    response_model=AgentStatePublic,
    summary="Log in to the agent's queues (state becomes not ready, reason login)",
)
def login(ctx: Ctx, principal: AgentUser) -> dict[str, Any]:
    return services.login(ctx, agent_id=services.my_agent_id(principal), actor=principal.username)


@router.post("/agents/me/logout", response_model=AgentStatePublic, summary="Log out")
def logout(ctx: Ctx, principal: AgentUser) -> dict[str, Any]:
    return services.logout(ctx, agent_id=services.my_agent_id(principal), actor=principal.username)


@router.get("/agents/me", response_model=AgentStatePublic, summary="The agent's current state")
def me(ctx: Ctx, principal: AgentUser) -> dict[str, Any]:
    return services.routing_for(ctx).agent(services.my_agent_id(principal))


@router.put(
    "/agents/me/state",
    response_model=AgentStatePublic,
    summary="Go ready, or not ready with a reason",
    description='`{"state": "ready"}` or `{"state": "not_ready", "reason": "break"}` '
    "(reasons: break, meal, training, meeting, after_call, other). From wrap-up, ready ends "
    "the wrap-up early. 409 when the current state does not allow it (e.g. during a call).",
)
def put_state(ctx: Ctx, principal: AgentUser, body: StateChange) -> dict[str, Any]:
    return services.set_state(
        ctx,
        agent_id=services.my_agent_id(principal),
        state=body.state,
        reason=body.reason,
        actor=principal.username,
    )


@router.websocket("/agents/me/events")
async def agent_events(websocket: WebSocket) -> None:
    """The desktop's event socket: JSON objects with ``type`` state / offer / answered /
    ended / missed / offer_cancelled / wrap_up / queues, and for transfers consult_started /
    consult_offer / consult_answered / consult_ended / transferred / command_failed (see
    docs/cti.md). Authenticate with ``Authorization: Bearer <token>`` (programs) or the
    page's sign-in cookie from this site's Origin (browsers); never a token in the URL."""
    ctx: AppContext = websocket.app.state.ctx
    try:
        principal = await sockets.authenticate(ctx, websocket)
        agent_id = services.my_agent_id(principal)
    except CallCenterError as exc:
        await websocket.close(code=4401 if isinstance(exc, Unauthorized) else 4403)
        return
    await websocket.accept()
    async with sockets.subscription(ctx.settings.redis_url) as (client, pubsub):
        # Subscribe first, then send the snapshot: nothing falls between the two.
        revoked = ctx.keys.user_revoked(principal.user_id)
        await pubsub.subscribe(ctx.keys.agent_channel(agent_id), revoked)
        snapshot = await run_in_threadpool(services.routing_for(ctx).agent, agent_id)
        await websocket.send_json({"type": "state", "snapshot": True, **snapshot})
        if snapshot["state"] == "reserved" and snapshot["call_id"]:
            pop = await client.get(ctx.keys.routing(f"call:{snapshot['call_id']}:pop"))
            if pop:
                await websocket.send_text(str(pop))
        await sockets.relay(websocket, pubsub, revoked=revoked)


@router.websocket("/leads/events")
async def lead_events(websocket: WebSocket) -> None:
    """The lead's live feed: ``{"type": "staffing", ...}`` (on connect, and whenever the staffing
    alert starts or ends) and every agent's ``{"type": "state", "agent_id", ...}``. Same
    authentication as the agent socket; leads and admins only (close code 4403 otherwise)."""
    ctx: AppContext = websocket.app.state.ctx
    try:
        principal = await sockets.authenticate(ctx, websocket)
    except CallCenterError as exc:
        await websocket.close(code=4401 if isinstance(exc, Unauthorized) else 4403)
        return
    if principal.role not in {Role.lead, Role.admin}:
        await websocket.close(code=4403)
        return
    await websocket.accept()
    async with sockets.subscription(ctx.settings.redis_url) as (_client, pubsub):
        revoked = ctx.keys.user_revoked(principal.user_id)
        await pubsub.subscribe(ctx.keys.routing("alerts"), revoked)
        await pubsub.psubscribe(ctx.keys.agent_channel(0).replace(":0:", ":*:"))
        report = await run_in_threadpool(services.staffing, ctx)
        await websocket.send_json({"type": "staffing", "snapshot": True, **report})
        await sockets.relay(websocket, pubsub, _lead_message, revoked=revoked)


def _lead_message(message: dict[str, Any]) -> str | None:
    """Alerts as they are; every agent's state change, with the agent's id from the channel."""
    if message.get("type") == "message":
        return str(message["data"])
    if message.get("type") == "pmessage":
        body = json.loads(str(message["data"]))
        if body.get("type") == "state":
            channel = str(message["channel"]).split(":")
            agent_id = int(channel[-2]) if channel[-2].isdigit() else None
            return json.dumps({**body, "agent_id": agent_id}, ensure_ascii=False)
    return None


# ---------------------------------------------------------------- desktop call control


@router.post(
    "/agents/me/call/hangup", response_model=CommandPublic, summary="Hang up the current call"
)
def call_hangup(ctx: Ctx, principal: AgentUser) -> CommandPublic:
    return _command(services.hangup(ctx, agent_id=services.my_agent_id(principal)))


@router.post("/agents/me/call/hold", response_model=CommandPublic, summary="Put the caller on hold")
def call_hold(ctx: Ctx, principal: AgentUser) -> CommandPublic:
    return _command(services.hold(ctx, agent_id=services.my_agent_id(principal), held=True))


@router.post("/agents/me/call/unhold", response_model=CommandPublic, summary="Take off hold")
def call_unhold(ctx: Ctx, principal: AgentUser) -> CommandPublic:
    return _command(services.hold(ctx, agent_id=services.my_agent_id(principal), held=False))


@router.post(
    "/agents/me/call/recording/pause",
    response_model=CommandPublic,
    summary="Pause the call's recording (PCI: the span is left out of the file and marked); "
    "409 without a live call or when already paused",
)
def call_recording_pause(ctx: Ctx, principal: AgentUser) -> CommandPublic:
    agent_id = services.my_agent_id(principal)
    return _command(services.recording_pause(ctx, agent_id=agent_id, pause=True))


@router.post(
    "/agents/me/call/recording/resume",
    response_model=CommandPublic,
    summary="Resume the call's paused recording; 409 without a live call or when not paused",
)
def call_recording_resume(ctx: Ctx, principal: AgentUser) -> CommandPublic:
    agent_id = services.my_agent_id(principal)
    return _command(services.recording_pause(ctx, agent_id=agent_id, pause=False))


@router.post(
    "/agents/me/call/transfer",
    response_model=CommandPublic,
    summary="Transfer the caller to a queue, an agent or a configured number",
)
def call_transfer(ctx: Ctx, principal: AgentUser, body: TransferRequest) -> CommandPublic:
    return _transfer(ctx, principal, body.kind, body.target, body.mode)


def _transfer(
    ctx: AppContext, principal: Principal, kind: str, target: str, mode: str
) -> CommandPublic:
    agent_id = services.my_agent_id(principal)
    return _command(services.transfer(ctx, agent_id=agent_id, kind=kind, target=target, mode=mode))


@router.post(
    "/agents/me/call/consult",
    response_model=CommandPublic,
    summary=(
        "Consult an agent or number with the caller on hold; then complete (an agent: also "
        "while their phone still rings) or cancel"
    ),
)
def call_consult(ctx: Ctx, principal: AgentUser, body: ConsultRequest) -> CommandPublic:
    mode = {"start": "consult", "complete": "complete", "cancel": "cancel"}[body.action]
    return _transfer(ctx, principal, body.kind, body.target, mode)


@router.post(
    "/agents/me/wrap-up",
    response_model=AgentStatePublic,
    summary="Wrap-up: set the disposition, extend, or end it (then ready or not ready)",
)
def wrap_up(ctx: Ctx, principal: AgentUser, body: WrapUpRequest) -> dict[str, Any]:
    return services.wrap_up(
        ctx,
        agent_id=services.my_agent_id(principal),
        action=body.action,
        disposition=body.disposition,
        seconds=body.seconds,
        then_state=body.then_state,
        reason=body.reason,
        actor=principal.username,
    )


@router.post(
    "/agents/me/click-to-call",
    response_model=ClickToCallPublic,
    status_code=202,
    summary="Call a customer: the agent's phone rings first, then the customer via the trunk",
)
def click_to_call(ctx: Ctx, principal: AgentUser, body: ClickToCall) -> dict[str, Any]:
    return services.click_to_call(
        ctx,
        agent_id=services.my_agent_id(principal),
        customer_id=body.customer_id,
        number=body.number,
        actor=principal.username,
    )


# ---------------------------------------------------------------- customers (screen pop record)


@router.get("/customers/lookup", summary="The screen-pop record for a phone number")
def customer_lookup(
    ctx: Ctx, _principal: Staff, number: Annotated[str, Query(min_length=1, max_length=64)]
) -> dict[str, Any]:
    with ctx.sessions() as session:
        return screenpop.lookup(session, number)


@router.post("/customers", status_code=201, summary="Create a customer (fill an unknown caller)")
def create_customer(ctx: Ctx, principal: AgentUser, body: CustomerCreate) -> dict[str, Any]:
    return customers.create_customer(ctx, data=body.model_dump(), actor=principal.username)


@router.get("/customers/{customer_id}", summary="A customer with units and phones")
def get_customer(ctx: Ctx, _principal: Staff, customer_id: RowId) -> dict[str, Any]:
    return customers.customer_view(ctx, customer_id)


@router.post(
    "/customers/{customer_id}/phones",
    summary="Link a phone number (e.g. an unknown caller's) to an existing customer",
)
def link_phone(
    ctx: Ctx, principal: AgentUser, customer_id: RowId, body: PhoneLink
) -> dict[str, Any]:
    return customers.link_phone(
        ctx, customer_id=customer_id, phone=body.phone, actor=principal.username
    )


# ---------------------------------------------------------------- shift leads


@router.get(
    "/agents", response_model=list[AgentStatePublic], summary="Agents and their states (leads)"
)
def list_agents(
    ctx: Ctx,
    _lead: Lead,
    state: Annotated[str | None, Query(description="only agents in this state")] = None,
) -> list[dict[str, Any]]:
    return services.list_agents(ctx, state=state)


@router.put(
    "/agents/{agent_id}/state",
    response_model=AgentStatePublic,
    summary="Force an agent's state (leads)",
)
def force_state(ctx: Ctx, lead: Lead, agent_id: RowId, body: ForceState) -> dict[str, Any]:
    return services.force_state(
        ctx, lead=lead, agent_id=agent_id, state=body.state, reason=body.reason
    )


@router.put(
    "/agents/{agent_id}/queues",
    response_model=AgentStatePublic,
    summary="Move an agent between queues live (leads)",
)
def move_agent(ctx: Ctx, lead: Lead, agent_id: RowId, body: QueuesUpdate) -> dict[str, Any]:
    return services.move_agent(ctx, lead=lead, agent_id=agent_id, queues=body.queues)


@router.post(
    "/calls/{call_id}/supervise",
    response_model=CommandPublic,
    summary="Listen to, whisper to the agent on, or barge into a live call (leads)",
)
def supervise(ctx: Ctx, lead: Lead, call_id: str, body: SuperviseRequest) -> CommandPublic:
    return _command(
        services.supervise(
            ctx, lead=lead, call_id=call_id, mode=body.mode, extension=body.extension
        )
    )


@router.get("/queues/status", summary="Per queue: waiting calls, longest wait, agents by state")
def queue_status(ctx: Ctx, _lead: Lead) -> dict[str, Any]:
    return {
        "queues": services.routing_for(ctx).queue_status(),
        "staffing": services.staffing(ctx),
    }


@router.get(
    "/shifts/staffing", summary="Agents online against the shift minimum, with the alert flag"
)
def staffing(ctx: Ctx, _lead: Lead) -> dict[str, Any]:
    return services.staffing(ctx)
