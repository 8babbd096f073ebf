"""Ticket numbers ``GD<local date>-NNNN``: dense per local day, allocated by one upsert on the
day's counter row inside the creating transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from callcenter.context import AppContext
from ticketing.change import local_tz
from ticketing.models import Ticket, TicketNumberCounter

# A clash with a number given out past the counter lifts the counter and retries this often.
NUMBER_RETRIES = 20
_NEXT_NUMBER: dict[str, Any] = {}  # dialect name -> the counter upsert


def number_day(ctx: AppContext, now: datetime) -> str:
    """Numbers count per local day (Asia/Shanghai by default), not per UTC day."""
    return f"{now.astimezone(local_tz(ctx)):%Y%m%d}"


def _counter_upsert(dialect: str, floor: int | None = None) -> Any:
    """``INSERT … ON CONFLICT (day) DO UPDATE SET last = last + 1 RETURNING last``; with a
    ``floor``, the counter first rises to it (SQLite and PostgreSQL spell this alike)."""
    counter = TicketNumberCounter
    upsert = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(counter)
    bumped = counter.last + 1
    if floor is not None:
        bumped = case((counter.last < floor, floor), else_=counter.last) + 1
    return (
        upsert.values(day=bindparam("day"), last=bindparam("first"))
        .on_conflict_do_update(index_elements=[counter.day], set_={"last": bumped})
        .returning(counter.last)
    )


def allocate_number(session: Session, day: str, *, resync: bool = False) -> str:
    """The day's next number: one upsert on the day's counter row, in the creating
    transaction. It is the transaction's first write, so SQLite's write lock (PostgreSQL: the
    row's lock) is held from here to the commit: concurrent creations queue on it, and a
    rolled-back creation gives its number back, so numbers stay dense.

    ``resync`` first lifts the counter to the highest number in use: the unique constraint on
    ``tickets.number`` (the final guard) found the counter behind."""
    dialect = _dialect(session)
    if resync:
        floor = _highest_number_in_use(session, f"GD{day}-")
        statement = _counter_upsert(dialect, floor)
        first = floor + 1
    else:
        statement = _NEXT_NUMBER.get(dialect)
        if statement is None:
            statement = _NEXT_NUMBER.setdefault(dialect, _counter_upsert(dialect))
        first = 1
    sequence = session.connection().execute(statement, {"day": day, "first": first}).scalar_one()
    return f"GD{day}-{sequence:04d}"


def _highest_number_in_use(session: Session, prefix: str) -> int:
    last = session.scalar(
        select(Ticket.number)
        .where(Ticket.number.like(prefix + "%"))
        .order_by(func.length(Ticket.number).desc(), Ticket.number.desc())
        .limit(1)
    )
    return int(last.removeprefix(prefix)) if last else 0


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name
