"""Post-processing throughput of one worker, next to the transcoder alone.

N recordings of a given length (a tone with pauses, 8 kHz mono 16-bit, as the engine writes)
are made through the call-record consumer's own ``apply_event``, then:

- baseline: ``opusenc`` alone on each WAV (what the transcode costs by itself);
- the job: ``recordings.jobs.process_recording(id)`` on each, one after the other in this
  process as one RQ worker runs them (hash, analysis, transcode, decode check, store, rows).

Prints recordings per minute for both and the share of the job spent outside the encoder.

Usage:
  .venv/bin/python bench/recordings_processing.py --count 20 --seconds 180
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from callcenter import runtime  # noqa: E402
from callcenter.context import build_context  # noqa: E402
from callcenter.demo import seed_demo  # noqa: E402
from callcenter.migrate import upgrade  # noqa: E402
from callcenter.streams import CallEvent  # noqa: E402
from config.settings import Settings  # noqa: E402
from ivr import wav  # noqa: E402
from ivr.records import apply_event  # noqa: E402
from recordings import jobs  # noqa: E402

REDIS_URL = os.environ.get("CALLCENTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def speech_like(seconds: int, rate: int = 8000) -> bytes:
    """Bursts of a tone (0.8 s) and pauses (0.4 s): talk-like energy and silence."""
    samples = array("h")
    for n in range(seconds * rate):
        in_burst = (n % int(1.2 * rate)) < int(0.8 * rate)
        samples.append(int(9000 * math.sin(2 * math.pi * 300 * n / rate)) if in_burst else 0)
    return samples.tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=180, help="length of each recording")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-processing-") as tmp:
        state = Path(tmp)
        settings = Settings(environment="test", state_dir=state, redis_url=REDIS_URL)
        upgrade(settings.database_url)
        ctx = build_context(settings)
        ctx.redis.flushdb()
        seed_demo(ctx)
        runtime.set_context(ctx)
        pcm = speech_like(args.seconds)
        ids = []
        start = datetime.now(UTC) - timedelta(hours=1)
        with ctx.sessions() as session, session.begin():
            for n in range(args.count):
                call_id = f"bench-{n:04d}"
                path = settings.recordings_dir / f"{start:%Y/%m/%d}/{call_id}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(wav.header(len(pcm)) + pcm)
                facts = wav.facts(path)
                at = start.isoformat()
                timeline: list[tuple[str, dict[str, Any]]] = [
                    ("call_arrived", {"caller": "13800138000"}),
                    ("agent_answered", {"agent_uri": "sip:1001@127.0.0.1"}),
                    ("recording_started", {"recording_id": call_id, "path": str(path)}),
                    (
                        "recording_stopped",
                        {
                            "recording_id": call_id,
                            "path": str(path),
                            "duration": facts.duration,
                            "bytes": facts.bytes,
                            "sha256": facts.sha256,
                        },
                    ),
                ]
                for i, (kind, data) in enumerate(timeline):
                    event = CallEvent(type=kind, call_id=call_id, at=at, data=dict(data))
                    apply_event(session, f"1-{n:04d}{i}", event)
                ids.append((call_id, path))

        begin = time.perf_counter()
        for _call_id, path in ids:
            subprocess.run(
                ["opusenc", "--quiet", "--bitrate", "16", str(path), str(state / "baseline.opus")],
                check=True,
            )
        encoder = time.perf_counter() - begin

        begin = time.perf_counter()
        results = [jobs.process_recording(call_id)["result"] for call_id, _ in ids]
        job = time.perf_counter() - begin
        assert set(results) == {"processed"}, results
        runtime.set_context(None)
        ctx.close()
    minutes_of_audio = args.count * args.seconds / 60
    print(
        json.dumps(
            {
                "recordings": args.count,
                "seconds_each": args.seconds,
                "baseline opusenc alone": {
                    "seconds": round(encoder, 2),
                    "recordings_per_minute": round(args.count / encoder * 60, 1),
                },
                "process_recording job": {
                    "seconds": round(job, 2),
                    "recordings_per_minute": round(args.count / job * 60, 1),
                    "audio_minutes_per_minute": round(minutes_of_audio / job * 60, 1),
                },
                "job / encoder": round(job / encoder, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
