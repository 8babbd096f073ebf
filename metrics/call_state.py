"""What the call tracker remembers of one call between events: its open queue leg, its
answered leg until wrap-up ends, and when it ended; stored as JSON between batches."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from metrics.time_windows import parse_at


@dataclass
class OpenLeg:
    queue: str
    entered_at: datetime


@dataclass
class Handling:
    """An answered leg, followed until wrap-up ends so talk and wrap-up land in its cohort."""

    queue: str
    entered_at: datetime
    agent: str | None
    team: str | None
    answered_at: datetime
    ended_at: datetime | None = None


@dataclass
class CallState:
    call_id: str
    leg: OpenLeg | None = None
    handling: Handling | None = None
    ended_at: datetime | None = None
    first_queued_at: datetime | None = None  # the caller's wait starts here, across overflows

    @property
    def finished(self) -> bool:
        """Nothing more can change this call's figures (it may be forgotten)."""
        return self.ended_at is not None and self.leg is None and self.handling is None

    def to_json(self) -> str:
        def enc(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime) else value

        raw = asdict(self)
        for key in ("leg", "handling"):
            if raw[key] is not None:
                raw[key] = {k: enc(v) for k, v in raw[key].items()}
        raw["ended_at"] = enc(raw["ended_at"])
        raw["first_queued_at"] = enc(raw["first_queued_at"])
        return json.dumps(raw, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> CallState:
        raw = json.loads(text)

        def dt(value: str | None) -> datetime | None:
            return parse_at(value) if value else None

        leg = raw.get("leg")
        handling = raw.get("handling")
        return cls(
            call_id=raw["call_id"],
            leg=OpenLeg(leg["queue"], parse_at(leg["entered_at"])) if leg else None,
            handling=Handling(
                queue=handling["queue"],
                entered_at=parse_at(handling["entered_at"]),
                agent=handling["agent"],
                team=handling["team"],
                answered_at=parse_at(handling["answered_at"]),
                ended_at=dt(handling["ended_at"]),
            )
            if handling
            else None,
            ended_at=dt(raw.get("ended_at")),
            first_queued_at=dt(raw.get("first_queued_at")),
        )
