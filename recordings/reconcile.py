"""Reconciliation: files and rows still agree.

- every answered call has a recording (``call-without-recording``);
- every recording row has its file (``file-missing``) with the engine's SHA-256
  (``checksum-mismatch``), and a verified transcode is still in the store
  (``transcode-missing``);
- every file has its row (``file-without-row``; a file of a deleted recording:
  ``deleted-recording-file``).

Nothing is repaired or deleted here: the findings are listed (``GET
/api/v1/recordings/reconciliation``, kept in Redis until the next run) for a person to act on.
Runs on demand (API, ``callcenter recordings-reconcile``) and daily from the worker's scan.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.context import AppContext
from callcenter.db import utcnow
from cti.models import Call
from recordings.models import Recording, RecordingMedia
from recordings.playback import engine_file, store
from recordings.storage import LocalStorage, MissingObject, Storage, StorageError

log = logging.getLogger("recordings.reconcile")

KINDS = (
    "call-without-recording",
    "file-missing",
    "checksum-mismatch",
    "transcode-missing",
    "file-without-row",
    "deleted-recording-file",
)
# the stored report keeps this many findings (the counts are always complete)
MAX_FINDINGS = 5000
# how the wallboard's alert names each kind (zh-CN, en)
KIND_NAMES = {
    "call-without-recording": ("已接通话无录音", "answered calls without a recording"),
    "file-missing": ("录音文件缺失", "recording files missing"),
    "checksum-mismatch": ("校验和不符", "checksum mismatches"),
    "transcode-missing": ("转码文件缺失", "transcodes missing"),
    "file-without-row": ("无记录的文件", "files without a row"),
    "deleted-recording-file": ("已删除录音的残留文件", "files of deleted recordings"),
}


@dataclass(frozen=True)
class Finding:
    kind: str
    recording_id: str | None = None
    call_id: str | None = None
    key: str | None = None
    detail: str = ""


@dataclass
class Report:
    ran_at: datetime
    checked_calls: int = 0
    checked_recordings: int = 0
    checked_files: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for finding in self.findings:
            counts[finding.kind] += 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "ran_at": self.ran_at.isoformat(),
            "checked_calls": self.checked_calls,
            "checked_recordings": self.checked_recordings,
            "checked_files": self.checked_files,
            "counts": self.counts,
            "findings": [asdict(f) for f in self.findings[:MAX_FINDINGS]],
            "truncated": len(self.findings) > MAX_FINDINGS,
        }


def _sha256(storage: Storage, key: str) -> str:
    digest = hashlib.sha256()
    for chunk in storage.read(key):
        digest.update(chunk)
    return digest.hexdigest()


def _wav_location(ctx: AppContext, recording: Recording) -> tuple[Storage, str]:
    if recording.storage_key:
        return store(ctx), recording.storage_key
    return engine_file(ctx, recording)


def reconcile(ctx: AppContext, *, verify_checksums: bool = True) -> Report:
    report = Report(ran_at=utcnow())
    storage = store(ctx)
    files = _Files()
    with ctx.sessions() as session:
        _check_calls(session, report)
        rows = session.execute(
            select(Recording, RecordingMedia).outerjoin(
                RecordingMedia, RecordingMedia.recording_id == Recording.id
            )
        ).all()
        for recording, media in rows:
            _check_recording(ctx, storage, report, files, recording, media, verify_checksums)
    stores: list[Storage] = [storage]
    local = LocalStorage(ctx.settings.recordings_dir)
    if storage.name != "local":
        stores.append(local)  # files the engine wrote that are not uploaded yet
    for source in stores:
        _check_store(source, report, files)
    return report


@dataclass
class _Files:
    """The (store name, key) of the files rows refer to: live recordings', deleted ones'."""

    referenced: set[tuple[str, str]] = field(default_factory=set)
    deleted: set[tuple[str, str]] = field(default_factory=set)


def _check_calls(session: Session, report: Report) -> None:
    """Every answered and ended call has a recording row."""
    recorded_calls = set(session.scalars(select(Recording.call_id)))
    for call_id in session.scalars(
        select(Call.id).where(Call.answered_at.is_not(None), Call.ended_at.is_not(None))
    ):
        report.checked_calls += 1
        if call_id not in recorded_calls:
            report.findings.append(
                Finding("call-without-recording", call_id=call_id, detail="answered, no row")
            )


def _check_recording(
    ctx: AppContext,
    storage: Storage,
    report: Report,
    files: _Files,
    recording: Recording,
    media: RecordingMedia | None,
    verify_checksums: bool,
) -> None:
    """A recording row's WAV (present, its checksum) and its verified transcode."""
    try:
        where, key = _wav_location(ctx, recording)
    except StorageError as exc:
        report.findings.append(
            Finding("file-missing", recording.id, recording.call_id, None, str(exc))
        )
        return
    keys = [(where.name, key)]
    if media is not None and media.audio_key:
        keys.append((storage.name, media.audio_key))
    if recording.deleted_at is not None:
        files.deleted.update(keys)
        return
    files.referenced.update(keys)
    if recording.status == "recording":
        return  # still being written
    report.checked_recordings += 1
    if not where.exists(key):
        report.findings.append(
            Finding("file-missing", recording.id, recording.call_id, key, "no WAV")
        )
        return
    if verify_checksums and recording.sha256:
        actual = _sha256(where, key)
        if actual != recording.sha256:
            report.findings.append(
                Finding(
                    "checksum-mismatch",
                    recording.id,
                    recording.call_id,
                    key,
                    f"engine {recording.sha256}, file {actual}",
                )
            )
    if media is not None and media.audio_verified and media.audio_key:
        _check_transcode(storage, report, recording, media.audio_key)


