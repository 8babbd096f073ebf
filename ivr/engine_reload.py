"""The supervisor's side of a live configuration change: notice, load, render, publish.

The process that stores a configuration version publishes ``{prefix}:config:changed``
(``callcenter/config_watch.py``). The supervisor must not run threads (it forks the
slots), so instead of the API's watcher thread it polls its subscription without blocking
once per turn of its loop (every 0.2 s at most). On a notice it loads the files with the
newest stored versions laid over them, and when a file the engine reads changed
(``ivr.live_config.ENGINE_FILES``) it renders the prompts of the new version *before*
anything switches (``prepare_all``: cached by text, so only changed texts are rendered) and
returns the next :class:`~ivr.live_config.EngineConfig`. The slots get it through a file this
module writes (``<state_dir>/engine/generation-<n>.pickle``) named on their control pipe.

A configuration that no longer loads, or a prompt that cannot be rendered, is logged and
not applied: the engine keeps the generation it has (the API refuses bad documents first).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from callcenter.config_store import latest_versions, with_stored_versions
from callcenter.context import AppContext
from config.loader import CenterConfig, ConfigError, load_config
from ivr.live_config import EngineConfig, changed_prompts, engine_changes
from ivr.prompts import PromptError, PromptFile, prepare_all

log = logging.getLogger("ivr.supervisor")

RESUBSCRIBE_AFTER_SECONDS = 1.0
KEEP_GENERATION_FILES = 3

Renderer = Callable[[CenterConfig], dict[str, PromptFile]]


class ConfigFollower:
    """Polled by the supervisor's loop; returns a new generation when one is ready."""

    def __init__(
        self, ctx: AppContext, current: EngineConfig, render: Renderer | None = None
    ) -> None:
        self.ctx = ctx
        self.current = current
        self.render = render or self._render
        self.pubsub: Any = None
        self.retry_at = 0.0
        self.render_seconds = 0.0  # the last new generation's rendering time (logged)

    def _render(self, config: CenterConfig) -> dict[str, PromptFile]:
        settings = self.ctx.settings
        return prepare_all(config, settings.state_dir, settings.language)

    def close(self) -> None:
        if self.pubsub is not None:
            with contextlib.suppress(Exception):
                self.pubsub.close()
            self.pubsub = None

    def poll(self) -> EngineConfig | None:
        """Never blocks on Redis; a lost subscription is renewed (and the configuration read
        once, since notices sent meanwhile are gone) after a second."""
        noticed = False
        try:
            if self.pubsub is None:
                if time.monotonic() < self.retry_at:
                    return None
                self.pubsub = self.ctx.redis.pubsub(ignore_subscribe_messages=True)
                self.pubsub.subscribe(self.ctx.keys.config_changed)
                noticed = True
            while self.pubsub.get_message(timeout=0.0) is not None:
                noticed = True
        except redis.RedisError as exc:
            log.warning("configuration notices: %s; subscribing again in 1 s", exc)
            self.close()
            self.retry_at = time.monotonic() + RESUBSCRIBE_AFTER_SECONDS
            return None
        return self.check() if noticed else None

    def check(self) -> EngineConfig | None:
        """The next generation when a file the engine reads changed, else None."""
        settings = self.ctx.settings
        try:
            config = with_stored_versions(load_config(settings.config_dir), self.ctx.engine)
            versions = latest_versions(self.ctx.engine)
        except ConfigError as exc:
            log.error("stored configuration not applied: %s", "; ".join(exc.problems))
            return None
        except Exception:  # the database is away: keep the generation we have
            log.exception("reading the stored configuration failed")
            return None
        current = self.current
        changes = engine_changes(current.config, config)
        if not changes:
            self.ctx.config = config  # shifts, dispatch, ...: nothing a slot reads
            self.current = EngineConfig(current.generation, config, current.prompts, versions)
            return None
        started = time.monotonic()
        try:
            prompts = self.render(config)
        except PromptError as exc:
            log.error("new configuration not applied: %s", exc)
            return None
        self.render_seconds = time.monotonic() - started
        diff = changed_prompts(current.prompts, prompts)
        new = EngineConfig(current.generation + 1, config, prompts, versions)
        log.info(
            "configuration generation %d (%s changed; versions %s): prompts rendered in "
            "%.2f s (added %s, changed %s, removed %s)",
            new.generation,
            ", ".join(changes),
            dict(versions),
            self.render_seconds,
            diff["added"],
            diff["changed"],
            diff["removed"],
        )
        self.ctx.config = config
        self.current = new
        return new


def generation_dir(state_dir: Path) -> Path:
    return state_dir / "engine"


def write_generation(state_dir: Path, config: EngineConfig) -> Path:
    """Write a generation for the slots to load (atomically); older files but the newest
    few are removed (a slot loads its file within milliseconds of being told)."""
    directory = generation_dir(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"generation-{os.getpid()}-{config.generation}.pickle"
    temp = final.with_name(f".{final.name}.tmp")
    temp.write_bytes(pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL))
    os.replace(temp, final)
    old = sorted(
        directory.glob(f"generation-{os.getpid()}-*.pickle"),
        key=lambda p: int(p.stem.rsplit("-", 1)[1]),
    )
    for path in old[:-KEEP_GENERATION_FILES]:
        path.unlink(missing_ok=True)
    return final


def read_generation(path: str) -> EngineConfig:
    """A slot's side: the generation the supervisor wrote (a file of this same engine)."""
    with open(path, "rb") as handle:
        config = pickle.load(handle)
    if not isinstance(config, EngineConfig):
        raise TypeError(f"{path}: not an engine configuration")
    return config


def clear_generations(state_dir: Path) -> None:
    """At start: a previous engine's generation files are of no use any more."""
    for path in generation_dir(state_dir).glob("generation-*.pickle"):
        path.unlink(missing_ok=True)
