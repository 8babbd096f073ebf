"""CTI domain logic the API and the router share: agent sessions, desktop call control, lead
actions (customers are in ``cti/customers.py``). Keyword-only functions taking the context;
routing decisions go through :class:`cti.routing.Routing` (atomic in Redis), durable facts
through SQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from callcenter.audit import record as record_audit
from callcenter.auth import Principal
from callcenter.context import AppContext
from callcenter.db import transaction
from callcenter.errors import Conflict, Forbidden, InvalidInput, NotFound, NumberNotAllowed
from callcenter.params import row_id_in
from callcenter.service_keys import Service
from callcenter.streams import Command, CommandType
from config.loader import CenterConfig
from cti import numbers, reference_data, screenpop, shifts
from cti.errors import (
    AGENT_BAD_EXTENSION,
    AGENT_BAD_SKILL_LEVEL,
    AGENT_BAD_WRAP_UP,
    AGENT_DISABLED,
    AGENT_NOT_AN_AGENT,
    AGENT_NOT_FOUND,
    AGENT_UNKNOWN_STATE,
    CALL_ALREADY_HELD,
    CALL_BAD_MONITOR_MODE,
    CALL_BAD_TRANSFER,
    CALL_CONSULT_CONTROLLED,
    CALL_NO_TRUNK,
    CALL_NONE,
    CALL_NOT_HELD,
    CALL_NOT_LIVE,
    CALL_NUMBER_NOT_CALLABLE,
    CALL_RECORDING_NOT_PAUSED,
    CALL_RECORDING_PAUSED,
    CUSTOMER_NOT_FOUND,
    QUEUE_NOT_FOUND,
)
from cti.models import Agent, AgentQueue, Customer
from cti.routing import Offer, Routing, check_queues

ROUTING: Service[Routing] = Service("routing")  # this process's Routing handle


def routing_for(ctx: AppContext) -> Routing:
    """This process's Routing handle (made once per context)."""
    routing = ctx.services.get(ROUTING)
    if routing is None:
        routing = use_routing(
            ctx,
            Routing(
                ctx.redis,
                ctx.keys,
                ctx.config,
                timezone=ctx.settings.timezone,
                language=ctx.settings.language,
            ),
        )
    return routing


def use_routing(ctx: AppContext, routing: Routing) -> Routing:
    """Make ``routing`` this process's handle; it follows every configuration the process
    takes from then on (callcenter.config_watch)."""

    def follow(config: CenterConfig) -> None:
        routing.config = config

    ctx.services.set(ROUTING, routing)
    ctx.config_listeners.append(follow)
    return routing


def deliver(ctx: AppContext, result: dict[str, Any]) -> list[Offer]:
    """Send the screen pop of every offer a routing decision made."""
    offers = Routing.offers(result)
    if offers:
        screenpop.deliver(ctx, routing_for(ctx), offers)
    return offers


def agent_uri(ctx: AppContext, extension: str) -> str:
    """The agent's softphone as the engine dials it: the extension at the SIP edge, whose
    registrar knows where the phone is (slots place calls without an outbound proxy)."""
    sip = ctx.settings.sip
    return f"sip:{extension}@{sip.edge_host}:{sip.edge_port}"


def my_agent_id(principal: Principal) -> int:
    if principal.agent_id is None:
        raise Forbidden(
            "此账号不是坐席 / this account is not an agent",
            details={"user": principal.username},
            error_id=AGENT_NOT_AN_AGENT,
        )
    return principal.agent_id


def _agent(ctx: AppContext, agent_id: int) -> Agent:
    with ctx.sessions() as session:
        agent = session.scalar(
            select(Agent).where(Agent.id == agent_id).options(selectinload(Agent.memberships))
        )
    if agent is None:
        raise NotFound(
            f"坐席不存在 / agent {agent_id} not found",
            details={"agent_id": agent_id},
            error_id=AGENT_NOT_FOUND,
        )
    return agent


