"""Which calls each media node carries, so that a node that dies leaves no call unfinished.

A slot adds its call to its node's index when the call arrives (with the recording's path once
it records) and removes it when it publishes ``call_ended``; the supervisor removes a call it
ended for a slot that died. So the index holds exactly the calls whose end nobody has reported.

When a whole node is lost (its host, or the supervisor and its slots killed at once), nothing
on it can publish the end. Whoever notices (the edge when the node's announcement has lapsed
for ``NODE_DEAD_AFTER_MS``; a node itself when it starts again under the same name) takes the
node's index in one atomic step (:func:`reap`, so two reapers never both end a call) and
publishes, per call, ``slot_failed`` (reason ``node_failed``), the recording's stop
(``repaired`` when its file is readable here, else ``failed``) and ``call_ended`` with outcome
``node_failed``: the call gets its final record, routing releases its agent (wrap-up, or the
offer withdrawn), metrics close it as failed. Pure Redis: nothing here imports pjsua2.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from callcenter.redis_keys import Keys
from callcenter.streams import CallEvent, EventType
from ivr import wav

log = logging.getLogger(__name__)

NODE_FAILED = "node_failed"
# A node whose liveness key (renewed with every announcement) has lapsed this long is dead.
# Longer than the slots' announcement TTL (1.5 s): a node stalled for a moment loses its
# slots' place in rotation, not its calls.
NODE_DEAD_AFTER_MS = 5000

_TAKE = """
local calls = redis.call('HGETALL', KEYS[1])
local recordings = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
return {calls, recordings}
"""


def node_of(slot: str) -> str:
    """A slot's node (``nodeb-s03`` -> ``nodeb``)."""
    return slot.rsplit("-s", 1)[0]


def calls_key(keys: Keys, node: str) -> str:
    """call_id -> JSON {slot, started} for each call the node carries."""
    return f"{keys.prefix}:node:{node}:calls"


def recordings_key(keys: Keys, node: str) -> str:
    """call_id -> JSON {recording_id, path} for those calls being recorded."""
    return f"{keys.prefix}:node:{node}:recordings"


def alive_key(keys: Keys, node: str) -> str:
    """Renewed by a joined node with each announcement (TTL ``NODE_DEAD_AFTER_MS``)."""
    return keys.node_heartbeat(node)


def track(pipe: Any, keys: Keys, event: CallEvent) -> None:
    """Queue on ``pipe`` the index changes ``event`` (published by a slot) implies."""
    if not event.slot:
        return
    node = node_of(event.slot)
    if event.type == EventType.call_arrived:
        entry = {"slot": event.slot, "started": time.time()}
        pipe.hset(calls_key(keys, node), event.call_id, json.dumps(entry))
    elif event.type == EventType.recording_started:
        entry = {"recording_id": event.data.get("recording_id"), "path": event.data.get("path")}
        pipe.hset(recordings_key(keys, node), event.call_id, json.dumps(entry))
    elif event.type == EventType.call_ended:
        forget(pipe, keys, node, event.call_id)


def forget(pipe: Any, keys: Keys, node: str, call_id: str) -> None:
    pipe.hdel(calls_key(keys, node), call_id)
    pipe.hdel(recordings_key(keys, node), call_id)


def reap(client: Any, keys: Keys, node: str, *, by: str) -> list[str]:
    """End every call ``node`` still carries (it is dead): the call ids ended.

    ``client`` must decode responses. ``by`` names the reaper in the log."""
    flat_calls, flat_recordings = client.eval(
        _TAKE, 2, calls_key(keys, node), recordings_key(keys, node)
    )
    calls = _pairs(flat_calls)
    if not calls:
        return []
    recordings = _pairs(flat_recordings)
    log.warning("node %s is gone with %d call(s): ending them (%s)", node, len(calls), by)
    for call_id, raw in calls.items():
        entry = json.loads(raw)
        recording = json.loads(recordings[call_id]) if call_id in recordings else None
        _end(client, keys, call_id, entry, recording)
    return sorted(calls)


def _pairs(flat: list[Any]) -> dict[str, str]:
    return {str(flat[i]): str(flat[i + 1]) for i in range(0, len(flat), 2)}


def _end(
    client: Any, keys: Keys, call_id: str, entry: dict[str, Any], recording: dict[str, Any] | None
) -> None:
    slot = str(entry.get("slot") or "")
    pipe = client.pipeline(transaction=False)

    def publish(type_: str, data: dict[str, Any]) -> None:
        event = CallEvent(type=type_, call_id=call_id, slot=slot, node="reaper", data=data)
        pipe.xadd(keys.events, event.to_fields(), maxlen=500_000, approximate=True)

    publish(EventType.slot_failed, {"reason": NODE_FAILED})
    if recording is not None:
        publish(EventType.recording_stopped, _recording_end(recording))
    started = float(entry.get("started") or time.time())
    publish(
        EventType.call_ended,
        {
            "reason": NODE_FAILED,
            "outcome": NODE_FAILED,
            "duration": round(max(0.0, time.time() - started), 3),
        },
    )
    pipe.expire(keys.call_slot(call_id), 3600)
    pipe.execute()


def _recording_end(recording: dict[str, Any]) -> dict[str, Any]:
    """The recording's stop: its WAV header repaired when the file is on this host."""
    path = Path(str(recording.get("path") or ""))
    base = {"recording_id": recording.get("recording_id"), "path": str(path)}
    try:
        facts = wav.repair(path)
    except (OSError, ValueError) as exc:
        return {**base, "duration": 0, "bytes": 0, "sha256": None, "status": "failed",
                "error": f"{NODE_FAILED}: {exc}"}  # fmt: skip
    return {**base, "duration": facts.duration, "bytes": facts.bytes, "sha256": facts.sha256,
            "status": "repaired", "incomplete": True}  # fmt: skip
