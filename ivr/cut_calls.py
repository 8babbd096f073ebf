"""Calls whose slot is gone: a slot that died with its call, or a previous life of this node
killed with its slots. Each is reported ended (``slot_failed`` / ``node_failed``) and its
recording repaired.

The events go out through a small outbox: Redis away (restarting) must not lose them or stop
the engine, so what Redis refuses is kept, in order, and published before anything else the
next time round the supervisor's loop.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import redis

from callcenter.redis_keys import Keys
from callcenter.streams import CallEvent, EventType
from ivr import node_calls, wav

log = logging.getLogger("ivr.supervisor")


class CutCalls:
    def __init__(self, client: Any, keys: Keys, node_id: str) -> None:
        self.r = client
        self.keys = keys
        self.node_id = node_id
        # events about dead slots' calls that Redis did not take (away): published in order
        # before anything else the next time round the loop
        self.unpublished: list[CallEvent] = []

    def account(self, slot: str, call: dict[str, Any], reason: str) -> None:
        """A call whose slot is gone: ``slot_failed``, the recording repaired, ``call_ended``."""
        call_id = call["call_id"]

        def publish(type_: str, data: dict[str, Any]) -> None:
            event = CallEvent(type=type_, call_id=call_id, slot=slot, node="supervisor", data=data)
            self.unpublished.append(event)
            self.flush()

        publish(EventType.slot_failed, {"reason": reason})
        if call.get("path") and call.get("recording_id"):
            publish(EventType.recording_stopped, _repaired_recording(call))
        publish(
            EventType.call_ended,
            {
                "reason": "slot_failed",
                "outcome": "slot_failed",
                "duration": round(time.time() - call["started"], 3),
            },
        )
        with contextlib.suppress(Exception):
            pipe = self.r.pipeline(transaction=False)
            pipe.expire(self.keys.call_slot(call_id), 3600)
            node_calls.forget(pipe, self.keys, self.node_id, call_id)
            pipe.execute()

    def flush(self) -> None:
        """Publish the kept events in order; stop at the first Redis refuses (kept for later)."""
        while self.unpublished:
            event = self.unpublished[0]
            try:
                self.r.xadd(self.keys.events, event.to_fields(), maxlen=500_000, approximate=True)
            except redis.RedisError as exc:
                log.warning("%s of %s kept for later (Redis: %s)", event.type, event.call_id, exc)
                return
            self.unpublished.pop(0)

    def reap_previous_life(self) -> None:
        """Calls this node's index still holds before any of its slots runs were carried by
        a previous life of this node that ended without reporting them (killed with its
        slots): end them now (``node_failed``) rather than leave them open."""
        try:
            node_calls.reap(self.r, self.keys, self.node_id, by="node restarted")
        except redis.RedisError:
            log.warning("ending a previous life's calls failed", exc_info=True)


def _repaired_recording(call: dict[str, Any]) -> dict[str, Any]:
    """The ``recording_stopped`` data of a cut call's recording, its WAV header repaired."""
    path = Path(call["path"])
    try:
        facts = wav.repair(path)
    except (OSError, ValueError) as exc:
        log.exception("repairing %s failed", path)
        return {
            "recording_id": call["recording_id"],
            "path": str(path),
            "duration": 0,
            "bytes": 0,
            "sha256": None,
            "status": "failed",
            "error": str(exc),
        }
    return {
        "recording_id": call["recording_id"],
        "path": str(path),
        "duration": facts.duration,
        "bytes": facts.bytes,
        "sha256": facts.sha256,
        "status": "repaired",
        "incomplete": True,
    }
