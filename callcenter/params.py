"""Request parameter types every router shares, bounded so bad input is a 422 naming the field
rather than an error deep in the database driver.

- Row ids and offsets: SQL integers are 64-bit; a larger number in a URL made SQLite raise
  OverflowError (and PostgreSQL a NumericValueOutOfRange) and the client got a 500.
- Dates and times: pydantic reads a bare number as seconds since 1970, so ``since=429`` was
  silently 1970-01-01T00:07:09Z; the documented input is ISO 8601 and only that is taken.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import BeforeValidator

MAX_ROW_ID = 2**63 - 1  # BIGINT, SQLite INTEGER


def _iso_only(value: object) -> object:
    if isinstance(value, int | float) or (isinstance(value, str) and _looks_numeric(value.strip())):
        raise ValueError("not an ISO 8601 date or date-time (e.g. 2026-05-01T08:00)")
    return value


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
