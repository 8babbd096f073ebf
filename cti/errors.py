"""The error ids of the CTI package (agents, calls, customers, queues), declared in one place.

Each is ``domain.kebab-case`` and stable; docs/errors.md says what each means and a test keeps
that list and these catalogs in step. Raise sites pass them: ``NotFound(..., error_id=...)``.
"""

from __future__ import annotations

from callcenter.errors import ErrorCatalog

AGENTS = ErrorCatalog(
    "agents",
    {
        "not-an-agent": "the signed-in account is not an agent",
        "not-found": "no such agent",
        "disabled": "the agent is disabled and may not log in",
        "unknown-state": "a requested state other than ready, not_ready, logged_out",
        "unknown-transition": "a transition name the agent state table does not have",
        "illegal-transition": "the agent's state does not allow this transition now",
        "reason-required": "not ready needs a reason",
        "unknown-reason": "a not-ready reason that is not one an agent may choose",
        "bad-skill-level": "skill levels are 1 to 10",
        "bad-wrap-up": "a wrap-up request its wrap-up does not allow (action, time, disposition)",
        "bad-extension": "an extension that is no agent's phone",
    },
)
CALLS = ErrorCatalog(
    "calls",
    {
        "not-found": "no such call",
        "not-live": "the call is not live on any engine slot",
        "no-call": "the agent has no call in progress",
        "consult-controlled": "during a consultation the consulting agent controls the call",
        "already-held": "the call is already on hold",
        "not-held": "the call is not on hold",
        "recording-already-paused": "the recording is already paused",
        "recording-not-paused": "the recording is not paused",
        "bad-transfer": "a transfer request that cannot be carried out as given",
        "no-outbound-trunk": "no outbound trunk is configured",
        "number-not-callable": "click-to-call reaches customers' numbers only",
        "bad-monitor-mode": "listen, whisper or barge only",
        "routing-refused": "routing refused the operation in the call's present state",
        "read-forbidden": "the role (or agent) may not read these calls",
    },
)
CUSTOMERS = ErrorCatalog(
    "customers",
    {
        "not-found": "no such customer",
        "bad-phone": "a phone number without digits",
        "phone-taken": "the number already belongs to another customer",
    },
)
QUEUES = ErrorCatalog(
    "queues",
    {
        "not-found": "no queue with that code (queues.toml)",
    },
)

AGENT_NOT_AN_AGENT = AGENTS.id("not-an-agent")
AGENT_NOT_FOUND = AGENTS.id("not-found")
AGENT_DISABLED = AGENTS.id("disabled")
AGENT_UNKNOWN_STATE = AGENTS.id("unknown-state")
AGENT_UNKNOWN_TRANSITION = AGENTS.id("unknown-transition")
AGENT_ILLEGAL_TRANSITION = AGENTS.id("illegal-transition")
AGENT_REASON_REQUIRED = AGENTS.id("reason-required")
AGENT_UNKNOWN_REASON = AGENTS.id("unknown-reason")
AGENT_BAD_SKILL_LEVEL = AGENTS.id("bad-skill-level")
AGENT_BAD_WRAP_UP = AGENTS.id("bad-wrap-up")
AGENT_BAD_EXTENSION = AGENTS.id("bad-extension")
CALL_NOT_FOUND = CALLS.id("not-found")
CALL_NOT_LIVE = CALLS.id("not-live")
CALL_NONE = CALLS.id("no-call")
CALL_CONSULT_CONTROLLED = CALLS.id("consult-controlled")
CALL_ALREADY_HELD = CALLS.id("already-held")
CALL_NOT_HELD = CALLS.id("not-held")
CALL_RECORDING_PAUSED = CALLS.id("recording-already-paused")
CALL_RECORDING_NOT_PAUSED = CALLS.id("recording-not-paused")
CALL_BAD_TRANSFER = CALLS.id("bad-transfer")
CALL_NO_TRUNK = CALLS.id("no-outbound-trunk")
CALL_NUMBER_NOT_CALLABLE = CALLS.id("number-not-callable")
CALL_BAD_MONITOR_MODE = CALLS.id("bad-monitor-mode")
CALL_ROUTING_REFUSED = CALLS.id("routing-refused")
CALL_READ_FORBIDDEN = CALLS.id("read-forbidden")
CUSTOMER_NOT_FOUND = CUSTOMERS.id("not-found")
CUSTOMER_BAD_PHONE = CUSTOMERS.id("bad-phone")
CUSTOMER_PHONE_TAKEN = CUSTOMERS.id("phone-taken")
QUEUE_NOT_FOUND = QUEUES.id("not-found")
