"""Request and response shapes of the CTI API (kept apart from the SQL tables)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AgentStatePublic(BaseModel):
    agent_id: int
    state: str = Field(
        description="logged_out, ready, not_ready, reserved, on_call, on_hold or wrap_up"
    )
    reason: str | None = Field(None, description="not-ready reason (break, meal, missed, …)")
    since: str | None = None
    call_id: str | None = None
    extension: str | None = None
    shift: str | None = None
    queues: dict[str, int] = Field(default_factory=dict, description="queue -> skill level")
    misses_in_a_row: int = 0
    calls_today: int = 0
    wrap_up_until: str | None = None
    disposition: str | None = None


class StateChange(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"state": "ready"}, {"state": "not_ready", "reason": "break"}]
        }
    )

    state: Literal["ready", "not_ready", "logged_out"]
    reason: str | None = Field(
        None,
        description="with not_ready: break, meal, training, meeting, after_call, other",
        max_length=32,
    )


class TransferRequest(BaseModel):
    kind: Literal["queue", "agent", "number"]
    target: str = Field(
        min_length=1,
        max_length=64,
        description="queue code, agent extension, or a transfer target name from telephony.toml",
    )
    mode: Literal["blind", "consult", "complete", "cancel"] = "blind"


class ConsultRequest(BaseModel):
    kind: Literal["agent", "number"]
    target: str = Field(min_length=1, max_length=64)
    action: Literal["start", "complete", "cancel"] = "start"


class WrapUpRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"action": "end", "disposition": "resolved"},
                {"action": "extend", "seconds": 60},
            ]
        }
    )

    action: Literal["end", "extend", "disposition"]
    disposition: str | None = Field(None, max_length=64)
    seconds: int | None = Field(None, ge=1, le=1800)
    then_state: Literal["ready", "not_ready"] = "ready"
    reason: str | None = Field(None, max_length=32)


class ClickToCall(BaseModel):
    customer_id: int | None = None
    number: str | None = Field(None, max_length=32)


class ClickToCallPublic(BaseModel):
    call_id: str
    number: str
    customer_id: int | None
    trunk: str


class CommandPublic(BaseModel):
    command_id: str
    call_id: str
    type: str
    data: dict[str, Any]


class QueuesUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"queues": {"general": 6}}]})

    queues: dict[str, int] = Field(description="queue code -> skill level 1-10")


class ForceState(StateChange):
    pass


class SuperviseRequest(BaseModel):
    mode: Literal["listen", "whisper", "barge"]
    extension: str | None = Field(
        None, max_length=16, description="the lead's phone; default: the lead's own extension"
    )


class CustomerCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    phone: str | None = Field(None, max_length=32)
    unit: str | None = Field(None, max_length=32, description="building-entrance-room, 3-2-1201")
    kind: Literal["owner", "tenant", "shop"] = "owner"
    member: bool = False
    fee_status: Literal["paid", "arrears", "unknown"] = "unknown"
    notes: str | None = Field(None, max_length=2000)


class PhoneLink(BaseModel):
    phone: str = Field(min_length=3, max_length=32)
