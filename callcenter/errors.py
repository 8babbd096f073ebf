"""Domain errors as data: an id, an HTTP status and details; one handler turns them into JSON."""

from __future__ import annotations

from typing import Any


class CallCenterError(Exception):
    """Base of every error a user may see. ``error_id`` is kebab-case and stable."""

    status_code = 400
    error_id = "bad-request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error_id": self.error_id, "message": self.message, "details": self.details}


class NotFound(CallCenterError):
    status_code = 404
    error_id = "not-found"


class Conflict(CallCenterError):
    status_code = 409
    error_id = "conflict"


class InvalidInput(CallCenterError):
    status_code = 422
    error_id = "invalid-input"


class NumberNotAllowed(InvalidInput):
    """A number outside telephony.toml's dial plan: the center never dials it."""

    error_id = "number-not-allowed"


class Unauthorized(CallCenterError):
    status_code = 401
    error_id = "unauthorized"


class Forbidden(CallCenterError):
    status_code = 403
    error_id = "forbidden"


class Unavailable(CallCenterError):
    status_code = 503
    error_id = "unavailable"