def _audit(ctx: AppContext, actor: str, action: str, object_id: str, **details: Any) -> None:
    with transaction(ctx.sessions) as session:
        record_audit(
            session,
            actor=actor,
            action=action,
            object_type="agent" if action.startswith("agent") else "call",
            object_id=object_id,
            details=details,
        )


# ---------------------------------------------------------------- agent sessions


def login(ctx: AppContext, *, agent_id: int, actor: str) -> dict[str, Any]:
    """Join the agent's queues (not ready, reason login). Logging in again while logged in
    (a desktop reloading) changes nothing and returns the current state."""
    current = routing_for(ctx).agent(agent_id)
    if current["state"] != "logged_out":
        return current
    agent = _agent(ctx, agent_id)
    if not agent.active:
        raise Forbidden(f"坐席已停用 / agent {agent_id} is disabled", error_id=AGENT_DISABLED)
    queues = {m.queue_code: m.skill_level for m in agent.memberships}
    routing_for(ctx).login(
        agent_id,
        extension=agent.extension,
        uri=agent_uri(ctx, agent.extension),
        queues=queues,
        shift=agent.shift_code,
        shift_window=shifts.shift_window(ctx.config.shifts, agent.shift_code),
        actor=actor,
    )
    return routing_for(ctx).agent(agent_id)


def logout(ctx: AppContext, *, agent_id: int, actor: str, reason: str = "") -> dict[str, Any]:
    routing_for(ctx).logout(agent_id, reason=reason or "logout", actor=actor)
    return routing_for(ctx).agent(agent_id)


def set_state(
    ctx: AppContext, *, agent_id: int, state: str, reason: str | None, actor: str
) -> dict[str, Any]:
    """Ready / not ready / logged out, as the agent (or a lead forcing it) asks."""
    routing = routing_for(ctx)
    current = routing.agent(agent_id)["state"]
    if state == "logged_out":
        routing.logout(agent_id, reason=reason or "logout", actor=actor)
    elif state == "ready":
        if current == "logged_out":
            login(ctx, agent_id=agent_id, actor=actor)
        name = "end_wrap_up" if routing.agent(agent_id)["state"] == "wrap_up" else "ready"
        deliver(ctx, routing.transition(agent_id, name, actor=actor))
    elif state == "not_ready":
        checked = _reason(reason)
        if current == "logged_out":
            login(ctx, agent_id=agent_id, actor=actor)
        routing.transition(agent_id, "not_ready", reason=checked, actor=actor)
    else:
        raise InvalidInput(
            f"state must be ready, not_ready or logged_out, not {state!r}",
            details={"state": state},
            error_id=AGENT_UNKNOWN_STATE,
        )
    return routing.agent(agent_id)


def _reason(reason: str | None) -> str:
    from cti.state import reason_for

    return reason_for("not_ready", reason)


def force_state(
    ctx: AppContext, *, lead: Principal, agent_id: int, state: str, reason: str | None
) -> dict[str, Any]:
    _agent(ctx, agent_id)
    result = set_state(
        ctx, agent_id=agent_id, state=state, reason=reason or "forced", actor=lead.username
    )
    _audit(ctx, lead.username, "agent.force_state", str(agent_id), state=state, reason=reason)
    return result


def move_agent(
    ctx: AppContext, *, lead: Principal, agent_id: int, queues: dict[str, int]
) -> dict[str, Any]:
    """Change an agent's queues and skill levels, in SQL and live in routing."""
    check_queues(ctx.config, queues)
    bad = {q: level for q, level in queues.items() if not 1 <= level <= 10}
    if bad:
        raise InvalidInput(
            "skill levels are 1 to 10", details={"levels": bad}, error_id=AGENT_BAD_SKILL_LEVEL
        )
    _agent(ctx, agent_id)
    with transaction(ctx.sessions) as session:
        reference_data.mirror(session, ctx.config)  # the queue rows the skills refer to
        before: dict[str, int] = {}
        for row in session.scalars(select(AgentQueue).where(AgentQueue.agent_id == agent_id)):
            before[row.queue_code] = row.skill_level
            session.delete(row)
        session.flush()
        for code, level in queues.items():
            session.add(AgentQueue(agent_id=agent_id, queue_code=code, skill_level=level))
    deliver(ctx, routing_for(ctx).set_queues(agent_id, queues, actor=lead.username))
    _audit(
        ctx, lead.username, "agent.move_queues", str(agent_id),
        queues=queues, before=dict(sorted(before.items())), after=dict(sorted(queues.items())),
    )  # fmt: skip
    return routing_for(ctx).agent(agent_id)


