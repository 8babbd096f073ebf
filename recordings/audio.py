"""Audio facts and the browser transcode, on the files the engine writes (8 kHz mono 16-bit).

- ``analyse``: duration from the data length, the share of 20 ms frames below the silence
  level, and the waveform peaks the player draws (one per ``PEAK_SECONDS``).
- ``transcode``: Opus in Ogg with ``opusenc`` (opus-tools), about 16 kbit/s for telephone
  speech: a tenth of the WAV. It is *verified* by decoding it back with ``opusdec`` and
  comparing the decoded length with the original's; only then may the caller rely on it.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ivr import wav

FRAME_SECONDS = 0.02
PEAK_SECONDS = 0.1
# a 20 ms frame whose loudest sample stays under this (about -40 dBFS) counts as silence
SILENCE_LEVEL = 328
OPUS_BITRATE_KBPS = 16
# the decoded transcode may differ from the original by at most this much (Opus frames)
LENGTH_TOLERANCE_SECONDS = 0.1


class TranscodeFailed(Exception):
    """The transcoder is missing, failed, or its output did not decode to the same length."""


@dataclass(frozen=True)
class Analysis:
    duration: float
    silence_share: float
    peaks: list[int]


def analyse(path: Path) -> Analysis:
    pcm, rate = wav.samples(path)
    count = len(pcm)
    frame = max(int(rate * FRAME_SECONDS), 1)
    frames = silent = 0
    for start in range(0, count, frame):
        chunk = pcm[start : start + frame]
        frames += 1
        if max(chunk) < SILENCE_LEVEL and -min(chunk) < SILENCE_LEVEL:
            silent += 1
    bucket = max(int(rate * PEAK_SECONDS), 1)
    peaks = []
    for start in range(0, count, bucket):
        chunk = pcm[start : start + bucket]
        loudest = max(max(chunk), -min(chunk))
        peaks.append(min(100, round(loudest * 100 / 32768)))
    return Analysis(
        duration=round(count / rate, 3) if rate else 0.0,
        silence_share=round(silent / frames, 4) if frames else 1.0,
        peaks=peaks,
    )


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise TranscodeFailed(f"{name} is not installed (Debian package opus-tools)")
    return found


def transcode(source: Path, target: Path) -> None:
    """Opus in Ogg from a WAV; raises TranscodeFailed with the tool's own message."""
    run = subprocess.run(
        [
            _tool("opusenc"),
            "--quiet",
            "--bitrate",
            str(OPUS_BITRATE_KBPS),
            str(source),
            str(target),
        ],
        capture_output=True,
        timeout=600,
        check=False,
    )
    if run.returncode != 0 or not target.is_file():
        raise TranscodeFailed(f"opusenc failed ({run.returncode}): {run.stderr.decode()[-300:]}")


def verify_transcode(original: Path, encoded: Path, scratch: Path) -> float:
    """Decode ``encoded`` and check its length against ``original``; the decoded length."""
    decoded = scratch / "verify.wav"
    run = subprocess.run(
        [_tool("opusdec"), "--quiet", "--no-dither", "--rate", "8000", str(encoded), str(decoded)],
        capture_output=True,
        timeout=600,
        check=False,
    )
    if run.returncode != 0 or not decoded.is_file():
        raise TranscodeFailed(
            f"opusdec could not decode the transcode: {run.stderr.decode()[-300:]}"
        )
    try:
        expected = wav.facts(original).duration
        got = wav.facts(decoded).duration
    except ValueError as exc:
        raise TranscodeFailed(f"the decoded transcode is not a WAV: {exc}") from None
    finally:
        decoded.unlink(missing_ok=True)
    if abs(got - expected) > LENGTH_TOLERANCE_SECONDS:
        raise TranscodeFailed(
            f"the transcode decodes to {got:.3f} s, the original is {expected:.3f} s"
        )
    return got
