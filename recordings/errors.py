"""Errors of the recordings part and their ids, declared in one place (each ``domain.id``
and stable; docs/errors.md says what each means; the app renders them as JSON)."""

from __future__ import annotations

from callcenter.errors import CallCenterError, ErrorCatalog, Forbidden

RECORDINGS = ErrorCatalog(
    "recordings",
    {
        "not-found": "no such recording (or not one the caller may see)",
        "not-processed": "the recording has not been post-processed yet (no transcode)",
        "file-missing": "the recording's audio file is missing from storage",
        "storage-error": "the recording storage failed",
        "range-not-satisfiable": "a byte range outside the recording",
        "link-refused": "a replay link tampered with, expired, or presented by someone else",
        "forbidden": "the role (or agent) may not find, listen to or download this",
        "no-reconciliation": "reconciliation has not run yet",
    },
)
EVALUATIONS = ErrorCatalog(
    "evaluations",
    {
        "not-found": "no such evaluation (or not one the caller may see)",
        "invalid-scores": "scores that do not fit the scorecard",
        "already-disputed": "the evaluation was disputed already",
        "forbidden": "only the evaluated agent (or QA, leads) may do this",
        "bad-week": "a week that is not an ISO week like 2026-W49",
        "agent-required": "no agent named, or no such agent",
    },
)

RECORDING_NOT_FOUND = RECORDINGS.id("not-found")
RECORDING_NOT_PROCESSED = RECORDINGS.id("not-processed")
RECORDING_FILE_MISSING = RECORDINGS.id("file-missing")
RECORDING_STORAGE_ERROR = RECORDINGS.id("storage-error")
RECORDING_FORBIDDEN = RECORDINGS.id("forbidden")
RECORDING_NO_RECONCILIATION = RECORDINGS.id("no-reconciliation")
EVALUATION_NOT_FOUND = EVALUATIONS.id("not-found")
EVALUATION_FORBIDDEN = EVALUATIONS.id("forbidden")
EVALUATION_BAD_WEEK = EVALUATIONS.id("bad-week")
EVALUATION_AGENT_REQUIRED = EVALUATIONS.id("agent-required")


class RangeNotSatisfiable(CallCenterError):
    status_code = 416
    error_id = RECORDINGS.id("range-not-satisfiable")


class LinkRefused(Forbidden):
    """A replay link that is tampered with, expired, or presented by someone else."""

    error_id = RECORDINGS.id("link-refused")


class InvalidScores(CallCenterError):
    status_code = 422
    error_id = EVALUATIONS.id("invalid-scores")


class AlreadyDisputed(CallCenterError):
    status_code = 409
    error_id = EVALUATIONS.id("already-disputed")
