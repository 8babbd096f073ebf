"""Request and response bodies of the admin API: ``XCreate`` / ``XUpdate`` / ``XPublic``.

Only shapes are checked here; the rules that need the database or the center's files (unique
names, known queues and shifts, the password policy) live in the services, which report every
problem at once.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from callcenter.models import Role

USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$"
EXTENSION_PATTERN = r"^[0-9]{2,16}$"


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    extension: str = Field(pattern=EXTENSION_PATTERN, description="SIP user name, digits")
    sip_password: str = Field(description="the softphone's password (not the sign-in one)")
    queues: dict[str, int] = Field(default_factory=dict, description="queue code -> skill 1-10")
    team: str | None = Field(default=None, description="team name (created on first use)")
    shift: str | None = Field(default=None, description="shift code from shifts.toml")


class AgentUpdate(BaseModel):
    """Only the fields sent are changed; ``team``/``shift`` may be set to null."""

    model_config = ConfigDict(extra="forbid")

    extension: str | None = Field(default=None, pattern=EXTENSION_PATTERN)
    sip_password: str | None = None
    queues: dict[str, int] | None = None
    team: str | None = None
    shift: str | None = None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(pattern=USERNAME_PATTERN)
    password: str
    role: Role
    display_name: str = Field(min_length=1, max_length=128)
    department: str | None = Field(
        default=None, description="department code (dispatch.toml); department staff only"
    )
    language: str = Field(default="zh-CN", pattern=r"^(zh-CN|en)$")
    agent: AgentCreate | None = None


class UserUpdate(BaseModel):
    """Only the fields sent are changed. ``active: false`` disables (tokens stop at once),
    ``password`` resets the sign-in password (tokens issued before it stop working)."""

    model_config = ConfigDict(extra="forbid")

    password: str | None = None
    role: Role | None = None
    display_name: str | None = Field(default=None, min_length=1, max_length=128)
    department: str | None = None
    language: str | None = Field(default=None, pattern=r"^(zh-CN|en)$")
    active: bool | None = None
    agent: AgentUpdate | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str
    new_password: str


class AgentPublic(BaseModel):
    id: int
    extension: str
    queues: dict[str, int]
    team: str | None
    shift: str | None
    active: bool


class UserPublic(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    department_id: int | None
    department: str | None
    language: str
    active: bool
    created_at: datetime
    credentials_changed_at: datetime | None
    agent: AgentPublic | None


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str = Field(description="supervisor, manager, escalation or leadership")
    name: str = Field(min_length=1, max_length=64)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9]{3,20}$")
    user_id: int | None = None
    rank: int = Field(default=0, ge=0, le=100)


class ContactUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: str | None = None
    name: str | None = Field(default=None, min_length=1, max_length=64)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9]{3,20}$")
    user_id: int | None = None
    rank: int | None = Field(default=None, ge=0, le=100)


class ContactPublic(BaseModel):
    id: int
    department: str
    role: str
    name: str
    phone: str | None
    user_id: int | None
    rank: int


class DepartmentPublic(BaseModel):
    id: int
    code: str
    name_zh: str
    name_en: str
    external: bool
    contacts: list[ContactPublic]
