"""A call recording's file: where the slot's recorder writes it, and its facts once the
recorder is freed (a header pjmedia left inconsistent is repaired). File I/O, no pjsua2."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ivr import wav


def new_path(recordings_dir: str | Path, call_id: str, now: datetime | None = None) -> Path:
    """``<recordings_dir>/YYYY/MM/DD/<call_id>.wav`` (UTC day), its folder created."""
    day = now or datetime.now(UTC)
    directory = Path(recordings_dir) / f"{day:%Y}" / f"{day:%m}" / f"{day:%d}"
    directory.mkdir(parents=True, exist_ok=True)
    return (directory / f"{call_id}.wav").resolve()


def stopped_facts(path: str | Path) -> dict[str, Any]:
    """The finished file's duration, size, hash and status (complete, repaired, failed)."""
    file = Path(path)
    try:
        if wav.is_header_consistent(file):
            facts, status = wav.facts(file), "complete"
        else:
            facts, status = wav.repair(file), "repaired"
    except (OSError, ValueError) as exc:
        return {"duration": 0, "bytes": 0, "sha256": None, "status": "failed", "error": str(exc)}
    return {
        "duration": facts.duration,
        "bytes": facts.bytes,
        "sha256": facts.sha256,
        "status": status,
    }
