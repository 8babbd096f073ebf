"""The composition root's product: every client a process needs, built once and passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.config_store import with_stored_versions
from callcenter.db import make_engine, make_sessionmaker
from callcenter.redis_keys import Keys
from callcenter.service_keys import Services
from config.loader import CenterConfig, load_config
from config.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    config: CenterConfig
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis
    keys: Keys
    services: Services = field(default_factory=Services)
    # called with each new configuration this process takes (callcenter.config_watch)
    config_listeners: list[Callable[[CenterConfig], None]] = field(default_factory=list)

    def close(self) -> None:
        self.redis.close()
        self.engine.dispose()


def build_context(settings: Settings) -> AppContext:
    """Validate the declarative files (with the versions stored through the admin API laid
    over them: one SQL query), then connect Redis (lazily)."""
    center = load_config(settings.config_dir)
    engine = make_engine(settings.database_url)
    # Versions an admin stored through /api/v1/config win over the files (docs/admin.md).
    center = with_stored_versions(center, engine)
    return AppContext(
        settings=settings,
        config=center,
        engine=engine,
        sessions=make_sessionmaker(engine),
        redis=redis.Redis.from_url(settings.redis_url, decode_responses=True),
        keys=Keys(settings.redis_prefix),
    )
