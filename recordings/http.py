"""``GET /api/v1/recordings/{id}`` and ``.../audio``: the WAV with HTTP Range, audited.

Every playback request (full or ranged) writes an audit_log entry naming the user, the
recording and the byte range, so QA access to conversations is traceable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from callcenter.audit import record as record_audit
from callcenter.auth import Principal, current_user, get_ctx
from callcenter.context import AppContext
from callcenter.errors import CallCenterError, Forbidden, NotFound
from callcenter.models import Role
from cti.models import Call
from recordings.models import Recording

router = APIRouter(tags=["recordings"])

CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(CallCenterError):
    status_code = 416
    error_id = "range-not-satisfiable"


class RecordingPublic(BaseModel):
    id: str
    call_id: str
    duration_seconds: float
    bytes: int
    sha256: str | None
    status: str
    audio_url: str


def _load(ctx: AppContext, principal: Principal, recording_id: str) -> Recording:
    with ctx.sessions() as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.deleted_at is not None:
            raise NotFound(f"recording {recording_id!r} not found")
        if principal.role not in (Role.lead, Role.qa, Role.admin):
            call = session.get(Call, recording.call_id)
            own = (
                principal.role is Role.agent
                and principal.agent_id is not None
                and call is not None
                and call.agent_id == principal.agent_id
            )
            if not own:
                if principal.role is Role.agent:
                    raise NotFound(f"recording {recording_id!r} not found")
                raise Forbidden("only shift leads, QA, admins and the call's agent may listen")
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
    )


def _parse_range(header: str, size: int) -> tuple[int, int]:
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise RangeNotSatisfiable(
            f"unsupported Range {header!r}: use a single 'bytes=start-end' range",
            details={"size": size},
        )
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(
            f"Range {header!r} is outside the file ({size} bytes)", details={"size": size}
        )
    return start, end


def _stream(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk


@router.get("/recordings/{recording_id}/audio", summary="The WAV file (HTTP Range supported)")
def get_audio(
    recording_id: str,
    request: Request,
    ctx: Annotated[AppContext, Depends(get_ctx)],
    principal: Annotated[Principal, Depends(current_user)],
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    recording = _load(ctx, principal, recording_id)
    path = Path(recording.path)
    if not path.is_file():
        raise NotFound(f"recording {recording_id!r}: the audio file is missing on disk")
    size = path.stat().st_size
    start, end = _parse_range(range_header, size) if range_header else (0, size - 1)
    with ctx.sessions() as session, session.begin():
        record_audit(
            session,
            actor=principal.username,
            action="recording.play",
            object_type="recording",
            object_id=recording.id,
            details={"range": [start, end], "bytes": size, "call_id": recording.call_id},
            remote_addr=request.client.host if request.client else None,
        )
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start + 1),
        "Content-Disposition": f'inline; filename="{recording.id}.wav"',
    }
    status = 200
    if range_header:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(
        _stream(path, start, end), status_code=status, media_type="audio/wav", headers=headers
    )