def _check_transcode(storage: Storage, report: Report, recording: Recording, key: str) -> None:
    try:
        storage.size(key)
    except MissingObject:
        report.findings.append(
            Finding(
                "transcode-missing",
                recording.id,
                recording.call_id,
                key,
                "verified Opus transcode not in the store",
            )
        )


def _check_store(source: Storage, report: Report, files: _Files) -> None:
    """Every file in a store belongs to a live recording row."""
    for key in source.list():
        report.checked_files += 1
        if (source.name, key) in files.referenced:
            continue
        deleted = (source.name, key) in files.deleted
        kind = "deleted-recording-file" if deleted else "file-without-row"
        report.findings.append(Finding(kind, key=key, detail=f"in the {source.name} store"))


def _report_key(ctx: AppContext) -> str:
    return f"{ctx.keys.prefix}:recordings:reconciliation"


def _counts_key(ctx: AppContext) -> str:
    return f"{ctx.keys.prefix}:recordings:reconciliation:counts"


def reconcile_and_store(ctx: AppContext, *, verify_checksums: bool = True) -> Report:
    report = reconcile(ctx, verify_checksums=verify_checksums)
    summary = {"ran_at": report.ran_at.isoformat(), "counts": report.counts}
    pipe = ctx.redis.pipeline()
    pipe.set(_report_key(ctx), json.dumps(report.to_dict(), ensure_ascii=False))
    # the wallboard reads this small summary on every snapshot (not the findings)
    pipe.set(_counts_key(ctx), json.dumps(summary))
    pipe.execute()
    if report.findings:
        log.warning("recording reconciliation: %s", report.counts)
    return report


def last_report(ctx: AppContext) -> dict[str, Any] | None:
    text = ctx.redis.get(_report_key(ctx))
    return None if text is None else dict(json.loads(str(text)))


def wallboard_alert(ctx: AppContext) -> dict[str, Any] | None:
    """The last run's mismatches as one wallboard alert, shown until a run finds none (the
    findings themselves are in ``GET /api/v1/recordings/reconciliation``)."""
    text = ctx.redis.get(_counts_key(ctx))
    if text is None:
        return None
    summary = json.loads(str(text))
    counts = {kind: n for kind, n in dict(summary["counts"]).items() if n}
    if not counts:
        return None
    total = sum(counts.values())
    zh = "、".join(f"{KIND_NAMES.get(k, (k, k))[0]} {n}" for k, n in counts.items())
    en = ", ".join(f"{n} {KIND_NAMES.get(k, (k, k))[1]}" for k, n in counts.items())
    return {
        "kind": "recordings_reconciliation",
        "queue": "all",
        "value": total,
        "threshold": 0,
        "counts": counts,
        "ran_at": summary["ran_at"],
        "zh-CN": f"录音核对发现 {total} 处不一致：{zh}",
        "en": f"Recording reconciliation found {total} mismatches: {en}",
    }
