"""Running processes take a stored configuration version without restarting.

The process that stores a version publishes on ``{prefix}:config:changed``; a ``ConfigWatcher``
thread in every other process that starts one (API, router, worker) reloads the configuration
(the files with the newest stored versions laid over them), swaps ``ctx.config`` and the
routing handle's copy, and calls its owner's callbacks. What reads ``ctx.config`` per call or
per request uses the new version from then on (docs/admin.md). The engine's supervisor, which
must not run threads, polls the same notice itself (``ivr/engine_reload.py``).

Pub/sub forgets messages sent while a process was not listening, so the watcher reloads once
each time it (re)subscribes.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable

import redis

from callcenter.config_store import with_stored_versions
from callcenter.context import AppContext
from callcenter.service_keys import Service
from config.loader import CenterConfig, ConfigError, load_config

log = logging.getLogger(__name__)


def publish_change(ctx: AppContext, *, file: str, version: int) -> None:
    ctx.redis.publish(ctx.keys.config_changed, json.dumps({"file": file, "version": version}))


def use_config(ctx: AppContext, config: CenterConfig) -> None:
    """Make ``config`` this process's configuration (the context and its routing handle)."""
    ctx.config = config
    for follow in ctx.config_listeners:
        follow(config)


class ConfigWatcher:
    """A daemon thread applying stored configuration versions to this process."""

    def __init__(
        self, ctx: AppContext, on_change: Iterable[Callable[[CenterConfig], None]] = ()
    ) -> None:
        self.ctx = ctx
        self.on_change = list(on_change)
        self.reloads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-watch", daemon=True)

    def start(self) -> ConfigWatcher:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def reload(self) -> None:
        settings = self.ctx.settings
        try:
            config = with_stored_versions(load_config(settings.config_dir), self.ctx.engine)
        except ConfigError as exc:  # keep running on the configuration we have
            log.error("stored configuration not applied: %s", "; ".join(exc.problems))
            return
        if config != self.ctx.config:
            use_config(self.ctx, config)
            for callback in self.on_change:
                callback(config)
        self.reloads += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            client = redis.Redis.from_url(self.ctx.settings.redis_url, decode_responses=True)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.ctx.keys.config_changed)
                self.reload()
                while not self._stop.is_set():
                    if pubsub.get_message(timeout=0.5) is not None:
                        self.reload()
                pubsub.close()
            except redis.RedisError as exc:
                log.warning("config watcher: %s; subscribing again in 1 s", exc)
                self._stop.wait(1.0)
            except Exception:  # a boundary: the thread must survive a bad reload
                log.exception("config watcher failed; subscribing again in 1 s")
                self._stop.wait(1.0)
            finally:
                client.close()


WATCHER: Service[ConfigWatcher] = Service("config watcher")


def start_watcher(ctx: AppContext) -> ConfigWatcher:
    """Start (once per context) the watcher that keeps this process's configuration current."""
    return ctx.services.get_or_make(WATCHER, lambda: ConfigWatcher(ctx).start())


def stop_watcher(ctx: AppContext) -> None:
    watcher = ctx.services.pop(WATCHER)
    if watcher is not None:
        watcher.stop()
