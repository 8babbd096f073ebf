"""Recordings API: find, replay links, playback with HTTP Range, legal hold; QA routes are
included from ``recordings.http_qa``. Every play, download and refusal is audited.

Fixed paths (``/recordings/play/...``, ``/recordings/reconciliation``) are declared before
``/recordings/{id}`` so an id never shadows them.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from callcenter.audit import record as record_audit
from callcenter.auth import (
    Principal,
    credentials_from_header,
    current_user,
    get_ctx,
    principal_for,
    require,
)
from callcenter.context import AppContext
from callcenter.errors import CallCenterError, Forbidden, NotFound, Unauthorized
from callcenter.models import Role
from cti.models import Call
from recordings import access, http_qa, links, playback, reconcile, retention
from recordings.errors import (
    RECORDING_FORBIDDEN,
    RECORDING_NO_RECONCILIATION,
    RECORDING_NOT_FOUND,
    RECORDING_NOT_PROCESSED,
    LinkRefused,
)
from recordings.models import Recording, RecordingMedia
from recordings.schemas import (
    ErasureRequest,
    LegalHold,
    LinkPublic,
    LinkRequest,
    MediaPublic,
    PausedSpan,
    QaStatus,
    RecordingPage,
    RecordingPublic,
)
from recordings.search import RecordingFilter, search

router = APIRouter(tags=["recordings"])
router.include_router(http_qa.router)


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None


def audit(
    ctx: AppContext,
    *,
    actor: str,
    action: str,
    recording_id: str,
    details: dict[str, Any],
    remote_addr: str | None,
) -> None:
    with ctx.sessions() as session, session.begin():
        record_audit(
            session,
            actor=actor,
            action=action,
            object_type="recording",
            object_id=recording_id,
            details=details,
            remote_addr=remote_addr,
        )


def _utc(moment: datetime | None, zone: str) -> datetime | None:
    """A time from a query string; without an offset it is the center's local time."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return moment.astimezone(UTC)


