"""A slot's two threads off the engine thread, and the queues they share with it.

* the **publisher** sends events to the Redis event stream (with the engine's own waiting
  counts, in one pipeline) and status to the supervisor's pipe, so the engine thread never
  waits on Redis or a pipe;
* the **command reader** blocks on the slot's Redis command stream, puts commands in
  ``commands`` and wakes the engine thread with a CRLF datagram to the slot's own SIP port
  (pjsip ignores CRLF keep-alives); it also renders ad-hoc announcements and survey
  questions and computes the waiting caller's queue position, all off the engine thread;
* the **control reader** waits on the supervisor's control pipe for a new configuration
  generation (``ivr/engine_reload.py``), loads it and hands it to the engine thread as a
  ``use_config`` command (the engine thread takes it between calls: ``ivr/live_config.py``).

Nothing here touches pjsua2; the engine thread only puts to ``outbox``, reads
``commands`` and sets ``queued_view``.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any

import redis

from callcenter.redis_keys import Keys
from callcenter.streams import CallEvent, Command, CommandType, EventType
from config.settings import Settings
from ivr import node_calls
from ivr.engine_reload import read_generation
from ivr.prompts import MAX_ANNOUNCED_MINUTES, MAX_ANNOUNCED_POSITION, text_prompt
from ivr.spec import SlotSpec

log = logging.getLogger("ivr.slot")

DEFAULT_SECONDS_PER_POSITION = 60  # expected-wait estimate when routing publishes none
READ_BLOCK_MS = 1000  # the command reader's longest XREAD block (was 500 ms)
USE_CONFIG = "use_config"  # the engine thread's own command: data {"engine_config": ...}


def waiting_key(keys: Keys, queue_code: str) -> str:
    """The engine's own count of waiting calls per queue (ZSET call_id -> queued epoch)."""
    return f"{keys.prefix}:engine:waiting:{queue_code}"


def routing_waiting_key(keys: Keys, queue_code: str) -> str:
    """Routing's waiting calls, when routing publishes them (ZSET call_id -> score)."""
    return keys.routing(f"queue:{queue_code}:waiting")


