"""Append an entry to the audit log (never updated or deleted: the database refuses it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from callcenter.models import AuditEntry


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    details: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        details=details or {},
        remote_addr=remote_addr,
    )
    session.add(entry)
    return entry
