"""The error ids of ticketing (tickets, callbacks, departments), declared in one place.

Each is ``domain.kebab-case`` and stable; docs/errors.md says what each means and a test keeps
that list and these catalogs in step. Raise sites pass them: ``NotFound(..., error_id=...)``.
"""

from __future__ import annotations

from callcenter.errors import ErrorCatalog

TICKETS = ErrorCatalog(
    "tickets",
    {
        "not-found": "no such ticket",
        "unknown-category": "a category tickets.toml does not have",
        "unknown-state": "a ticket state the workflow does not have",
        "illegal-transition": "the ticket's state does not allow this step",
        "field-required": "the step needs a field that was not given",
        "bad-field": "a field whose value the step cannot take",
        "bad-sla": "an SLA class or due time that does not fit",
        "changed-meanwhile": "someone else changed the ticket first: reload it",
        "number-unavailable": "no ticket number could be allocated: try again",
        "other-department": "the ticket belongs to another department",
        "read-only": "the role may read tickets but not change them",
        "step-forbidden": "department staff may not take this step",
        "not-an-agent": "the signed-in account is not an agent",
        "bad-idempotency-key": "an Idempotency-Key header that is not 8-128 characters "
        "from A-Z a-z 0-9 - _ . : + / =",
        "idempotency-key-reused": "the Idempotency-Key was sent before with another body",
    },
)
CALLBACKS = ErrorCatalog(
    "callbacks",
    {
        "not-found": "no such callback",
        "closed": "the callback is no longer open",
        "bad-result": "a callback result that is incomplete or not allowed",
        "bad-agent": "no active agent with that id",
        "assigned-elsewhere": "the callback is assigned to another agent",
        "lead-only": "only a shift lead assigns callbacks",
        "no-calling-time": "callbacks.toml leaves no time to call back",
    },
)
DEPARTMENTS = ErrorCatalog(
    "departments",
    {
        "not-found": "no such department",
        "required": "the category has no department: one must be given",
    },
)

TICKET_NOT_FOUND = TICKETS.id("not-found")
TICKET_UNKNOWN_CATEGORY = TICKETS.id("unknown-category")
TICKET_UNKNOWN_STATE = TICKETS.id("unknown-state")
TICKET_ILLEGAL_TRANSITION = TICKETS.id("illegal-transition")
TICKET_FIELD_REQUIRED = TICKETS.id("field-required")
TICKET_BAD_FIELD = TICKETS.id("bad-field")
TICKET_BAD_SLA = TICKETS.id("bad-sla")
TICKET_CHANGED = TICKETS.id("changed-meanwhile")
TICKET_NUMBER_UNAVAILABLE = TICKETS.id("number-unavailable")
TICKET_OTHER_DEPARTMENT = TICKETS.id("other-department")
TICKET_READ_ONLY = TICKETS.id("read-only")
TICKET_NOT_AN_AGENT = TICKETS.id("not-an-agent")
TICKET_BAD_IDEMPOTENCY_KEY = TICKETS.id("bad-idempotency-key")
TICKET_IDEMPOTENCY_KEY_REUSED = TICKETS.id("idempotency-key-reused")
CALLBACK_NOT_FOUND = CALLBACKS.id("not-found")
CALLBACK_CLOSED = CALLBACKS.id("closed")
CALLBACK_BAD_RESULT = CALLBACKS.id("bad-result")
CALLBACK_BAD_AGENT = CALLBACKS.id("bad-agent")
CALLBACK_ASSIGNED_ELSEWHERE = CALLBACKS.id("assigned-elsewhere")
CALLBACK_LEAD_ONLY = CALLBACKS.id("lead-only")
CALLBACK_NO_CALLING_TIME = CALLBACKS.id("no-calling-time")
DEPARTMENT_NOT_FOUND = DEPARTMENTS.id("not-found")
DEPARTMENT_REQUIRED = DEPARTMENTS.id("required")
TICKET_STEP_FORBIDDEN = TICKETS.id("step-forbidden")
