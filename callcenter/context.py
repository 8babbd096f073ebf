"""The composition root's product: every client a process needs, built once and passed in."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.db import make_engine, make_sessionmaker
from callcenter.redis_keys import Keys
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
    extras: dict[str, object] = field(default_factory=dict)

    def close(self) -> None:
        self.redis.close()
        self.engine.dispose()


def build_context(settings: Settings) -> AppContext:
    """Validate the declarative files, then connect SQL and Redis (lazily: no I/O here)."""
    center = load_config(settings.config_dir)
    engine = make_engine(settings.database_url)
    return AppContext(
        settings=settings,
        config=center,
        engine=engine,
        sessions=make_sessionmaker(engine),
        redis=redis.Redis.from_url(settings.redis_url, decode_responses=True),
        keys=Keys(settings.redis_prefix),
    )
