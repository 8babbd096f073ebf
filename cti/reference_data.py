"""The SQL mirrors of the declarative files' codes: ``queues``, ``shifts``, ``departments``.

The files (and their stored versions) stay the source; SQL keeps a row per code so reports can
join on it and ``agent_queues.queue_code`` / ``agents.shift_code`` / department references are
foreign keys. Rows are added and renamed, never removed: a queue or shift dropped from a newer
version stays referenced safely by the agents (and records) that still hold it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.loader import CenterConfig
from cti.models import Department, Queue, Shift


def mirror(session: Session, config: CenterConfig) -> None:
    """Insert or update a row for every queue, shift and department of ``config`` (idempotent)."""
    for code, queue in config.queues.queues.items():
        session.merge(Queue(code=code, name_zh=queue.name.zh, name_en=queue.name.en))
    for code, shift in config.shifts.shifts.items():
        session.merge(
            Shift(
                code=code,
                name_zh=shift.name.zh,
                name_en=shift.name.en,
                start=f"{shift.start:%H:%M}",
                end=f"{shift.end:%H:%M}",
                overnight=shift.overnight,
            )
        )
    existing = {d.code: d for d in session.scalars(select(Department))}
    for code, dept in config.dispatch.departments.items():
        row = existing.get(code) or Department(code=code)
        row.name_zh, row.name_en, row.external = dept.name.zh, dept.name.en, dept.external
        session.add(row)
    session.flush()
