"""Request parameter types every router shares, bounded so bad input is a 422 naming the field
rather than an error deep in the database driver.

- Row ids and offsets: a number beyond the column's integer made SQLite raise OverflowError
  (past 64 bits) and PostgreSQL NumericValueOutOfRange (past 32 bits): a 500 for the client.
- Dates and times: pydantic reads a bare number as seconds since 1970, so ``since=429`` was
  silently 1970-01-01T00:07:09Z; the documented input is ISO 8601 and only that is taken,
  within years that cannot overflow when shifted to UTC (year 1 with +04:00 was a 500).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, BeforeValidator

# Primary keys are SQL INTEGER: 32-bit on PostgreSQL (64 on SQLite); OFFSET takes a BIGINT.
MAX_ROW_ID = 2**31 - 1
MAX_OFFSET = 2**63 - 1


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


# Far enough from datetime's limits (years 1 and 9999) that time-zone shifts and the report
# windows added to a bound (a day, a week) cannot overflow; OverflowError was a 500.
EARLIEST_YEAR, LATEST_YEAR = 1970, 9000


def _within_years(value: datetime) -> datetime:
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError(f"outside the years {EARLIEST_YEAR}–{LATEST_YEAR}")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_within_years)]
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def row_id_in(text: str) -> int | None:
    """``text`` as a row id when it is one (ASCII digits within the column's range), else None.
    ``str.isdigit`` alone is not enough: ``"²".isdigit()`` is true and ``int("²")`` raises."""
    if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_ROW_ID:
        return int(text)
    return None