def list_agents(ctx: AppContext, *, state: str | None = None) -> list[dict[str, Any]]:
    routing = routing_for(ctx)
    with ctx.sessions() as session:
        agents = session.scalars(select(Agent).order_by(Agent.extension)).all()
    rows = []
    for agent in agents:
        snapshot = routing.agent(agent.id)
        snapshot["extension"] = agent.extension
        snapshot["shift"] = agent.shift_code
        if state is None or snapshot["state"] == state:
            rows.append(snapshot)
    return rows


def staffing(ctx: AppContext) -> dict[str, Any]:
    routing = routing_for(ctx)
    states = routing.agent_states(routing.logged_in_agents())
    agents = list(states)
    available = sum(1 for state in states.values() if state != "not_ready")
    ready = sum(1 for state in states.values() if state == "ready")
    local = routing.local_now()
    in_force = shifts.shifts_in_force(ctx.config.shifts, local)
    with ctx.sessions() as session:
        # agents without a shift are on whenever they sign in: not counted as scheduled
        scheduled = session.scalar(
            select(func.count(Agent.id)).where(
                Agent.active.is_(True), Agent.shift_code.in_(in_force)
            )
        )
    return shifts.staffing(
        ctx.config.shifts,
        local,
        logged_in=len(agents),
        available=available,
        ready=ready,
        scheduled=int(scheduled or 0),
    ).as_dict()


# ---------------------------------------------------------------- call control


def _slot(ctx: AppContext, call_id: str) -> str:
    slot = cast(str | None, ctx.redis.get(ctx.keys.call_slot(call_id)))
    slot = slot or routing_for(ctx).call(call_id).get("slot")
    if not slot:
        raise Conflict(
            f"通话不在进行中 / call {call_id} is not live on any slot",
            details={"call_id": call_id},
            error_id=CALL_NOT_LIVE,
        )
    return slot


def send_command(
    ctx: AppContext, call_id: str, kind: CommandType, data: dict[str, Any] | None = None
) -> Command:
    command = Command(kind, call_id, f"api-{uuid.uuid4().hex[:16]}", data or {})
    ctx.redis.xadd(ctx.keys.slot_commands(_slot(ctx, call_id)), command.to_fields())  # type: ignore[arg-type]
    return command


def _my_live_call(ctx: AppContext, agent_id: int) -> tuple[str, str]:
    snapshot = routing_for(ctx).agent(agent_id)
    if snapshot["state"] not in {"on_call", "on_hold"} or not snapshot["call_id"]:
        raise Conflict(
            f"当前没有通话 / no call in progress (state {snapshot['state']})",
            details={"state": snapshot["state"]},
            error_id=CALL_NONE,
        )
    return str(snapshot["call_id"]), str(snapshot["state"])


def _consult_target(ctx: AppContext, call_id: str, agent_id: int) -> bool:
    """The agent is on this call as a consultation target (not yet handed the caller)."""
    return routing_for(ctx).call(call_id).get("transfer_to") == str(agent_id)


def _my_controlled_call(ctx: AppContext, agent_id: int) -> tuple[str, str]:
    """The agent's live call, which they control: a consultation target does not (the
    consulting agent holds, transfers, completes or cancels)."""
    call_id, state = _my_live_call(ctx, agent_id)
    if _consult_target(ctx, call_id, agent_id):
        raise Conflict(
            "咨询中，由发起咨询的坐席操作 / during a consultation the consulting agent controls "
            "the call (you may hang up your part)",
            details={"call_id": call_id},
            error_id=CALL_CONSULT_CONTROLLED,
        )
    return call_id, state


