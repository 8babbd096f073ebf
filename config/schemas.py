"""Typed shapes of the declarative files under ``config/`` (menus, queues, shifts, dispatch,
SLA, callbacks, telephony). Validation at load names the file, the key and the problem."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.checks import CheckFailed
from config.dialplan import DEFAULT_NATIONAL, DialPlan, pattern_problem, prefix_problem

Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
Digit = Annotated[str, Field(pattern=r"^[0-9*#]$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class Names(Strict):
    """A display name in Chinese (default) and English."""

    zh: str = Field(alias="zh-CN", min_length=1)
    en: str = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def parse_hhmm(value: object) -> time:
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise CheckFailed("time_hhmm", value=repr(value))
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


# ---------------------------------------------------------------- menus (menu.toml)


class Prompt(Strict):
    """What a caller hears: text rendered offline to 8 kHz WAV (espeak-ng), or a WAV file."""

    text: str | None = None
    file: str | None = None
    voice: str = "cmn"

    @model_validator(mode="after")
    def _one_source(self) -> Prompt:
        if (self.text is None) == (self.file is None):
            raise CheckFailed("prompt_source")
        return self


class MenuNode(Strict):
    kind: Literal["menu"]
    prompt: Prompt
    options: dict[Digit, Code]
    first_digit_timeout: float = Field(default=6.0, gt=0, le=60)
    inter_digit_timeout: float = Field(default=3.0, gt=0, le=30)
    max_retries: int = Field(default=3, ge=0, le=10)
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None
    fallback: Code

    @field_validator("options", mode="before")
    @classmethod
    def _no_duplicate_digits(cls, value: object) -> object:
        # TOML already refuses a repeated key; this catches the same digit written twice
        # in different forms (1 and "1") once the loader turns keys into strings.
        if isinstance(value, list):
            seen: set[str] = set()
            for item in value:
                digit = str(item.get("digit")) if isinstance(item, dict) else None
                if digit in seen:
                    raise CheckFailed("digit_twice", digit=repr(digit))
                seen.add(str(digit))
            return {str(item["digit"]): item["goto"] for item in value}
        return value


class PlayNode(Strict):
    kind: Literal["play"]
    prompt: Prompt
    next: Code | None = None  # None: return to the menu the caller came from


class CollectNode(Strict):
    kind: Literal["collect"]
    prompt: Prompt
    variable: Code
    pattern: str = r"^\d{1,12}$"
    max_digits: int = Field(default=12, ge=1, le=32)
    terminator: Literal["#", "*", ""] = "#"
    first_digit_timeout: float = Field(default=8.0, gt=0, le=60)
    inter_digit_timeout: float = Field(default=4.0, gt=0, le=30)
    max_retries: int = Field(default=2, ge=0, le=10)
    invalid_prompt: Prompt | None = None
    next: Code
    fallback: Code

    @field_validator("pattern")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise CheckFailed("regex", reason=exc) from exc
        return value


class EnqueueNode(Strict):
    kind: Literal["enqueue"]
    queue: Code
    priority: int = Field(default=0, ge=0, le=9)
    skills: list[Code] = Field(default_factory=list)
    prompt: Prompt | None = None


class CallbackNode(Strict):
    kind: Literal["callback"]
    queue: Code
    prompt: Prompt | None = None


class TransferNode(Strict):
    kind: Literal["transfer"]
    target: Code  # a name in telephony.toml [transfer_targets]
    prompt: Prompt | None = None


class HangupNode(Strict):
    kind: Literal["hangup"]
    prompt: Prompt | None = None


Node = Annotated[
    MenuNode | PlayNode | CollectNode | EnqueueNode | CallbackNode | TransferNode | HangupNode,
    Field(discriminator="kind"),
]


class MenuFile(Strict):
    entry: Code
    nodes: dict[Code, Node]

    @model_validator(mode="after")
    def _links_exist(self) -> MenuFile:
        if self.entry not in self.nodes:
            raise CheckFailed("entry_undefined", node=repr(self.entry))
        for name, node in self.nodes.items():
            targets: list[tuple[str, str | None]] = []
            if isinstance(node, MenuNode):
                targets += [(f"options.{d}", t) for d, t in node.options.items()]
                targets.append(("fallback", node.fallback))
            elif isinstance(node, CollectNode):
                targets += [("next", node.next), ("fallback", node.fallback)]
            elif isinstance(node, PlayNode):
                targets.append(("next", node.next))
            for key, target in targets:
                if target is not None and target not in self.nodes:
                    raise CheckFailed("node_undefined", name=name, key=key, node=repr(target))
        return self


# ---------------------------------------------------------------- queues (queues.toml)

Strategy = Literal["longest_idle", "round_robin", "fewest_calls", "skill_then_longest_idle"]


class Overflow(Strict):
    after_seconds: int = Field(ge=5)
    to: Code


class CallbackOffer(Strict):
    after_seconds: int | None = Field(default=None, ge=5)
    expected_wait_over_seconds: int | None = Field(default=None, ge=5)


class Queue(Strict):
    name: Names
    strategy: Strategy = "longest_idle"
    ring_timeout_seconds: int = Field(default=15, ge=3, le=120)
    wrap_up_seconds: int = Field(default=30, ge=0, le=1800)
    service_level_seconds: int = Field(default=20, ge=1, le=600)
    long_wait_alert_seconds: int = Field(default=120, ge=5)
    announce_every_seconds: int = Field(default=30, ge=0, le=600)
    missed_offers_to_logout: int = Field(default=3, ge=0, le=20)  # 0: never log out
    off_shift_agents_may_answer: bool = False
    no_agents: Literal["callback", "message", "overflow", "wait"] = "callback"
    overflow: Overflow | None = None
    callback_offer: CallbackOffer | None = None
    member_priority: int = Field(default=1, ge=0, le=9)
    # recordings of this queue's calls are deleted after this many days (unless on legal
    # hold); None: the file's recording_retention_days
    recording_retention_days: int | None = Field(default=None, ge=1, le=36500)

    @model_validator(mode="after")
    def _overflow_needed(self) -> Queue:
        if self.no_agents == "overflow" and self.overflow is None:
            raise CheckFailed("overflow_needed")
        return self


class QueuesFile(Strict):
    short_abandon_seconds: int = Field(default=5, ge=0, le=60)
    # recordings of calls without a queue, and of queues that set none, are kept this long
    recording_retention_days: int = Field(default=365, ge=1, le=36500)
    queues: dict[Code, Queue]

    @model_validator(mode="after")
    def _overflow_targets(self) -> QueuesFile:
        for code, queue in self.queues.items():
            if queue.overflow and queue.overflow.to not in self.queues:
                raise CheckFailed("overflow_undefined", code=code, queue=repr(queue.overflow.to))
            if queue.overflow and queue.overflow.to == code:
                raise CheckFailed("overflow_self", code=code)
        return self


# ---------------------------------------------------------------- shifts (shifts.toml)


class Shift(Strict):
    name: Names
    start: time
    end: time
    overnight: bool = False

    _parse = field_validator("start", "end", mode="before")(lambda cls, v: parse_hhmm(v))

    @model_validator(mode="after")
    def _overnight_declared(self) -> Shift:
        if self.start == self.end:
            raise CheckFailed("shift_empty")
        wraps = self.end < self.start
        if wraps and not self.overnight:
            raise CheckFailed("shift_wraps", start=f"{self.start:%H:%M}", end=f"{self.end:%H:%M}")
        if self.overnight and not wraps:
            raise CheckFailed(
                "shift_not_overnight", start=f"{self.start:%H:%M}", end=f"{self.end:%H:%M}"
            )
        return self


class StaffingMinimum(Strict):
    start: time
    end: time
    agents: int = Field(ge=0, le=1000)

    _parse = field_validator("start", "end", mode="before")(lambda cls, v: parse_hhmm(v))


class AlertRules(Strict):
    """When the answer-rate and service-level alerts are raised and cleared (both follow the
    same rules; see metrics/alerts.py)."""

    min_resolved_calls: int = Field(default=10, ge=1, le=100_000)
    raise_after_seconds: int = Field(default=60, ge=0, le=86_400)
    clear_after_seconds: int = Field(default=120, ge=0, le=86_400)


class ShiftsFile(Strict):
    answer_rate_target: float = Field(default=0.9, gt=0, le=1)
    # the share of calls to answer within the queue's service_level_seconds (80/20: 0.8)
    service_level_target: float = Field(default=0.8, gt=0, le=1)
    alerts: AlertRules = Field(default_factory=AlertRules)
    shifts: dict[Code, Shift]
    minimums: list[StaffingMinimum] = Field(default_factory=list)


# ---------------------------------------------------------------- dispatch and SLA (dispatch.toml)


class Department(Strict):
    name: Names
    external: bool = False


class SlaClass(Strict):
    name: Names
    minutes: int | None = Field(default=None, ge=1)
    written_notice: bool = False
    agreed: bool = False  # the deadline is agreed with the customer per ticket

    @model_validator(mode="after")
    def _minutes_or_agreed(self) -> SlaClass:
        if self.agreed == (self.minutes is not None):
            raise CheckFailed("sla_minutes")
        return self


class Category(Strict):
    name: Names
    department: Code
    sla: str = "30m"
    area: Literal["private", "public", "facility", "fees", "outside"] = "public"


class Track(Strict):
    name: Names
    dispatch_to: Literal["supervisor", "manager"] = "supervisor"
    notify_leadership: bool = False
    warn_before_minutes: int = Field(default=10, ge=0)
    # After the deadline the ticket escalates to the manager; this long after that, to the
    # level above (上级主管领导).
    escalate_above_after_minutes: int = Field(default=60, ge=1)


class DispatchFile(Strict):
    departments: dict[Code, Department]
    sla: dict[str, SlaClass]
    categories: dict[Code, Category]
    tracks: dict[Literal["general", "urgent", "emergency"], Track]

    @model_validator(mode="after")
    def _references(self) -> DispatchFile:
        for code, category in self.categories.items():
            if category.department not in self.departments:
                raise CheckFailed(
                    "category_department", code=code, department=repr(category.department)
                )
            if category.sla not in self.sla:
                raise CheckFailed("category_sla", code=code, sla=repr(category.sla))
        missing = {"general", "urgent", "emergency"} - set(self.tracks)
        if missing:
            raise CheckFailed("tracks_missing", missing=", ".join(sorted(missing)))
        return self


# ---------------------------------------------------------------- callbacks (callbacks.toml)


class RestPeriod(Strict):
    start: time
    end: time

    _parse = field_validator("start", "end", mode="before")(lambda cls, v: parse_hhmm(v))


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class CallbacksFile(Strict):
    delay_after_sla_hours: float = Field(default=24, ge=0)
    within_days: float = Field(default=3, gt=0)
    member_share: float = Field(default=1.0, ge=0, le=1)
    other_share: float = Field(default=0.3, ge=0, le=1)
    rest_periods: list[RestPeriod] = Field(default_factory=list)
    rest_weekdays: list[Weekday] = Field(default_factory=list)
    mode: Literal["agent", "survey"] = "agent"
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_after_minutes: int = Field(default=120, ge=1)
    queue: Code = "callback"


# ---------------------------------------------------------------- webhooks (webhooks.toml)


class WebhookTarget(Strict):
    url: str = Field(pattern=r"^https?://")
    secret: str = Field(min_length=8)  # HMAC-SHA256 key shared with the receiver
    events: list[str] = Field(default_factory=lambda: ["*"])  # "ticket.*", "ticket.overdue"


class WebhooksFile(Strict):
    max_attempts: int = Field(default=8, ge=1, le=30)
    backoff_seconds: float = Field(default=5, gt=0)  # retry n waits backoff * 2**(n-1)
    max_backoff_seconds: float = Field(default=3600, gt=0)
    timeout_seconds: float = Field(default=5, gt=0, le=60)
    targets: dict[Code, WebhookTarget] = Field(default_factory=dict)


# ---------------------------------------------------------------- telephony (telephony.toml)


class Did(Strict):
    number: str = Field(pattern=r"^\+?\d{3,20}$")
    entry: Code | None = None  # menu node; default: the menu's entry


class Trunk(Strict):
    host: str
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "udp"
    outbound_prefix: str = ""


class TransferTarget(Strict):
    name: Names
    number: str = Field(pattern=r"^\+?[\d*#]{2,20}$")
    trunk: Code | None = None  # None: an internal extension at the edge


class DialPlanSpec(Strict):
    """Which numbers may be dialled out (see config/dialplan.py)."""

    national: list[str] = Field(default_factory=lambda: list(DEFAULT_NATIONAL), min_length=1)
    international_prefixes: list[str] = Field(default_factory=list)

    @field_validator("national")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            problem = pattern_problem(pattern)
            if problem:
                raise problem
        return value

    @field_validator("international_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            problem = prefix_problem(prefix)
            if problem:
                raise problem
        return value

    def plan(self) -> DialPlan:
        return DialPlan(tuple(self.national), tuple(self.international_prefixes))


class TelephonyFile(Strict):
    sip_domain: str = "callcenter.local"
    dids: list[Did]
    trunks: dict[Code, Trunk] = Field(default_factory=dict)
    outbound_trunk: Code | None = None  # used only by explicit actions: callbacks, click-to-call
    transfer_targets: dict[Code, TransferTarget] = Field(default_factory=dict)
    dial_plan: DialPlanSpec = Field(default_factory=DialPlanSpec)

    @model_validator(mode="after")
    def _trunks_exist(self) -> TelephonyFile:
        if self.outbound_trunk and self.outbound_trunk not in self.trunks:
            raise CheckFailed("outbound_trunk_undefined", trunk=repr(self.outbound_trunk))
        for code, target in self.transfer_targets.items():
            if target.trunk and target.trunk not in self.trunks:
                raise CheckFailed("target_trunk_undefined", code=code, trunk=repr(target.trunk))
            refusal = self.dial_plan.plan().refusal(target.number) if target.trunk else None
            if refusal:
                raise CheckFailed(
                    "target_number_refused", code=code, refusal=refusal, number=target.number
                )
        numbers = [d.number for d in self.dids]
        duplicates = {n for n in numbers if numbers.count(n) > 1}
        if duplicates:
            raise CheckFailed("did_twice", number=repr(sorted(duplicates)[0]))
        return self


# ---------------------------------------------------------------- QA scorecards (qa.toml)


class ScorecardItem(Strict):
    name: Names
    weight: float = Field(gt=0, le=100)
    max_score: int = Field(default=5, ge=1, le=100)
    # what the evaluator listens for, shown beside the item (e.g. the courtesy phrases)
    phrases: list[str] = Field(default_factory=list)
    guidance: str = ""


class Scorecard(Strict):
    name: Names
    items: dict[Code, ScorecardItem] = Field(min_length=1)


class QaSample(Strict):
    # calls shorter than this are left out of the weekly sample (too short to judge)
    min_answered_seconds: int = Field(default=30, ge=0, le=3600)
    per_agent: int = Field(default=5, ge=1, le=100)


class QaFile(Strict):
    default_scorecard: Code
    sample: QaSample = QaSample()
    scorecards: dict[Code, Scorecard] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_exists(self) -> QaFile:
        if self.default_scorecard not in self.scorecards:
            raise CheckFailed("scorecard_undefined", scorecard=repr(self.default_scorecard))
        return self
