"""``Idempotency-Key`` on ``POST /api/v1/tickets``: a retry after a cut finds the ticket its
first request stored instead of registering a second one.

A client that sent a ticket and got no answer, or 503 ``database-unavailable`` (the commit
may or may not have happened), sends the same request again with the same key. The key and
the ticket are written in one transaction (``ticket_idempotency_keys``, primary key: the
user and the key), so the retry finds both or neither:

- the same key with the same body: the stored ticket, as it is now (``Idempotent-Replayed:
  true``); nothing is written;
- the same key with another body: 422 ``tickets.idempotency-key-reused``;
- two requests with one key at once: SQLite's write gate runs them one after the other, the
  second finds the first's key; on PostgreSQL both may look before either commits, and the
  second's key row then clashes with the first's (the unique key): it is rolled back, its
  ticket number given back, and it looks again (``registration.create_ticket``).

A key is honoured for :data:`KEY_LIFETIME` (24 hours) after the ticket was registered; after
that the same key registers a new ticket, and the user's expired rows are deleted by their
next keyed request.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, and_, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callcenter.errors import InvalidInput
from ticketing.errors import TICKET_BAD_IDEMPOTENCY_KEY, TICKET_IDEMPOTENCY_KEY_REUSED
from ticketing.models import TicketIdempotencyKey
from ticketing.schemas import TicketCreate

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# UUIDs (36), ULIDs (26), base64 in either alphabet, and names like "desk-<hex>" fit.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_.:+/=-]{8,128}")
KEY_LIFETIME = timedelta(hours=24)

_KEYS = cast(Table, TicketIdempotencyKey.__table__)
_PURGE_EXPIRED = delete(_KEYS).where(
    and_(_KEYS.c.user_id == bindparam("user_id"), _KEYS.c.created_at < bindparam("cutoff"))
)
_FIND = select(_KEYS.c.fingerprint, _KEYS.c.ticket_id).where(
    and_(_KEYS.c.user_id == bindparam("user_id"), _KEYS.c.key == bindparam("key"))
)
_RECORD = insert(_KEYS)


@dataclass(frozen=True)
class IdempotencyKey:
    """A user's key and the fingerprint of the request it came with."""

    user_id: int
    key: str
    fingerprint: str


def parse_key(value: str | None) -> str | None:
    """The header's key, or None without one; 422 naming the header when it does not fit.
    The IETF draft writes the key as a structured-field string (in double quotes): that is
    the same key as the bare one."""
    if value is None:
        return None
    key = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if not KEY_PATTERN.fullmatch(key):
        raise InvalidInput(
            f"{HEADER}: 8-128 characters from A-Z a-z 0-9 - _ . : + / = (a UUID will do) / "
            f"{HEADER} 须为 8-128 个字母、数字或 - _ . : + / = 字符（可用 UUID）",
            details={"header": HEADER, "length": len(key)},
            error_id=TICKET_BAD_IDEMPOTENCY_KEY,
        )
    return key


def fingerprint(data: TicketCreate) -> str:
    """The request as validated (defaults filled in, key order and spacing ignored)."""
    canonical = json.dumps(
        data.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def stored_ticket(session: Session, key: IdempotencyKey, now: datetime) -> int | None:
    """The id of the ticket this key registered within its lifetime, or None. The user's
    expired keys are deleted first (in the caller's transaction); the key sent before with
    another body is a 422."""
    conn = session.connection()
    conn.execute(_PURGE_EXPIRED, {"user_id": key.user_id, "cutoff": now - KEY_LIFETIME})
    row = conn.execute(_FIND, {"user_id": key.user_id, "key": key.key}).first()
    if row is None:
        return None
    if row.fingerprint != key.fingerprint:
        raise InvalidInput(
            f"{HEADER} was used before with another request: use a new key for a new ticket "
            f"/ 该 {HEADER} 已用于另一份工单内容，新工单请换一个新的键",
            details={"header": HEADER, "ticket_id": row.ticket_id},
            error_id=TICKET_IDEMPOTENCY_KEY_REUSED,
        )
    return int(row.ticket_id)


def record(session: Session, key: IdempotencyKey, ticket_id: int, now: datetime) -> None:
    """Write the key with the ticket it registered, in the ticket's transaction."""
    session.connection().execute(
        _RECORD,
        {
            "user_id": key.user_id,
            "key": key.key,
            "fingerprint": key.fingerprint,
            "ticket_id": ticket_id,
            "created_at": now,
        },
    )


def is_key_clash(exc: IntegrityError) -> bool:
    """Did another request with the same key commit first (the primary key refused ours)?"""
    message = str(exc.orig).lower()
    return "pk_ticket_idempotency_keys" in message or "ticket_idempotency_keys.key" in message
