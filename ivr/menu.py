"""The voice-menu state machine, free of pjsua2: digits and clock ticks in, actions out.

A slot feeds it ``digit()`` and ``tick()`` on its engine thread and carries out the actions
(play prompts, publish events, queue the call, hang up). Prompt lengths are known from the
WAV files, so "the prompt ended" is a deadline, not a callback from the media clock thread.
Digits barge in: the first digit stops the prompt that is playing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from callcenter.streams import EventType
from config.schemas import (
    CallbackNode,
    CollectNode,
    EnqueueNode,
    HangupNode,
    MenuFile,
    MenuNode,
    PlayNode,
    TransferNode,
)


@dataclass(frozen=True)
class PlayPrompts:
    """Replace whatever the caller hears with these prompts, one after another."""

    keys: tuple[str, ...]


@dataclass(frozen=True)
class StopPrompt:
    pass


@dataclass(frozen=True)
class Emit:
    type: str
    node: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Enqueue:
    queue: str
    priority: int
    skills: tuple[str, ...]


@dataclass(frozen=True)
class RequestCallback:
    queue: str


@dataclass(frozen=True)
class TransferTo:
    target: str


@dataclass(frozen=True)
class Hangup:
    reason: str


Action = PlayPrompts | StopPrompt | Emit | Enqueue | RequestCallback | TransferTo | Hangup


class MenuRunner:
    """One caller's walk through the menu tree."""

    def __init__(self, menu: MenuFile, durations: dict[str, float], entry: str | None = None):
        self.menu = menu
        self.durations = durations
        self.node = entry or menu.entry
        self.phase = "idle"  # prompt | waiting | after_prompt | done
        self.digits = ""
        self.retries = 0
        self.deadline: float | None = None
        self.prompt_end = 0.0
        self.pending: list[Action] = []
        self.menu_path: list[dict[str, Any]] = []
        self.collected: dict[str, str] = {}
        self.last_menu: str | None = None

    # ------------------------------------------------------------ inputs
    def start(self, now: float) -> list[Action]:
        return self._enter(self.node, now)

    def digit(self, digit: str, now: float) -> list[Action]:
        actions: list[Action] = [Emit(EventType.digit_received, self.node, {"digit": digit})]
        if self.phase not in ("prompt", "waiting"):
            return actions  # digits in the queue or during a closing prompt: only recorded
        node = self.menu.nodes[self.node]
        if now < self.prompt_end:
            actions.append(StopPrompt())
            self.prompt_end = now
        if isinstance(node, MenuNode):
            target = node.options.get(digit)
            if target is None:
                return actions + self._invalid(node, digit, now)
            self.menu_path.append({"node": self.node, "digit": digit, "target": target})
            actions.append(
                Emit(EventType.menu_chosen, self.node, {"digit": digit, "target": target})
            )
            return actions + self._enter(target, now)
        if isinstance(node, CollectNode):
            if node.terminator and digit == node.terminator:
                return actions + self._finish_collect(node, now)
            self.digits += digit
            if len(self.digits) >= node.max_digits:
                return actions + self._finish_collect(node, now)
            self.phase = "waiting"
            self.deadline = now + node.inter_digit_timeout
        return actions

    def tick(self, now: float) -> list[Action]:
        if self.deadline is None or now < self.deadline:
            return []
        self.deadline = None
        node = self.menu.nodes[self.node]
        if self.phase == "after_prompt":
            pending, self.pending = self.pending, []
            self.phase = "done"
            return self._run_pending(pending, now)
        if isinstance(node, MenuNode):
            return self._timeout(node, now)
        if isinstance(node, CollectNode):
            return self._finish_collect(node, now)
        return []

    @property
    def done(self) -> bool:
        return self.phase == "done"

    # ------------------------------------------------------------ internals
    def _duration(self, keys: tuple[str, ...]) -> float:
        return sum(self.durations.get(key, 0.0) for key in keys)

    def _enter(self, name: str, now: float) -> list[Action]:
        node = self.menu.nodes[name]
        if isinstance(node, MenuNode):
            self.last_menu = name
        self.node = name
        self.digits = ""
        self.retries = 0
        actions: list[Action] = [
            Emit(EventType.menu_entered, name, {"node": name, "kind": node.kind})
        ]
        return actions + self._present(now, ())

    def _present(self, now: float, prefix: tuple[str, ...]) -> list[Action]:
        name = self.node
        node = self.menu.nodes[name]
        own = (f"{name}.prompt",) if f"{name}.prompt" in self.durations else ()
        keys = prefix + own
        actions: list[Action] = [PlayPrompts(keys)] if keys else []
        self.digits = ""
        if isinstance(node, MenuNode | CollectNode):
            self.phase = "prompt"
            self.prompt_end = now + self._duration(keys)
            self.deadline = self.prompt_end + node.first_digit_timeout
            return actions
        self.phase = "after_prompt"
        self.prompt_end = 0.0  # digits do not barge into closing prompts
        self.deadline = now + self._duration(keys)
        if isinstance(node, PlayNode):
            target = node.next or self.last_menu or self.menu.entry
            self.pending = [_Goto(target)]  # type: ignore[list-item]
        elif isinstance(node, EnqueueNode):
            # Queue at once so routing can start while the prompt plays.
            self.phase = "done"
            self.deadline = None
            return [*actions, Enqueue(node.queue, node.priority, tuple(node.skills))]
        elif isinstance(node, CallbackNode):
            if not keys:
                actions = [PlayPrompts(("system.callback",))]
                self.deadline = now + self._duration(("system.callback",))
            actions.append(Emit(EventType.callback_requested, name, {"queue": node.queue}))
            self.pending = [RequestCallback(node.queue), Hangup("callback_requested")]
        elif isinstance(node, TransferNode):
            self.pending = [TransferTo(node.target)]
        elif isinstance(node, HangupNode):
            if not keys:
                actions = [PlayPrompts(("system.goodbye",))]
                self.deadline = now + self._duration(("system.goodbye",))
            self.pending = [Hangup("menu_hangup")]
        return actions

    def _run_pending(self, pending: list[Action], now: float) -> list[Action]:
        actions: list[Action] = []
        for item in pending:
            if isinstance(item, _Goto):
                return actions + self._enter(item.target, now)
            actions.append(item)
        return actions

    def _retry(
        self, node: MenuNode | CollectNode, prompt_key: str, now: float, reason: str
    ) -> list[Action]:
        self.retries += 1
        if self.retries > node.max_retries:
            self.menu_path.append({"node": self.node, "reason": reason, "target": node.fallback})
            return self._enter(node.fallback, now)
        prefix = (prompt_key,) if prompt_key in self.durations else ()
        return self._present(now, prefix)

    def _invalid(self, node: MenuNode, digit: str, now: float) -> list[Action]:
        name = self.node
        rest = self._retry(node, f"{self.node}.invalid", now, "invalid")
        data = {"digits": digit, "then_playing": _played(rest)}
        return [Emit(EventType.menu_invalid, name, data), *rest]

    def _timeout(self, node: MenuNode, now: float) -> list[Action]:
        name = self.node
        rest = self._retry(node, f"{self.node}.timeout", now, "timeout")
        return [Emit(EventType.menu_timeout, name, {"then_playing": _played(rest)}), *rest]

    def _finish_collect(self, node: CollectNode, now: float) -> list[Action]:
        value = self.digits
        if re.search(node.pattern, value):
            self.collected[node.variable] = value
            self.menu_path.append({"node": self.node, "digits": value, "target": node.next})
            actions: list[Action] = [
                Emit(
                    EventType.digits_collected,
                    self.node,
                    {"variable": node.variable, "value": value},
                )
            ]
            return actions + self._enter(node.next, now)
        name = self.node
        rest = self._retry(node, f"{self.node}.invalid", now, "invalid")
        data = {"digits": value, "then_playing": _played(rest)}
        return [Emit(EventType.menu_invalid, name, data), *rest]


def _played(actions: list[Action]) -> list[str]:
    """The prompts a retry plays next (events say what the caller heard)."""
    return next((list(a.keys) for a in actions if isinstance(a, PlayPrompts)), [])


@dataclass(frozen=True)
class _Goto:
    target: str