@router.get(
    "/recordings",
    response_model=RecordingPage,
    summary="Find recordings (newest first); agents find their own, department staff none",
)
def find_recordings(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
    agent: Annotated[str | None, Query(description="the answering agent's extension")] = None,
    caller: Annotated[str | None, Query(description="the caller's number (exact)")] = None,
    queue: Annotated[str | None, Query(description="queue code")] = None,
    ticket: Annotated[str | None, Query(description="ticket number, e.g. GD20261206-0001")] = None,
    since: Annotated[datetime | None, Query(description="started at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="started before (ISO 8601)")] = None,
    min_duration: Annotated[float | None, Query(ge=0, description="seconds")] = None,
    qa_status: Annotated[QaStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> RecordingPage:
    only_agent = access.search_scope(principal)
    wanted = RecordingFilter(
        agent_extension=agent,
        only_agent_id=only_agent,
        caller=caller,
        queue=queue,
        ticket=ticket,
        since=_utc(since, ctx.settings.timezone),
        until=_utc(until, ctx.settings.timezone),
        min_duration=min_duration,
        qa_status=qa_status,
    )
    with ctx.sessions() as session:
        items, has_more = search(session, wanted, limit=limit, offset=offset)
    return RecordingPage(
        items=items,
        limit=limit,
        offset=offset,
        has_more=has_more,
        next_offset=offset + limit if has_more else None,
    )


@router.get(
    "/recordings/reconciliation",
    summary="The last reconciliation's findings (files and rows that disagree)",
)
def get_reconciliation(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    _principal: Annotated[Principal, Depends(require(Role.lead, Role.qa))],
) -> dict[str, Any]:
    report = reconcile.last_report(ctx)
    if report is None:
        raise NotFound(
            "reconciliation has not run yet: POST /api/v1/recordings/reconciliation",
            error_id=RECORDING_NO_RECONCILIATION,
        )
    return report


@router.post(
    "/recordings/reconciliation",
    summary="Reconcile now: answered calls, rows, files and checksums; returns the findings",
)
def run_reconciliation(
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(require(Role.lead, Role.qa))],
    verify_checksums: bool = True,
) -> dict[str, Any]:
    report = reconcile.reconcile_and_store(ctx, verify_checksums=verify_checksums)
    with ctx.sessions() as session, session.begin():
        record_audit(
            session,
            actor=principal.username,
            action="recording.reconciled",
            object_type="recording",
            object_id="*",
            details={"counts": report.counts},
        )
    return report.to_dict()


@router.get(
    "/recordings/play/{token}",
    summary="Play (or with download=1 download) through a replay link; no other credentials",
    responses={206: {"description": "a byte range"}, 403: {}, 416: {}},
)
def play(
    token: str,
    request: Request,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    download: bool = False,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    remote = _remote(request)
    try:
        claims = links.verify(ctx.settings.secret_key, token, time.time())
    except LinkRefused as exc:
        audit(
            ctx,
            actor="(link)",
            action="recording.denied",
            recording_id=_claimed_recording(token),
            details={"reason": exc.details.get("reason"), "via": "link"},
            remote_addr=remote,
        )
        raise
    try:
        return _play(ctx, claims, download, range_header, authorization, remote)
    except (Forbidden, NotFound, Unauthorized) as exc:
        audit(
            ctx,
            actor=str(claims.user_id),
            action="recording.denied",
            recording_id=claims.recording_id,
            details={"reason": exc.error_id, "message": exc.message, "via": "link"},
            remote_addr=remote,
        )
        raise


def _claimed_recording(token: str) -> str:
    """The recording id a refused link claims (for the audit entry only; not trusted)."""
    try:
        body = token.split(".", 1)[0]
        claimed = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return str(claimed.get("r", "?"))[:64]
    except (ValueError, AttributeError):  # a garbled link: nothing to name
        return "?"


def _play(
    ctx: AppContext,
    claims: links.LinkClaims,
    download: bool,
    range_header: str | None,
    authorization: str | None,
    remote: str | None,
) -> Response:
    principal = principal_for(ctx, claims.user_id)
    if authorization:
        presenter = credentials_from_header(ctx, authorization, source=remote or "unknown")
        if presenter.user_id != claims.user_id:
            raise LinkRefused(
                "this replay link belongs to another user",
                details={"reason": "other-user", "presented_by": presenter.username},
            )
    with ctx.sessions() as session:
        recording = session.get(Recording, claims.recording_id)
        if recording is None or recording.deleted_at is not None:
            raise NotFound(
                f"recording {claims.recording_id!r} not found", error_id=RECORDING_NOT_FOUND
            )
        call_agent = session.get(Call, recording.call_id)
        if not access.may_play(principal, recording, call_agent.agent_id if call_agent else None):
            raise Forbidden(
                "you may no longer listen to this recording", error_id=RECORDING_FORBIDDEN
            )
        if download and not access.may_download(principal):
            raise Forbidden(
                "only shift leads, QA and admins may download recordings",
                error_id=RECORDING_FORBIDDEN,
            )
        source = playback.source_for(ctx, session, recording, claims.format)
    size = playback.size_of(source, recording.id)
    byte_range = playback.parse_range(range_header, size) if range_header else None
    audit(
        ctx,
        actor=principal.username,
        action="recording.download" if download else "recording.play",
        recording_id=recording.id,
        details={
            "range": list(byte_range) if byte_range else [0, size - 1],
            "ranged": byte_range is not None,
            "bytes": size,
            "format": source.format,
            "call_id": recording.call_id,
            "via": "link",
        },
        remote_addr=remote,
    )
    return playback.respond(
        source, size=size, byte_range=byte_range, filename=recording.id, download=download
    )


def _load_audited(
    ctx: AppContext, principal: Principal, recording_id: str, request: Request, *, via: str
) -> Recording:
    """:func:`_load`, a refusal written to the audit log (its error id, and how it came)."""
    try:
        return _load(ctx, principal, recording_id)
    except CallCenterError as exc:
        audit(
            ctx,
            actor=principal.username,
            action="recording.denied",
            recording_id=recording_id,
            details={"reason": exc.error_id, "via": via},
            remote_addr=_remote(request),
        )
        raise


def _load(ctx: AppContext, principal: Principal, recording_id: str) -> Recording:
    """A recording the principal may hear; someone else's is 404 to an agent."""
    access.search_scope(principal)  # department staff: 403
    with ctx.sessions() as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.deleted_at is not None:
            raise NotFound(f"recording {recording_id!r} not found", error_id=RECORDING_NOT_FOUND)
        call = session.get(Call, recording.call_id)
        if not access.may_play(principal, recording, call.agent_id if call else None):
            raise NotFound(f"recording {recording_id!r} not found", error_id=RECORDING_NOT_FOUND)
        session.expunge(recording)
        return recording


@router.get("/recordings/{recording_id}", response_model=RecordingPublic)
def get_recording(
    recording_id: str,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
) -> RecordingPublic:
    r = _load(ctx, principal, recording_id)
    return RecordingPublic(
        id=r.id,
        call_id=r.call_id,
        duration_seconds=r.duration_seconds,
        bytes=r.bytes,
        sha256=r.sha256,
        status=r.status,
        audio_url=f"/api/v1/recordings/{r.id}/audio",
        paused_spans=[PausedSpan.model_validate(span) for span in r.paused_spans or []],
    )


@router.get(
    "/recordings/{recording_id}/audio",
    summary="The WAV with the caller's credentials (HTTP Range supported); audited",
)
def get_audio(
    recording_id: str,
    request: Request,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    recording = _load_audited(ctx, principal, recording_id, request, via="audio")
    source = playback.wav_source(ctx, recording)
    size = playback.size_of(source, recording.id)
    byte_range = playback.parse_range(range_header, size) if range_header else None
    audit(
        ctx,
        actor=principal.username,
        action="recording.play",
        recording_id=recording.id,
        details={
            "range": list(byte_range) if byte_range else [0, size - 1],
            "ranged": byte_range is not None,
            "bytes": size,
            "format": "wav",
            "call_id": recording.call_id,
        },
        remote_addr=_remote(request),
    )
    return playback.respond(
        source, size=size, byte_range=byte_range, filename=recording.id, download=False
    )


@router.post(
    "/recordings/{recording_id}/link",
    response_model=LinkPublic,
    summary="A short-lived replay link for this user (plays without other credentials)",
)
def create_link(
    recording_id: str,
    request: Request,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
    body: LinkRequest | None = None,
) -> LinkPublic:
    recording = _load_audited(ctx, principal, recording_id, request, via="link-request")
    with ctx.sessions() as session:
        fmt = (body.format if body else None) or playback.default_format(session, recording)
        playback.source_for(ctx, session, recording, fmt)  # 404 when that format is not there
    expires = int(time.time()) + ctx.settings.recording_storage.link_ttl_seconds
    token = links.sign(
        ctx.settings.secret_key,
        links.LinkClaims(recording.id, principal.user_id, fmt, expires),
    )
    url = f"/api/v1/recordings/play/{token}"
    return LinkPublic(
        url=url,
        expires_at=datetime.fromtimestamp(expires, UTC),
        format=fmt,
        download_url=f"{url}?download=1" if access.may_download(principal) else None,
    )


@router.get(
    "/recordings/{recording_id}/media",
    response_model=MediaPublic,
    summary="What post-processing measured: duration, silence share, sizes, checksums, peaks",
)
def get_media(
    recording_id: str,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
) -> MediaPublic:
    from recordings.processing import PEAK_SECONDS

    _load(ctx, principal, recording_id)
    with ctx.sessions() as session:
        media = session.get(RecordingMedia, recording_id)
        if media is None:
            raise NotFound(
                f"recording {recording_id!r} has not been post-processed yet",
                error_id=RECORDING_NOT_PROCESSED,
            )
        return MediaPublic(
            recording_id=media.recording_id,
            problem=media.problem,
            duration_seconds=media.duration_seconds,
            silence_share=media.silence_share,
            wav_bytes=media.wav_bytes,
            wav_sha256=media.wav_sha256,
            audio_format=media.audio_format,
            audio_bytes=media.audio_bytes,
            audio_sha256=media.audio_sha256,
            audio_verified=media.audio_verified,
            peak_seconds=PEAK_SECONDS,
            peaks=list(media.peaks or []),
        )


@router.put(
    "/recordings/{recording_id}/legal-hold",
    summary="Put a recording on legal hold (never deleted by retention or erasure) or release it",
)
def set_legal_hold(
    recording_id: str,
    body: LegalHold,
    request: Request,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(require(Role.lead, Role.qa))],
) -> dict[str, Any]:
    with ctx.sessions() as session, session.begin():
        recording = session.get(Recording, recording_id)
        if recording is None or recording.deleted_at is not None:
            raise NotFound(f"recording {recording_id!r} not found", error_id=RECORDING_NOT_FOUND)
        recording.legal_hold = body.hold
        record_audit(
            session,
            actor=principal.username,
            action="recording.legal_hold" if body.hold else "recording.legal_hold_released",
            object_type="recording",
            object_id=recording_id,
            details={"reason": body.reason},
            remote_addr=_remote(request),
        )
    return {"id": recording_id, "legal_hold": body.hold}


@router.post(
    "/recordings/erasure",
    summary="Erase what is kept about a caller's number: recordings (unless on legal hold), "
    "keyed-in digits, the number in call records, screen-pop data; audited per deletion",
)
def erase(
    body: ErasureRequest,
    request: Request,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(require(Role.admin))],
) -> dict[str, Any]:
    result = retention.erase_number(
        ctx,
        body.number,
        actor=principal.username,
        reason=body.reason,
        remote_addr=_remote(request),
    )
    return {"number_fingerprint": retention.number_fingerprint(body.number), **result.to_dict()}
