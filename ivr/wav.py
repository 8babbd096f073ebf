"""WAV facts and repair for recordings (8 kHz mono 16-bit PCM written by pjmedia).

pjmedia writes the RIFF header sizes only when the recorder is destroyed; a slot that dies
leaves a file whose header says 0 bytes of data. The audio itself is plain PCM after the
44-byte header, so the header can be rebuilt from the file length.
"""

from __future__ import annotations

import hashlib
import math
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path

HEADER_BYTES = 44


@dataclass(frozen=True)
class WavFacts:
    path: str
    duration: float
    bytes: int
    sha256: str
    sample_rate: int
    channels: int
    bits: int


def header(data_bytes: int, sample_rate: int = 8000, channels: int = 1, bits: int = 16) -> bytes:
    block_align = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", 36 + data_bytes)
        + b"WAVEfmt "
        + struct.pack(
            "<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block_align, block_align, bits
        )
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def _parse_format(raw: bytes) -> tuple[int, int, int, int]:
    """(sample_rate, channels, bits, data_offset) from a canonical or near-canonical header."""
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    offset = 12
    rate, channels, bits = 8000, 1, 16
    while offset + 8 <= len(raw):
        chunk, size = raw[offset : offset + 4], struct.unpack("<I", raw[offset + 4 : offset + 8])[0]
        if chunk == b"fmt ":
            _fmt, channels, rate, _br, _ba, bits = struct.unpack(
                "<HHIIHH", raw[offset + 8 : offset + 24]
            )
        elif chunk == b"data":
            return rate, channels, bits, offset + 8
        offset += 8 + size + (size & 1)
    raise ValueError("no data chunk in the WAV header")


def facts(path: Path) -> WavFacts:
    """Duration from the data length actually on disk, plus byte count and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        first = handle.read(4096)
        rate, channels, bits, data_offset = _parse_format(first)
        digest.update(first)
        size += len(first)
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
            size += len(chunk)
    data_bytes = max(size - data_offset, 0)
    duration = data_bytes / (rate * channels * bits / 8)
    return WavFacts(str(path), round(duration, 3), size, digest.hexdigest(), rate, channels, bits)


def is_header_consistent(path: Path) -> bool:
    size = path.stat().st_size
    with path.open("rb") as handle:
        raw = handle.read(HEADER_BYTES)
    if len(raw) < HEADER_BYTES or raw[:4] != b"RIFF":
        return False
    riff = struct.unpack("<I", raw[4:8])[0]
    data = struct.unpack("<I", raw[40:44])[0] if raw[36:40] == b"data" else -1
    return riff == size - 8 and data == size - HEADER_BYTES


def repair(path: Path, sample_rate: int = 8000) -> WavFacts:
    """Rewrite the header of a recording whose writer died (sizes from the file length).

    A file shorter than a header (the slot died before pjmedia wrote anything) becomes a
    valid empty WAV. Odd trailing bytes (half a sample) are dropped.
    """
    size = path.stat().st_size if path.exists() else 0
    data_bytes = max(size - HEADER_BYTES, 0)
    data_bytes -= data_bytes % 2
    with path.open("r+b" if path.exists() else "w+b") as handle:
        handle.seek(0)
        handle.write(header(data_bytes, sample_rate))
        handle.truncate(HEADER_BYTES + data_bytes)
    return facts(path)


def samples(path: Path) -> tuple[array[int], int]:
    """16-bit mono samples and the sample rate."""
    raw = path.read_bytes()
    rate, channels, bits, offset = _parse_format(raw[:4096])
    if bits != 16 or channels != 1:
        raise ValueError(f"{path}: expected 16-bit mono, got {bits}-bit {channels} channel(s)")
    pcm = array("h")
    body = raw[offset:]
    pcm.frombytes(body[: len(body) - len(body) % 2])
    return pcm, rate


def rms(pcm: array[int]) -> float:
    if not pcm:
        return 0.0
    return math.sqrt(sum(s * s for s in pcm) / len(pcm))


def tone_power(pcm: array[int], rate: int, frequency: float) -> float:
    """Goertzel power of one frequency, normalised by length (to find a test tone)."""
    if not pcm:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * frequency / rate)
    s_prev = s_prev2 = 0.0
    for sample in pcm:
        s = sample + coeff * s_prev - s_prev2
        s_prev2, s_prev = s_prev, s
    power = s_prev2 * s_prev2 + s_prev * s_prev - coeff * s_prev * s_prev2
    return power / (len(pcm) * len(pcm))
