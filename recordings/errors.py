"""Errors of the recordings part (each with a stable id; the app renders them as JSON)."""

from __future__ import annotations

from callcenter.errors import CallCenterError, Forbidden


class RangeNotSatisfiable(CallCenterError):
    status_code = 416
    error_id = "range-not-satisfiable"


class LinkRefused(Forbidden):
    """A replay link that is tampered with, expired, or presented by someone else."""

    error_id = "recording-link-refused"


class InvalidScores(CallCenterError):
    status_code = 422
    error_id = "invalid-scores"


class AlreadyDisputed(CallCenterError):
    status_code = 409
    error_id = "evaluation-already-disputed"
