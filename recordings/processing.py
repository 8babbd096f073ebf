"""Post-processing of one finished recording (run by the worker: ``recordings.jobs``).

1. find the WAV (in the store, or where the engine left it) and hash it; a hash that differs
   from the engine's ``recording_stopped`` SHA-256 is flagged ``checksum-mismatch`` and the
   file is left exactly as it is (never transcoded, never deleted);
2. measure duration and silence share, compute the waveform peaks;
3. transcode to Opus in a scratch directory and verify it by decoding;
4. put the WAV and the transcode into the store, check their sizes there, and only then
   record keys, sizes and checksums (and, for a remote store, drop the engine's local copy).

Safe to run twice: a recording whose verified transcode is in the store is left alone; a
crash at any step leaves the original WAV where it was and the row unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from callcenter.context import AppContext
from callcenter.db import utcnow
from cti.models import Call
from recordings import audio
from recordings.models import Recording, RecordingMedia
from recordings.playback import engine_file, store
from recordings.storage import LocalStorage, MissingObject, Storage, StorageError

log = logging.getLogger("recordings.processing")

PEAK_SECONDS = audio.PEAK_SECONDS


@dataclass(frozen=True)
class Outcome:
    recording_id: str
    result: str  # processed, already-processed, not-finished, gone, file-missing,
    #              checksum-mismatch, transcode-failed


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()


def retention_days(ctx: AppContext, queue_code: str | None) -> int:
    queues = ctx.config.queues
    queue = queues.queues.get(queue_code) if queue_code else None
    if queue is not None and queue.recording_retention_days is not None:
        return queue.recording_retention_days
    return queues.recording_retention_days


def _fetch_wav(
    ctx: AppContext, recording: Recording, scratch: Path
) -> tuple[Path, str, bool] | None:
    """(a local path of the WAV, its store key, whether it is already in the store)."""
    storage = store(ctx)
    if recording.storage_key:
        try:
            if isinstance(storage, LocalStorage):
                path = storage.path(recording.storage_key)
                if path.is_file():
                    return path, recording.storage_key, True
            else:
                path = scratch / "original.wav"
                with path.open("wb") as out:
                    for chunk in storage.read(recording.storage_key):
                        out.write(chunk)
                return path, recording.storage_key, True
        except MissingObject:
            pass
    local, key = engine_file(ctx, recording)
    path = local.path(key)  # type: ignore[attr-defined]
    if path.is_file():
        return path, key, False
    return None


def _save(ctx: AppContext, recording_id: str, media: RecordingMedia, **changes: object) -> None:
    with ctx.sessions() as session, session.begin():
        session.merge(media)
        recording = session.get(Recording, recording_id)
        if recording is not None:
            for name, value in changes.items():
                setattr(recording, name, value)


def _copy_call_facts(ctx: AppContext, recording: Recording) -> dict[str, object]:
    with ctx.sessions() as session:
        call = session.get(Call, recording.call_id)
    facts: dict[str, object] = {}
    if call is not None:
        facts = {
            "agent_id": call.agent_id,
            "caller_number": call.caller_number,
            "queue_code": call.queue_code,
        }
    queue = facts.get("queue_code") or recording.queue_code
    facts["retention_until"] = recording.started_at + timedelta(
        days=retention_days(ctx, str(queue) if queue else None)
    )
    return facts


def _in_store(storage: Storage, key: str, size: int) -> bool:
    try:
        return storage.size(key) == size
    except MissingObject:
        return False


class _Flagged(Exception):
    """The recording cannot be processed: its media row keeps ``problem`` (the outcome), and
    the message is logged once the row is saved."""

    def __init__(self, problem: str, level: int, message: str, *args: object) -> None:
        super().__init__(problem)
        self.problem = problem
        self.level = level
        self.message = message
        self.args_ = args


def _load(ctx: AppContext, recording_id: str) -> Outcome | tuple[Recording, RecordingMedia | None]:
    """The finished recording and its media row (detached), or why there is nothing to do."""
    with ctx.sessions() as session:
        recording = session.get(Recording, recording_id)
        if recording is None or recording.deleted_at is not None:
            return Outcome(recording_id, "gone")
        if recording.status == "recording":
            return Outcome(recording_id, "not-finished")
        existing = session.get(RecordingMedia, recording_id)
        session.expunge(recording)
        if existing is not None:
            session.expunge(existing)
    return recording, existing


def _already_processed(storage: Storage, existing: RecordingMedia | None) -> bool:
    return bool(
        existing is not None
        and existing.audio_verified
        and existing.audio_key
        and existing.problem is None
        and _in_store(storage, existing.audio_key, existing.audio_bytes)
    )


def process(ctx: AppContext, recording_id: str) -> Outcome:
    loaded = _load(ctx, recording_id)
    if isinstance(loaded, Outcome):
        return loaded
    recording, existing = loaded
    storage = store(ctx)
    if _already_processed(storage, existing):
        return Outcome(recording_id, "already-processed")
    facts = _copy_call_facts(ctx, recording)
    media = RecordingMedia(recording_id=recording_id, processed_at=utcnow(), peaks=[])
    with tempfile.TemporaryDirectory(prefix="rec-") as tmp:
        try:
            _process_wav(ctx, storage, recording, media, facts, Path(tmp))
        except _Flagged as flagged:
            media.problem = flagged.problem
            _save(ctx, recording_id, media, **facts)
            log.log(flagged.level, flagged.message, *flagged.args_)
            return Outcome(recording_id, flagged.problem)
    log.info(
        "recording %s processed: %.1f s, %.0f%% silence, %d -> %d bytes",
        recording_id,
        media.duration_seconds,
        media.silence_share * 100,
        media.wav_bytes,
        media.audio_bytes,
    )
    return Outcome(recording_id, "processed")


def _process_wav(
    ctx: AppContext,
    storage: Storage,
    recording: Recording,
    media: RecordingMedia,
    facts: dict[str, object],
    scratch: Path,
) -> None:
    """Check, analyse, transcode and archive the WAV; raises ``_Flagged`` at a problem."""
    recording_id = recording.id
    found = _fetch_wav(ctx, recording, scratch)
    if found is None:
        raise _Flagged("file-missing", logging.WARNING, "recording %s: the WAV is missing",
                       recording_id)  # fmt: skip
    wav_path, wav_key, stored = found
    media.wav_key = wav_key
    media.wav_bytes = wav_path.stat().st_size
    media.wav_sha256 = sha256_of(wav_path)
    if recording.sha256 and media.wav_sha256 != recording.sha256:
        raise _Flagged(
            "checksum-mismatch",
            logging.ERROR,
            "recording %s: SHA-256 %s differs from the engine's %s; kept, flagged",
            recording_id,
            media.wav_sha256,
            recording.sha256,
        )
    try:
        analysis = audio.analyse(wav_path)
    except ValueError as exc:
        raise _Flagged("unreadable", logging.ERROR, "recording %s: not a readable WAV: %s",
                       recording_id, exc) from None  # fmt: skip
    media.duration_seconds = analysis.duration
    media.silence_share = analysis.silence_share
    media.peaks = analysis.peaks
    encoded = scratch / "audio.opus"
    try:
        audio.transcode(wav_path, encoded)
        audio.verify_transcode(wav_path, encoded, scratch)
    except audio.TranscodeFailed as exc:
        raise _Flagged("transcode-failed", logging.ERROR, "recording %s: %s",
                       recording_id, exc) from None  # fmt: skip
    _archive(ctx, storage, media, facts, wav_path, stored, encoded)


def _archive(
    ctx: AppContext,
    storage: Storage,
    media: RecordingMedia,
    facts: dict[str, object],
    wav_path: Path,
    stored: bool,
    encoded: Path,
) -> None:
    """Both files in the store, checked there, and the verified media row saved."""
    recording_id, wav_key = media.recording_id, str(media.wav_key)
    audio_key = wav_key.rsplit(".", 1)[0] + ".opus"
    storage.put(audio_key, encoded)
    if not stored:
        storage.put(wav_key, wav_path)
    if not _in_store(storage, audio_key, encoded.stat().st_size) or not _in_store(
        storage, wav_key, media.wav_bytes
    ):
        raise StorageError(f"recording {recording_id}: the store did not keep what was put")
    media.audio_key = audio_key
    media.audio_format = "opus"
    media.audio_bytes = encoded.stat().st_size
    media.audio_sha256 = sha256_of(encoded)
    media.audio_verified = True
    _save(ctx, recording_id, media, storage_key=wav_key, **facts)
    if not isinstance(storage, LocalStorage) and not stored:
        # the remote store holds the verified copy now: the engine's disk is not the archive
        wav_path.unlink(missing_ok=True)
