"""The agent state machine: one table of named transitions, used by Python and by the Lua scripts.

The routing state lives in Redis and is changed only inside Lua scripts (so that an offer, a
missed call and a lead's forced change can never interleave). The scripts do not carry their
own copy of the rules: :func:`lua_rules` renders :data:`TRANSITIONS` into the script source
when it is loaded, so this module is the single definition of what may follow what.

    logged_out --login--> not_ready --ready--> ready --reserve--> reserved --answer--> on_call
    on_call <--hold/unhold--> on_hold;  on_call/on_hold --end_call--> wrap_up
    wrap_up --end_wrap_up--> ready;  reserved --miss--> not_ready(missed)
    reserved --cancel_offer--> ready (the caller hung up while the agent's phone rang)
    on_call/on_hold --end_consult--> ready (a consultation target's part ended, no hand-over)
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from callcenter.errors import Conflict, InvalidInput
from cti.errors import (
    AGENT_ILLEGAL_TRANSITION,
    AGENT_REASON_REQUIRED,
    AGENT_UNKNOWN_REASON,
    AGENT_UNKNOWN_TRANSITION,
)


class AgentState(enum.StrEnum):
    logged_out = "logged_out"
    ready = "ready"
    not_ready = "not_ready"
    reserved = "reserved"  # an offer is ringing the agent's phone
    on_call = "on_call"
    on_hold = "on_hold"
    wrap_up = "wrap_up"  # after-call work, timed per queue


class NotReadyReason(enum.StrEnum):
    login = "login"  # just logged in, not yet ready
    break_ = "break"
    meal = "meal"
    training = "training"
    meeting = "meeting"
    missed = "missed"  # did not answer an offer within the ring timeout
    after_call = "after_call"  # chose not ready at the end of wrap-up
    forced = "forced"  # set by a shift lead
    other = "other"


# Reasons an agent (or lead) may choose; "missed" and "login" are set by the system only.
CHOOSABLE_REASONS = frozenset(
    {
        NotReadyReason.break_,
        NotReadyReason.meal,
        NotReadyReason.training,
        NotReadyReason.meeting,
        NotReadyReason.after_call,
        NotReadyReason.forced,
        NotReadyReason.other,
    }
)

REASON_NAMES: dict[str, tuple[str, str]] = {
    "login": ("刚登录", "just logged in"),
    "break": ("小休", "break"),
    "meal": ("用餐", "meal"),
    "training": ("培训", "training"),
    "meeting": ("会议", "meeting"),
    "missed": ("未接来电", "missed call"),
    "after_call": ("话后处理", "after-call work"),
    "forced": ("班长设置", "set by lead"),
    "other": ("其他", "other"),
}

STATE_NAMES: dict[AgentState, tuple[str, str]] = {
    AgentState.logged_out: ("已登出", "logged out"),
    AgentState.ready: ("就绪", "ready"),
    AgentState.not_ready: ("未就绪", "not ready"),
    AgentState.reserved: ("振铃中", "ringing"),
    AgentState.on_call: ("通话中", "on call"),
    AgentState.on_hold: ("保持中", "on hold"),
    AgentState.wrap_up: ("话后处理", "wrap-up"),
}


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[AgentState]
    target: AgentState
    by_routing_only: bool = False  # decided by routing (offers, answers), never requested by API


S = AgentState


def _t(name: str, sources: set[AgentState], target: AgentState, *, system: bool = False) -> None:
    TRANSITIONS[name] = Transition(name, frozenset(sources), target, system)


TRANSITIONS: dict[str, Transition] = {}
_t("login", {S.logged_out}, S.not_ready)
_t("ready", {S.not_ready, S.wrap_up}, S.ready)
_t("not_ready", {S.ready, S.not_ready, S.wrap_up}, S.not_ready)
_t("logout", {S.ready, S.not_ready, S.wrap_up}, S.logged_out)
_t("reserve", {S.ready}, S.reserved, system=True)
_t("originate", {S.ready, S.not_ready, S.wrap_up}, S.reserved)  # click-to-call: agent leg rings
_t("answer", {S.reserved}, S.on_call, system=True)
# The engine reports an answer after routing's backstop timer had already given up on it.
_t("answer_late", {S.ready, S.not_ready}, S.on_call, system=True)
_t("miss", {S.reserved}, S.not_ready, system=True)
_t("cancel_offer", {S.reserved}, S.ready, system=True)
_t("hold", {S.on_call}, S.on_hold)
_t("unhold", {S.on_hold}, S.on_call)
_t("end_call", {S.on_call, S.on_hold}, S.wrap_up, system=True)
_t("end_wrap_up", {S.wrap_up}, S.ready)
# A consultation target's part ended without the caller being handed over (cancelled, they
# hung up, the caller left): no wrap-up, the call was never theirs.
_t("end_consult", {S.on_call, S.on_hold}, S.ready, system=True)
del _t

# Requests that keep the state but are allowed only in some states (routing.lua refuses them
# elsewhere with the same ``illegal`` answer as a transition).
IN_STATE_ACTIONS: dict[str, frozenset[AgentState]] = {
    "extend_wrap_up": frozenset({S.wrap_up}),
    "disposition": frozenset({S.on_call, S.on_hold, S.wrap_up}),
}


def check(name: str, current: AgentState | str) -> AgentState:
    """The state after ``name`` from ``current``; Conflict if that transition is not allowed."""
    transition = TRANSITIONS.get(name)
    if transition is None:
        raise InvalidInput(
            f"unknown agent transition {name!r}",
            details={"transition": name},
            error_id=AGENT_UNKNOWN_TRANSITION,
        )
    state = AgentState(current)
    if state not in transition.sources:
        raise illegal(name, state)
    return transition.target


def illegal(name: str, current: AgentState | str) -> Conflict:
    sources = TRANSITIONS[name].sources if name in TRANSITIONS else IN_STATE_ACTIONS[name]
    state = AgentState(current)
    zh, en = STATE_NAMES[state]
    allowed = sorted(str(s) for s in sources)
    return Conflict(
        f"当前状态“{zh}”不能执行“{name}” / cannot {name.replace('_', ' ')} while {en} "
        f"(allowed from: {', '.join(allowed)})",
        details={"transition": name, "state": str(state), "allowed_from": allowed},
        error_id=AGENT_ILLEGAL_TRANSITION,
    )


def reason_for(transition: str, reason: str | None) -> str:
    """Validate the not-ready reason an agent or lead asks for; other transitions carry none."""
    if transition != "not_ready":
        return ""
    if reason is None or reason == "":
        raise InvalidInput(
            "not ready needs a reason / 未就绪需要原因",
            details={"allowed": sorted(str(r) for r in CHOOSABLE_REASONS)},
            error_id=AGENT_REASON_REQUIRED,
        )
    if reason not in {str(r) for r in CHOOSABLE_REASONS}:
        raise InvalidInput(
            f"unknown not-ready reason {reason!r} / 未知的未就绪原因",
            details={"reason": reason, "allowed": sorted(str(r) for r in CHOOSABLE_REASONS)},
            error_id=AGENT_UNKNOWN_REASON,
        )
    return reason


def lua_rules() -> str:
    """The transition table as one Lua string literal (embedded into the routing script):
    ``;<transition>:<from>><to>`` for every allowed pair, ending with ``;``. A constant string
    costs nothing per script call, where a table would be built anew on every call."""
    pairs = sorted(
        f"{name}:{source}>{t.target}" for name, t in TRANSITIONS.items() for source in t.sources
    )
    return json.dumps(";" + ";".join(pairs) + ";")
