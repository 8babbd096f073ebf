"""A new stored configuration reaching the engine without a restart: the decisions, free of
pjsua2 and of I/O (unit-tested in tests/engine/test_live_config.py).

The supervisor renders the prompts of a new version first and then hands the slots an
:class:`EngineConfig` (a numbered *generation*: the configuration and its rendered prompts).
A slot takes it between calls only (:class:`SlotConfigSwitch`): the call it carries keeps the
menu, prompts, dial plan and queue settings it started with, to its end; the next call gets
the new ones. Nothing here decides *what* a call does: ``ivr/menu.py`` and
``ivr/call_core/`` do, with whichever generation the slot holds (its ``CallSetup``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from config.loader import CenterConfig
from ivr.prompts import PromptFile

# The declarative files a slot reads while it carries a call (menu tree and prompts; ring
# and announcement settings; DIDs, dial plan and trunks). A version of another file (shifts,
# dispatch, webhooks, ...) changes nothing in the engine: no new generation for it.
ENGINE_FILES = ("menu", "queues", "telephony", "callbacks")


@dataclass(frozen=True)
class EngineConfig:
    """What a slot runs its calls with: one generation of the configuration."""

    generation: int
    config: CenterConfig
    prompts: Mapping[str, PromptFile]
    versions: Mapping[str, int] = field(default_factory=dict)  # stored version per file

    @property
    def durations(self) -> dict[str, float]:
        return {key: prompt.duration for key, prompt in self.prompts.items()}


def engine_changes(old: CenterConfig, new: CenterConfig) -> list[str]:
    """The engine's files that differ between two configurations (empty: nothing to do)."""
    return [name for name in ENGINE_FILES if getattr(old, name) != getattr(new, name)]


def changed_prompts(
    old: Mapping[str, PromptFile], new: Mapping[str, PromptFile]
) -> dict[str, list[str]]:
    """Prompt keys added, changed (another file: the text, voice or file changed) and
    removed between two rendered prompt sets."""
    return {
        "added": sorted(k for k in new if k not in old),
        "changed": sorted(k for k in new if k in old and old[k].path != new[k].path),
        "removed": sorted(k for k in old if k not in new),
    }


class SlotConfigSwitch:
    """When one slot takes a new generation: at once when it carries no call, else as soon as
    its call has ended. Only the newest generation offered is kept; an older one arriving
    late is ignored."""

    def __init__(self, generation: int) -> None:
        self.current = generation
        self.pending: EngineConfig | None = None

    def offered(self, config: EngineConfig, *, busy: bool) -> EngineConfig | None:
        """A generation arrived; returns it when the slot should take it now."""
        newest = max(self.current, self.pending.generation if self.pending else -1)
        if config.generation <= newest:
            return None
        if busy:
            self.pending = config
            return None
        self.pending = None
        self.current = config.generation
        return config

    def call_ended(self) -> EngineConfig | None:
        """The slot's call ended; returns the generation to take before the next call."""
        config, self.pending = self.pending, None
        if config is not None:
            self.current = config.generation
        return config
