"""Domain errors as data: an id, an HTTP status and details; one handler turns them into JSON."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

DOMAIN_ID = re.compile(r"^[a-z]+\.[a-z0-9]+(-[a-z0-9]+)*$")


class ErrorCatalog:
    """One package's error ids, declared in one place (its ``errors.py``): ``domain.local``
    for each local id, with what it means (docs/errors.md lists them all, a test keeps the
    two in step). ``catalog.id("not-found")`` gives ``"<domain>.not-found"`` and refuses an
    id the catalog does not declare, at import time."""

    def __init__(self, domain: str, ids: dict[str, str]) -> None:
        self.domain = domain
        self.ids = dict(ids)
        for local in self.ids:
            if not DOMAIN_ID.match(f"{domain}.{local}"):
                raise ValueError(f"error id {domain}.{local} is not domain.kebab-case")

    def id(self, local: str) -> str:
        if local not in self.ids:
            raise KeyError(f"{self.domain}.{local} is not declared in its catalog")
        return f"{self.domain}.{local}"

    def all(self) -> dict[str, str]:
        """Every full id with what it means."""
        return {f"{self.domain}.{local}": meaning for local, meaning in self.ids.items()}


def error_body(error_id: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    """Every error answer's JSON body (:class:`ErrorPublic`), whoever makes it."""
    return {"error_id": error_id, "message": message, "details": details}


class CallCenterError(Exception):
    """Base of every error a user may see. ``error_id`` is stable: the class's kebab-case
    kind (``not-found``), or a domain's own id (``tickets.not-found``) declared in the
    package's :class:`ErrorCatalog` and given where the error is raised."""

    status_code = 400
    error_id = "bad-request"

    def __init__(
        self, message: str, *, details: dict[str, Any] | None = None, error_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if error_id is not None:
            self.error_id = error_id

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.error_id, self.message, self.details)

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides the JSON body."""
        return {}


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

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer, Basic realm="callcenter"'}


class TooManyAttempts(CallCenterError):
    """Sign-in throttled (callcenter/signin.py); ``retry_after`` seconds until it may work."""

    status_code = 429
    error_id = "too-many-sign-in-attempts"

    def __init__(
        self, message: str, *, retry_after: int, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details={**(details or {}), "retry_after": retry_after})
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Forbidden(CallCenterError):
    status_code = 403
    error_id = "forbidden"


class Unavailable(CallCenterError):
    status_code = 503
    error_id = "unavailable"


class DatabaseUnavailable(Unavailable):
    """The SQL database did not answer (down, restarting, the connection cut): the request's
    transaction was rolled back; the client may try again after ``Retry-After`` seconds."""

    error_id = "database-unavailable"
    retry_after = 5

    def __init__(self) -> None:
        super().__init__(
            "数据库暂时无法访问，请稍后重试 / the database is not answering; "
            "the request was not carried out, try again shortly",
            details={"retry_after": self.retry_after},
        )

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ErrorPublic(BaseModel):
    """Every error answer's body (``CallCenterError.to_dict``, validation errors, the 500)."""

    error_id: str
    message: str
    details: dict[str, Any]


# Declared on every /api/v1 operation: which errors any of them may answer.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorPublic, "description": description}
    for status, description in {
        400: "the request could not be read (e.g. a body that is not JSON)",
        401: "not signed in, or the credentials are wrong",
        403: "the signed-in role may not do this",
        404: "no such object",
        409: "the object's state does not allow this now",
        422: "invalid input: the message and details name each field",
        429: "too many failed sign-ins: retry after the Retry-After header's seconds",
        500: "internal error: the answer names the request id of the server log's entry",
        503: "a service this needs (Redis, the database) did not answer",
    }.items()
}
