"""Serving a recording's bytes: which file (WAV or its Opus transcode, from which store),
single HTTP ranges (206 / 416), and the response headers a browser's <audio> needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session

from callcenter.context import AppContext
from callcenter.errors import NotFound
from callcenter.service_keys import Service
from recordings.errors import RECORDING_FILE_MISSING, RECORDING_NOT_PROCESSED, RangeNotSatisfiable
from recordings.models import Recording, RecordingMedia
from recordings.storage import LocalStorage, MissingObject, Storage, key_for, storage_for

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
MEDIA_TYPES = {"wav": "audio/wav", "opus": "audio/ogg"}
EXTENSIONS = {"wav": "wav", "opus": "opus"}


@dataclass(frozen=True)
class Source:
    storage: Storage
    key: str
    format: str

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.format]


def store(ctx: AppContext) -> Storage:
    """The configured recording store, built once per process."""
    return ctx.services.get_or_make(STORAGE, lambda: storage_for(ctx.settings))


STORAGE: Service[Storage] = Service("recording storage")


def engine_file(ctx: AppContext, recording: Recording) -> tuple[Storage, str]:
    """The WAV as the engine left it in the local recordings directory."""
    root = Path(ctx.settings.recordings_dir)
    return LocalStorage(root), key_for(ctx.settings, recording.path)


def wav_source(ctx: AppContext, recording: Recording) -> Source:
    if recording.storage_key:
        return Source(store(ctx), recording.storage_key, "wav")
    local, key = engine_file(ctx, recording)
    return Source(local, key, "wav")


def default_format(session: Session, recording: Recording) -> str:
    media = session.get(RecordingMedia, recording.id)
    return "opus" if media is not None and media.audio_verified and media.audio_key else "wav"


def source_for(ctx: AppContext, session: Session, recording: Recording, fmt: str) -> Source:
    if fmt == "opus":
        media = session.get(RecordingMedia, recording.id)
        if media is None or not media.audio_verified or not media.audio_key:
            raise NotFound(
                f"recording {recording.id!r} has no verified Opus transcode yet: ask for 'wav'",
                error_id=RECORDING_NOT_PROCESSED,
            )
        return Source(store(ctx), media.audio_key, "opus")
    return wav_source(ctx, recording)


def parse_range(header: str, size: int) -> tuple[int, int]:
    """One ``bytes=a-b`` / ``a-`` / ``-n`` range, clipped to the file; else 416."""
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise RangeNotSatisfiable(
            f"unsupported Range {header!r}: use a single 'bytes=start-end' range",
            details={"size": size},
        )
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        if int(last) == 0:
            raise RangeNotSatisfiable(f"Range {header!r} asks for no bytes", details={"size": size})
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(
            f"Range {header!r} is outside the file ({size} bytes)", details={"size": size}
        )
    return start, end


def size_of(source: Source, recording_id: str) -> int:
    try:
        return source.storage.size(source.key)
    except MissingObject:
        raise NotFound(
            f"recording {recording_id!r}: the audio file is missing",
            error_id=RECORDING_FILE_MISSING,
        ) from None


def respond(
    source: Source,
    *,
    size: int,
    byte_range: tuple[int, int] | None,
    filename: str,
    download: bool,
) -> Response:
    start, end = byte_range if byte_range is not None else (0, size - 1)
    disposition = "attachment" if download else "inline"
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(max(end - start + 1, 0)),
        "Content-Disposition": f'{disposition}; filename="{filename}.{EXTENSIONS[source.format]}"',
        "Cache-Control": "private, no-store",
    }
    status = 200
    if byte_range is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    body = source.storage.read(source.key, start, end) if size else iter([b""])
    return StreamingResponse(
        body, status_code=status, media_type=source.media_type, headers=headers
    )