def hangup(ctx: AppContext, *, agent_id: int) -> Command:
    """Hang up the call; for a consultation target, only their part of it (the engine sees
    the target's agent_id and ends the consultation, not the call)."""
    call_id, _ = _my_live_call(ctx, agent_id)
    return send_command(ctx, call_id, CommandType.hangup, {"by": "agent", "agent_id": agent_id})


def hold(ctx: AppContext, *, agent_id: int, held: bool) -> Command:
    call_id, state = _my_controlled_call(ctx, agent_id)
    if held and state == "on_hold":
        raise Conflict("通话已保持 / the call is already on hold", error_id=CALL_ALREADY_HELD)
    if not held and state != "on_hold":
        raise Conflict("通话未保持 / the call is not on hold", error_id=CALL_NOT_HELD)
    return send_command(ctx, call_id, CommandType.hold if held else CommandType.unhold)


# how long the API remembers a call's pause (longer than any call: the mark is per call)
RECORDING_PAUSE_MARK_SECONDS = 24 * 3600


def recording_pause(ctx: AppContext, *, agent_id: int, pause: bool) -> Command:
    """PCI pause/resume of the call's recording (card numbers are not recorded): the slot
    disconnects its recorder, so the span is absent from the file and marked on the recording
    (``recording_paused`` / ``recording_resumed``). The pause is remembered per call in Redis
    (set once, atomically), so a second pause or a resume without one is refused here."""
    call_id, _ = _my_controlled_call(ctx, agent_id)
    _slot(ctx, call_id)  # a call no slot has: refused before anything is marked
    key = ctx.keys.routing(f"call:{call_id}:recording_paused")
    if pause and not ctx.redis.set(key, str(agent_id), nx=True, ex=RECORDING_PAUSE_MARK_SECONDS):
        raise Conflict(
            "录音已暂停 / the recording is already paused",
            details={"call_id": call_id},
            error_id=CALL_RECORDING_PAUSED,
        )
    if not pause and not ctx.redis.delete(key):
        raise Conflict(
            "录音未暂停 / the recording is not paused",
            details={"call_id": call_id},
            error_id=CALL_RECORDING_NOT_PAUSED,
        )
    kind = CommandType.pause_recording if pause else CommandType.resume_recording
    return send_command(ctx, call_id, kind, {"agent_id": agent_id})


def _agent_by_ref(ctx: AppContext, target: str) -> Agent:
    with ctx.sessions() as session:
        agent = session.scalar(select(Agent).where(Agent.extension == target))
        row_id = row_id_in(target)
        if agent is None and row_id is not None:
            agent = session.get(Agent, row_id)
    if agent is None:
        raise NotFound(
            f"坐席不存在 / no agent {target!r}",
            details={"target": target},
            error_id=AGENT_NOT_FOUND,
        )
    return agent


def _queue_target(
    ctx: AppContext, data: dict[str, Any], *, call_id: str, agent_id: int, target: str, mode: str
) -> None:
    if target not in ctx.config.queues.queues:
        raise InvalidInput(
            f"队列不存在 / unknown queue {target!r}",
            details={"target": target},
            error_id=QUEUE_NOT_FOUND,
        )
    if mode == "consult":
        raise InvalidInput(
            "consult is with an agent or a number, not a queue", error_id=CALL_BAD_TRANSFER
        )


def _agent_target(
    ctx: AppContext, data: dict[str, Any], *, call_id: str, agent_id: int, target: str, mode: str
) -> None:
    other = _agent_by_ref(ctx, target)
    if other.id == agent_id:
        raise InvalidInput("不能转给自己 / cannot transfer to yourself", error_id=CALL_BAD_TRANSFER)
    if mode in {"blind", "consult"}:
        reserved = routing_for(ctx).reserve_transfer_target(
            call_id, other.id, actor=f"agent:{agent_id}"
        )
        data.update(agent_id=other.id, target=reserved["agent_uri"])
        data["ring_timeout"] = reserved["ring_timeout"]
    else:
        data.update(target=agent_uri(ctx, other.extension), target_agent_id=other.id)