class SlotStreams:
    """The slot's Redis streams and status pipe, served by two daemon threads."""

    def __init__(
        self,
        spec: SlotSpec,
        settings: Settings,
        status: Connection | None,
        stop: threading.Event,
        control: Connection | None = None,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.keys = Keys(settings.redis_prefix)
        self.status = status
        self.control = control
        self.stop = stop
        self.commands: queue.Queue[Command] = queue.Queue()
        self.outbox: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        # the waiting caller's announcement schedule, set by the engine thread (empty: none)
        self.queued_view: dict[str, Any] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._publisher, name="publisher", daemon=True),
            threading.Thread(target=self._command_reader, name="commands", daemon=True),
        ]
        if self.control is not None:
            self._threads.append(
                threading.Thread(target=self._control_reader, name="control", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """Publish what is left, then end the publisher (the reader ends with ``stop``)."""
        self.outbox.put(None)
        if self._threads:
            self._threads[0].join(timeout=5)

    def send_status(self, status: dict[str, Any]) -> None:
        self.outbox.put(("status", {"slot": self.spec.name, **status}))

    def publish(self, event: CallEvent) -> None:
        self.outbox.put(("event", event))

    def _publisher(self) -> None:
        client: Any = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        retry: tuple[str, Any] | None = None
        while True:
            # One at a time, in order: an event that could not be published (Redis away) is
            # retried before any later one, so a call's events never arrive out of order.
            item = retry if retry is not None else self.outbox.get()
            retry = None
            if item is None:
                break
            kind, payload = item
            try:
                if kind == "status":
                    if self.status is not None:
                        self.status.send(payload)
                    continue
                event: CallEvent = payload
                pipe = client.pipeline(transaction=False)
                pipe.xadd(self.keys.events, event.to_fields(), maxlen=500_000, approximate=True)
                self._side_effects(pipe, event)
                pipe.execute()
            except Exception:
                # Redis down: keep the event and retry, so nothing is lost silently.
                log.exception("publishing %s failed; retrying", kind)
                time.sleep(0.5)
                retry = item
        client.close()

    def _side_effects(self, pipe: Any, event: CallEvent) -> None:
        ttl = self.settings.sip.max_call_seconds + 3600
        node_calls.track(pipe, self.keys, event)
        if event.type == EventType.call_arrived:
            pipe.set(self.keys.call_slot(event.call_id), self.spec.name, ex=ttl)
        elif event.type == EventType.call_queued:
            old = event.data.get("previous_queue")
            if old:
                pipe.zrem(waiting_key(self.keys, old), event.call_id)
            pipe.zadd(
                waiting_key(self.keys, event.data["queue"]),
                {event.call_id: event.data.get("queued_epoch", time.time())},
            )
        elif event.type in (EventType.bridged, EventType.call_ended, EventType.agent_answered):
            queue_code = event.data.get("queue") or ""
            if queue_code:
                pipe.zrem(waiting_key(self.keys, queue_code), event.call_id)
            if event.type == EventType.call_ended:
                pipe.expire(self.keys.call_slot(event.call_id), 3600)

    def _wake(self) -> None:
        """A CRLF keep-alive to our own SIP port ends the current libHandleEvents poll."""
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"\r\n\r\n", (self.spec.sip_host, self.spec.sip_port))
        except OSError:
            pass

    def _command_reader(self) -> None:
        client: Any = redis.Redis.from_url(self.settings.redis_url, decode_responses=True)
        stream = self.keys.slot_commands(self.spec.name)
        last_id = "0-0"  # "$" would miss commands added between two reads
        try:
            newest = client.xrevrange(stream, count=1)
            if newest:
                last_id = newest[0][0]  # commands sent to a previous life of this slot are stale
        except redis.RedisError:
            log.exception("reading the command stream failed")
        while not self.stop.is_set():
            try:
                answer: Any = client.xread({stream: last_id}, block=self._block_ms(), count=20)
                for _stream, entries in answer or []:
                    for entry_id, fields in entries:
                        last_id = entry_id
                        try:
                            command = Command.from_fields(fields)
                        except (KeyError, ValueError) as exc:
                            log.warning("malformed command %s: %s", entry_id, exc)
                            continue
                        if command.type == CommandType.play and "text" in command.data:
                            command = self._render_announcement(command)
                        elif command.type == CommandType.originate and command.data.get("survey"):
                            command = self._render_survey(command)
                        self.commands.put(command)
                        self._wake()
                self._maybe_announce(client)
            except redis.RedisError:
                log.exception("command stream read failed")
                time.sleep(1)
        client.close()

    def _block_ms(self) -> int:
        """How long the next XREAD may block: a command ends it at once, so only the waiting
        caller's next announcement bounds it (READ_BLOCK_MS otherwise: each read is a wake-up
        of this thread and a request to Redis, per slot, idle or not)."""
        view = self.queued_view
        if not view:
            return READ_BLOCK_MS
        wait_ms = int((view["next_at"] - time.monotonic()) * 1000) + 1
        return max(10, min(READ_BLOCK_MS, wait_ms))

    def _control_reader(self) -> None:
        """New configuration generations from the supervisor, until its pipe closes."""
        assert self.control is not None
        while not self.stop.is_set():
            try:
                message = self.control.recv()
            except (EOFError, OSError):
                return
            try:
                config = read_generation(str(message["path"]))
            except Exception:
                log.exception("loading configuration generation %s failed", message)
                continue
            self.commands.put(Command(USE_CONFIG, "", uuid.uuid4().hex, {"engine_config": config}))
            self._wake()

    def _render_announcement(self, command: Command) -> Command:
        try:
            prompt = text_prompt(
                str(command.data["text"]), self.settings.state_dir, self.settings.language
            )
        except Exception as exc:
            return Command(
                command.type, command.call_id, command.id, {**command.data, "error": str(exc)}
            )
        return Command(
            command.type,
            command.call_id,
            command.id,
            {**command.data, "file": prompt.path, "duration": prompt.duration},
        )

    def _render_survey(self, command: Command) -> Command:
        """Render the survey question (cached by text) off the engine thread."""
        survey = command.data.get("survey")
        english = self.settings.language == "en"
        text = ""
        if isinstance(survey, dict):
            text = str(survey.get("prompt_en" if english else "prompt_zh") or "")
            text = text or str(survey.get("prompt_zh") or survey.get("prompt_en") or "")
        if not text:
            error = "survey.prompt_zh missing: the survey has no question to play"
            return Command(
                command.type, command.call_id, command.id, {**command.data, "error": error}
            )
        try:
            prompt = text_prompt(text, self.settings.state_dir, self.settings.language)
        except Exception as exc:
            error = f"survey prompt not rendered: {exc}"
            return Command(
                command.type, command.call_id, command.id, {**command.data, "error": error}
            )
        return Command(
            command.type,
            command.call_id,
            command.id,
            {**command.data, "survey_file": prompt.path, "survey_duration": prompt.duration},
        )

    def _maybe_announce(self, client: Any) -> None:
        view = self.queued_view
        if not view or time.monotonic() < view["next_at"]:
            return
        every = view["every"]
        view["next_at"] = time.monotonic() + every
        queue_code, call_id = view["queue"], view["call_id"]
        position = None
        seconds_each = DEFAULT_SECONDS_PER_POSITION
        rank = client.zrank(routing_waiting_key(self.keys, queue_code), call_id)
        source = "routing"
        if rank is None:
            rank = client.zrank(waiting_key(self.keys, queue_code), call_id)
            source = "engine"
        if rank is not None:
            position = int(rank) + 1
        expected = client.hget(self.keys.routing(f"queue:{queue_code}:stats"), "seconds_each")
        if expected:
            with contextlib.suppress(ValueError):
                seconds_each = int(float(expected))
        if position is None:
            return
        minutes = max(1, round(position * seconds_each / 60))
        keys = [
            f"announce.position.{position}"
            if position <= MAX_ANNOUNCED_POSITION
            else "announce.position.more",
            f"announce.wait.{minutes}"
            if minutes <= MAX_ANNOUNCED_MINUTES
            else "announce.wait.more",
        ]
        self.commands.put(
            Command(
                "announce",
                call_id,
                uuid.uuid4().hex,
                {
                    "keys": keys,
                    "position": position,
                    "source": source,
                    "expected_wait": minutes * 60,
                },
            )
        )
        self._wake()
