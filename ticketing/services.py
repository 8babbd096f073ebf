"""The ticket domain's functions under their former single module's name.

The logic lives in one module per concern (see docs/tickets.md): ``change``, ``numbering``,
``registration``, ``dispatch``, ``transitions``, ``sla``, ``callbacks``, ``attempts``,
``queries``, ``reports`` and ``scheduling``. This module only re-exports their public names, so
code written against ``ticketing.services`` keeps working; new code imports the concern's
module directly.
"""

from __future__ import annotations

from ticketing.attempts import record_attempt, retry_or_give_up
from ticketing.callbacks import (
    callback_flags,
    callback_selected,
    current_callback,
    due_callbacks,
    in_rest,
    next_allowed,
    plan_callback,
)
from ticketing.change import SYSTEM, Change, actor_name, apply_effects, changing, local_tz
from ticketing.dispatch import (
    REFERENCE_TTL,
    DeptRef,
    categories,
    contacts_for,
    department_by_code,
    department_codes,
    dispatch_ticket,
    resolve_department,
)
from ticketing.numbering import NUMBER_RETRIES, allocate_number, number_day
from ticketing.queries import (
    allowed_for,
    callback_dict,
    list_callbacks,
    list_tickets,
    load_ticket,
    read_detail,
    ticket_detail,
    ticket_dict,
    ticket_summary,
)
from ticketing.registration import caller_identity, create_ticket
from ticketing.reports import callback_report, overdue_report
from ticketing.scheduling import Effects
from ticketing.sla import (
    CHAIN,
    check_sla,
    escalation_role,
    mark_overdue,
    max_escalation_level,
    preload_sla_events,
    reopened_columns,
    resolve_sla,
    sla_candidates,
    written_notice,
)
from ticketing.transitions import apply_transition, authorize, transition, transition_detail

__all__ = [
    "CHAIN",
    "NUMBER_RETRIES",
    "REFERENCE_TTL",
    "SYSTEM",
    "Change",
    "DeptRef",
    "Effects",
    "actor_name",
    "allocate_number",
    "allowed_for",
    "apply_effects",
    "apply_transition",
    "authorize",
    "callback_dict",
    "callback_flags",
    "callback_report",
    "callback_selected",
    "caller_identity",
    "categories",
    "changing",
    "check_sla",
    "contacts_for",
    "create_ticket",
    "current_callback",
    "department_by_code",
    "department_codes",
    "dispatch_ticket",
    "due_callbacks",
    "escalation_role",
    "in_rest",
    "list_callbacks",
    "list_tickets",
    "load_ticket",
    "local_tz",
    "mark_overdue",
    "max_escalation_level",
    "next_allowed",
    "number_day",
    "overdue_report",
    "plan_callback",
    "preload_sla_events",
    "read_detail",
    "record_attempt",
    "reopened_columns",
    "resolve_department",
    "resolve_sla",
    "retry_or_give_up",
    "sla_candidates",
    "ticket_detail",
    "ticket_dict",
    "ticket_summary",
    "transition",
    "transition_detail",
    "written_notice",
]