def _number_target(
    ctx: AppContext, data: dict[str, Any], *, call_id: str, agent_id: int, target: str, mode: str
) -> None:
    # Only configured transfer targets: nothing else may reach an outside number.
    targets = ctx.config.telephony.transfer_targets
    if target not in targets:
        raise InvalidInput(
            f"只能转接到已配置的号码 / {target!r} is not a configured transfer target",
            details={"allowed": sorted(targets)},
            error_id=CALL_BAD_TRANSFER,
        )
    configured = targets[target]
    data.update(number=configured.number, trunk=configured.trunk)


# kind -> what checks the target and adds it to the command's data
TRANSFER_TARGETS: dict[str, Callable[..., None]] = {
    "queue": _queue_target,
    "agent": _agent_target,
    "number": _number_target,
}
TRANSFER_MODES = ("blind", "consult", "complete", "cancel")


def transfer(
    ctx: AppContext, *, agent_id: int, kind: str, target: str, mode: str = "blind"
) -> Command:
    """Transfer (mode blind) or consult (mode consult: the caller waits on hold while the agent
    talks to the target; a second call with mode "complete" hands the caller over, "cancel"
    brings the agent back to the caller)."""
    call_id, _ = _my_controlled_call(ctx, agent_id)
    data: dict[str, Any] = {"kind": kind, "target": target, "mode": mode, "agent_id": agent_id}
    add_target = TRANSFER_TARGETS.get(kind)
    if add_target is None:
        raise InvalidInput(
            f"kind must be queue, agent or number, not {kind!r}", error_id=CALL_BAD_TRANSFER
        )
    add_target(ctx, data, call_id=call_id, agent_id=agent_id, target=target, mode=mode)
    if mode not in TRANSFER_MODES:
        raise InvalidInput(
            f"mode must be blind, consult, complete or cancel, not {mode!r}",
            error_id=CALL_BAD_TRANSFER,
        )
    command = send_command(ctx, call_id, CommandType.transfer, data)
    if kind == "number" and mode == "blind":
        routing_for(ctx).transfer_to_number(call_id, actor=f"agent:{agent_id}")
    return command


def wrap_up(
    ctx: AppContext,
    *,
    agent_id: int,
    action: str,
    disposition: str | None,
    seconds: int | None,
    then_state: str,
    reason: str | None,
    actor: str,
) -> dict[str, Any]:
    routing = routing_for(ctx)
    if disposition is not None and not disposition.strip():
        raise InvalidInput("disposition must not be blank", error_id=AGENT_BAD_WRAP_UP)
    if action == "extend":
        if not seconds or not 1 <= seconds <= 1800:
            raise InvalidInput(
                "extend needs seconds between 1 and 1800", error_id=AGENT_BAD_WRAP_UP
            )
        routing.wrap_extend(agent_id, seconds, disposition=disposition)
    elif action == "end":
        checked = _reason(reason or "after_call") if then_state == "not_ready" else ""
        if then_state not in {"ready", "not_ready"}:
            raise InvalidInput("then_state must be ready or not_ready", error_id=AGENT_BAD_WRAP_UP)
        snapshot = routing.agent(agent_id)
        call_id = str(snapshot["call_id"] or "")
        deliver(
            ctx,
            routing.wrap_end(
                agent_id,
                call_id=call_id,
                disposition=disposition,
                then_state=then_state,
                reason=checked,
                actor=actor,
                strict=True,
            ),
        )
        if disposition and call_id:
            _store_disposition(ctx, call_id, disposition)
    elif action == "disposition":
        if not disposition:
            raise InvalidInput("disposition is required", error_id=AGENT_BAD_WRAP_UP)
        routing.set_disposition(agent_id, disposition)
    else:
        raise InvalidInput(
            f"action must be end, extend or disposition, not {action!r}", error_id=AGENT_BAD_WRAP_UP
        )
    return routing.agent(agent_id)


