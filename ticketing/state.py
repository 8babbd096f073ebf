"""The ticket lifecycle (投诉报修流程) as one explicit state machine.

registered → dispatched → assigned → on_site → resolved → returned_to_supervisor →
returned_to_front_desk → callback → archived.

Choices the seed decides:
- Urgent and emergency tickets are handled by the supervisor or manager in person
  ("派单→相关部门主管→部门主管→事发现场…主管返单到前台"), so on those tracks a resolved ticket
  may go straight back to the front desk; a general ticket is first returned to the
  supervisor ("返单给部门主管→主管返单前台").
- An unsatisfied callback reopens the ticket to ``dispatched``: the front desk deals with
  department supervisors, never directly with workers ("前台接待直接与各部门主管对接工作，不直接
  与工人对接"), so the supervisor names the responsible person again ("如不满意继续整改").
- A ticket whose customer is not selected for a callback goes from the front desk straight
  to ``archived``; otherwise the callback result must be recorded first.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from callcenter.errors import Conflict, InvalidInput
from ticketing.errors import (
    TICKET_BAD_FIELD,
    TICKET_FIELD_REQUIRED,
    TICKET_ILLEGAL_TRANSITION,
    TICKET_UNKNOWN_STATE,
)


class Status(StrEnum):
    registered = "registered"
    dispatched = "dispatched"
    assigned = "assigned"
    on_site = "on_site"
    resolved = "resolved"
    returned_to_supervisor = "returned_to_supervisor"
    returned_to_front_desk = "returned_to_front_desk"
    callback = "callback"
    archived = "archived"


class CallbackResult(StrEnum):
    satisfied = "satisfied"
    unsatisfied = "unsatisfied"
    unreachable = "unreachable"


S = Status

TRANSITIONS: dict[Status, tuple[Status, ...]] = {
    S.registered: (S.dispatched,),
    S.dispatched: (S.assigned,),
    S.assigned: (S.on_site,),
    S.on_site: (S.resolved,),
    S.resolved: (S.returned_to_supervisor, S.returned_to_front_desk),
    S.returned_to_supervisor: (S.returned_to_front_desk,),
    S.returned_to_front_desk: (S.callback, S.archived),
    S.callback: (S.archived, S.dispatched),  # dispatched: reopened after an unsatisfied callback
    S.archived: (),
}

# Before the work is resolved the SLA clock runs; from ``resolved`` on it has stopped.
OPEN_STATUSES = (S.registered, S.dispatched, S.assigned, S.on_site)

# Department staff act on these steps; the front desk (agents, leads) on every step.
DEPARTMENT_STEPS = frozenset(
    {S.assigned, S.on_site, S.resolved, S.returned_to_supervisor, S.returned_to_front_desk}
)

REQUIRED_FIELDS: dict[Status, tuple[str, ...]] = {
    S.assigned: ("assignee",),
    S.resolved: ("done", "materials", "minutes_spent"),
    S.callback: ("result",),
}

STATUS_NAMES: dict[Status, tuple[str, str]] = {
    S.registered: ("已登记", "registered"),
    S.dispatched: ("已派单", "dispatched"),
    S.assigned: ("已落实责任人", "assigned"),
    S.on_site: ("已到现场", "on site"),
    S.resolved: ("已解决（派工单已填）", "resolved (work order filled)"),
    S.returned_to_supervisor: ("已返单给部门主管", "returned to the supervisor"),
    S.returned_to_front_desk: ("主管已返单前台", "returned to the front desk"),
    S.callback: ("已回访", "callback done"),
    S.archived: ("已存档", "archived"),
}


def parse_status(value: str, *, field: str = "to") -> Status:
    try:
        return Status(value)
    except ValueError:
        raise InvalidInput(
            f"{field}: unknown state {value!r} / 未知状态",
            details={"field": field, "allowed": [s.value for s in Status]},
            error_id=TICKET_UNKNOWN_STATE,
        ) from None


def allowed_next(
    status: Status,
    track: str,
    *,
    callback_required: bool = True,
    callback_result: str | None = None,
) -> list[Status]:
    """The states a ticket in ``status`` may move to now."""
    options = list(TRANSITIONS[status])
    if status is S.resolved and track == "general":
        options.remove(S.returned_to_front_desk)
    if status is S.returned_to_front_desk and callback_required:
        options.remove(S.archived)
    if status is S.callback:
        # unsatisfied → reopened (done at once by the service); otherwise archive
        unsatisfied = callback_result == CallbackResult.unsatisfied
        options = [S.dispatched] if unsatisfied else [S.archived]
    return options


def check_transition(
    current: Status,
    target: Status,
    track: str,
    fields: Mapping[str, Any],
    *,
    callback_required: bool = True,
    callback_result: str | None = None,
) -> None:
    """Refuse an illegal step (409 with the allowed next states) or a missing field (422)."""
    allowed = allowed_next(
        current, track, callback_required=callback_required, callback_result=callback_result
    )
    if target not in allowed:
        names = ", ".join(allowed) or "none (archived)"
        hint = ""
        if current is S.returned_to_front_desk and target is S.archived and callback_required:
            hint = " (a satisfaction callback is required first / 需先回访)"
        raise Conflict(
            f"cannot go from {current} to {target}{hint}; allowed next: {names} / "
            f"不能从“{STATUS_NAMES[current][0]}”转到“{STATUS_NAMES[target][0]}”",
            details={"from": current.value, "to": target.value, "allowed": list(allowed)},
            error_id=TICKET_ILLEGAL_TRANSITION,
        )
    for name in REQUIRED_FIELDS.get(target, ()):
        value = fields.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise InvalidInput(
                f"{name}: required to move to {target} / 缺少必填项 {name}",
                details={"field": name, "to": target.value},
                error_id=TICKET_FIELD_REQUIRED,
            )
    if target is S.callback:
        result = str(fields["result"])
        if result not in {r.value for r in CallbackResult}:
            raise InvalidInput(
                f"result: must be one of satisfied, unsatisfied, unreachable (got {result!r})",
                details={"field": "result", "allowed": [r.value for r in CallbackResult]},
                error_id=TICKET_BAD_FIELD,
            )
        reason = fields.get("reason")
        if result == CallbackResult.unsatisfied and not (reason and str(reason).strip()):
            raise InvalidInput(
                "reason: required when the customer is unsatisfied / 不满意须填写原因",
                details={"field": "reason", "to": target.value},
                error_id=TICKET_FIELD_REQUIRED,
            )
    if target is S.resolved:
        minutes = fields["minutes_spent"]
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 0:
            raise InvalidInput(
                f"minutes_spent: must be a whole number of minutes >= 0 (got {minutes!r})",
                details={"field": "minutes_spent"},
                error_id=TICKET_BAD_FIELD,
            )
