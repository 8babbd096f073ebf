"""Alembic environment: the URL comes from the caller (callcenter.migrate), not an ini file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from callcenter.db import make_engine
from callcenter.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite alters a table by copying it and dropping the old one (batch mode). With
        # foreign keys on, that DROP deletes every child row through ON DELETE CASCADE (a
        # ticket's whole timeline). SQLite's own procedure for such changes: keys off during
        # the change, ``PRAGMA foreign_key_check`` before commit
        # (https://www.sqlite.org/lang_altertable.html#otheralter). The pragma is ignored
        # inside a transaction, so it is set before one begins.
        if connection.in_transaction():
            raise RuntimeError("SQLite migrations need a connection outside a transaction")
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite needs batch mode to alter tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
        if sqlite:
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left rows breaking foreign keys: {broken[:10]}")
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `callcenter migrate`")
run_migrations_online()