def _store_disposition(ctx: AppContext, call_id: str, disposition: str) -> None:
    from cti.models import Call

    with transaction(ctx.sessions) as session:
        call = session.get(Call, call_id)
        if call is not None:
            call.disposition = disposition


def click_to_call(
    ctx: AppContext, *, agent_id: int, customer_id: int | None, number: str | None, actor: str
) -> dict[str, Any]:
    """Ring the agent's phone first, then the customer through the configured outbound trunk."""
    trunk = ctx.config.telephony.outbound_trunk
    if not trunk:
        raise Conflict(
            "未配置外呼中继 / no outbound trunk is configured (telephony.toml outbound_trunk)",
            error_id=CALL_NO_TRUNK,
        )
    with ctx.sessions() as session:
        if customer_id is not None:
            customer = session.scalar(
                select(Customer)
                .where(Customer.id == customer_id)
                .options(selectinload(Customer.phones))
            )
            if customer is None:
                raise NotFound(
                    f"客户不存在 / customer {customer_id} not found", error_id=CUSTOMER_NOT_FOUND
                )
            phones = [p.number for p in customer.phones]
            chosen = numbers.normalize(number) if number else (phones[0] if phones else "")
            if chosen not in phones:
                raise InvalidInput(
                    "该号码不属于此客户 / the number is not one of this customer's numbers",
                    details={"number": number, "customer_numbers": phones},
                    error_id=CALL_NUMBER_NOT_CALLABLE,
                )
        else:
            chosen = numbers.normalize(number or "")
            customer = screenpop.find_customer(session, chosen)
            if customer is None:
                raise InvalidInput(
                    "只能呼叫客户档案中的号码 / click-to-call reaches customers' numbers only",
                    details={"number": number},
                    error_id=CALL_NUMBER_NOT_CALLABLE,
                )
            customer_id = customer.id
    refusal = ctx.config.telephony.dial_plan.plan().refusal(chosen)
    if refusal:
        raise NumberNotAllowed(refusal, details={"number": chosen})
    call_id = f"out-{uuid.uuid4().hex[:20]}"
    routing_for(ctx).originate(
        agent_id, call_id, number=chosen, trunk=trunk, customer_id=customer_id, actor=actor
    )
    return {"call_id": call_id, "number": chosen, "customer_id": customer_id, "trunk": trunk}


def _is_agent_extension(ctx: AppContext, extension: str) -> bool:
    with ctx.sessions() as session:
        return session.scalar(select(Agent.id).where(Agent.extension == extension)) is not None


def supervise(
    ctx: AppContext, *, lead: Principal, call_id: str, mode: str, extension: str | None
) -> Command:
    if mode not in {"listen", "whisper", "barge"}:
        raise InvalidInput(
            f"mode must be listen, whisper or barge, not {mode!r}", error_id=CALL_BAD_MONITOR_MODE
        )
    if not extension:
        if lead.agent_id is None:
            raise InvalidInput(
                "extension is required: the phone the lead listens on", error_id=AGENT_BAD_EXTENSION
            )
        extension = _agent(ctx, lead.agent_id).extension
    elif not _is_agent_extension(ctx, extension):
        # Anything else would reach the edge as a number and could leave through the trunk.
        raise InvalidInput(
            f"分机不属于任何坐席 / extension {extension!r} is not an agent's extension",
            details={"extension": extension},
            error_id=AGENT_BAD_EXTENSION,
        )
    command = send_command(
        ctx,
        call_id,
        CommandType(mode),
        {"supervisor_uri": agent_uri(ctx, extension), "by": lead.username},
    )
    _audit(ctx, lead.username, f"call.{mode}", call_id, extension=extension)
    return command
