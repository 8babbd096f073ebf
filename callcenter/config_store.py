"""The newest stored version of each declarative file, laid over the files at start.

Kept apart from ``config_versions`` (which needs the application context) so the composition
root can use it while building that context.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from callcenter.models import ConfigVersion
from config.loader import CenterConfig, config_with


def latest_documents(session: Session) -> dict[str, dict[str, Any]]:
    """``{"queues.toml": {...}, ...}``: the newest stored document of each file that has one."""
    newest = (
        select(ConfigVersion.file, func.max(ConfigVersion.version).label("version"))
        .group_by(ConfigVersion.file)
        .subquery()
    )
    rows = session.scalars(
        select(ConfigVersion).join(
            newest,
            (ConfigVersion.file == newest.c.file) & (ConfigVersion.version == newest.c.version),
        )
    )
    return {f"{row.file}.toml": dict(row.document) for row in rows}


def latest_versions(engine: Engine) -> dict[str, int]:
    """``{"menu": 3, ...}``: the newest stored version of each file that has one (empty before
    the first migration or without any stored version)."""
    try:
        if not inspect(engine).has_table(ConfigVersion.__tablename__):
            return {}
    except (OperationalError, ProgrammingError):
        return {}
    with Session(engine) as session:
        rows = session.execute(
            select(ConfigVersion.file, func.max(ConfigVersion.version)).group_by(ConfigVersion.file)
        )
        return {str(file): int(version) for file, version in rows}


def with_stored_versions(config: CenterConfig, engine: Engine) -> CenterConfig:
    """``config`` (the files) with the newest stored versions laid over it.

    Before the first migration the table does not exist: the files alone then. A stored
    version that no longer fits the files raises ConfigError like a broken file would.
    """
    try:
        migrated = inspect(engine).has_table(ConfigVersion.__tablename__)
    except (OperationalError, ProgrammingError):  # no database yet: `up` migrates after this
        return config
    if not migrated:
        return config
    with Session(engine) as session:
        documents = latest_documents(session)
    return config_with(config, documents) if documents else config
