"""The registrar's credentials: db_text tables written from the ``agents`` table.

Kamailio's ``auth_db`` reads the ``subscriber`` table through ``db_text`` with ``db_mode`` 1,
which re-reads a table file when its modification time changes. So the application rewrites
the file (write a temporary file, then rename over the old one: Kamailio never sees half a
file) and new agents register without a reload.

db_text traps handled here:
- an empty field is NULL, and a NULL in a column not declared ``null`` makes the *whole*
  table fail to load (every REGISTER then gets 401): rows with an empty extension or HA1 are
  skipped and reported, never written;
- ``:`` (the field separator), ``\\``, newlines and tabs must be escaped;
- the database needs a ``version`` table naming the ``subscriber`` table's schema version;
- the change check compares whole seconds: a rewrite within the same second as the previous
  one would go unnoticed, so the new file's mtime is pushed past the old one's.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from callcenter.context import AppContext
from ivr.edge.paths import edge_paths

log = logging.getLogger(__name__)

# Schema version auth_db expects for `subscriber` (Kamailio 5.x).
SUBSCRIBER_TABLE_VERSION = 7
SUBSCRIBER_HEADER = "id(int,auto) username(str) domain(str) ha1(str)"
VERSION_HEADER = "table_name(str) table_version(int)"
# htable's tables in the same db_text database: `dids` (ivr/edge/dids.py) and `rules`
# (ivr/edge/rules.py).
DIDS_TABLE_VERSION = 2

_HA1 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Subscriber:
    username: str  # the agent's extension
    domain: str  # the digest realm (telephony.sip_domain)
    ha1: str  # md5(username:realm:password), lowercase hex


def _escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\")
        .replace(":", "\\:")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


def _write_atomically(path: Path, text: str) -> None:
    previous_mtime = path.stat().st_mtime if path.exists() else None
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp_name, 0o600)
        if previous_mtime is not None:
            stat = os.stat(temp_name)
            if int(stat.st_mtime) <= int(previous_mtime):
                # db_text notices a change only when the mtime's second changes.
                bumped = int(previous_mtime) + 1
                os.utime(temp_name, (bumped, bumped))
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def render_subscriber_table(subscribers: Iterable[Subscriber]) -> tuple[str, list[str]]:
    """The ``subscriber`` file text and the problems of rows that were left out."""
    lines = [SUBSCRIBER_HEADER]
    problems: list[str] = []
    seen: set[str] = set()
    for sub in subscribers:
        if not sub.username or not sub.domain:
            problems.append(f"agent {sub.username!r}: empty extension or realm, not written")
            continue
        if not _HA1.match(sub.ha1):
            problems.append(f"agent {sub.username!r}: sip_ha1 is not 32 hex digits, not written")
            continue
        if sub.username in seen:
            problems.append(f"agent {sub.username!r}: extension listed twice, second not written")
            continue
        seen.add(sub.username)
        lines.append(f"{len(seen)}:{_escape(sub.username)}:{_escape(sub.domain)}:{sub.ha1}")
    return "\n".join(lines) + "\n", problems


def write_table(path: Path, text: str) -> bool:
    """Replace a db_text table file if its text differs (atomically); whether it changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, text)
    return True


def ensure_tables(db_dir: Path) -> None:
    """Create the ``version`` table and an empty ``subscriber`` table if they are missing."""
    db_dir.mkdir(parents=True, exist_ok=True)
    version = db_dir / "version"
    expected = (
        f"{VERSION_HEADER}\nsubscriber:{SUBSCRIBER_TABLE_VERSION}\ndids:{DIDS_TABLE_VERSION}\n"
        f"rules:{DIDS_TABLE_VERSION}\n"
    )
    if not version.exists() or version.read_text(encoding="utf-8") != expected:
        _write_atomically(version, expected)
    if not (db_dir / "subscriber").exists():
        _write_atomically(db_dir / "subscriber", SUBSCRIBER_HEADER + "\n")


def write_subscribers(db_dir: Path, subscribers: Iterable[Subscriber]) -> list[str]:
    """Replace the ``subscriber`` table; returns the problems of rows left out."""
    ensure_tables(db_dir)
    text, problems = render_subscriber_table(subscribers)
    target = db_dir / "subscriber"
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        _write_atomically(target, text)
    for problem in problems:
        log.warning("edge subscribers: %s", problem)
    return problems


def sync_subscribers(ctx: AppContext) -> list[str]:
    """Write every active agent's extension and HA1 for the edge's registrar.

    Call it at engine start and whenever an agent is created, deactivated or gets a new SIP
    password. Returns the problems of agents left out (also logged).
    """
    from cti.models import Agent  # the cti package owns the table

    realm = ctx.config.telephony.sip_domain
    with ctx.sessions() as session:
        rows = session.execute(
            select(Agent.extension, Agent.sip_ha1)
            .where(Agent.active.is_(True))
            .order_by(Agent.extension)
        ).all()
    subscribers = [Subscriber(username=ext, domain=realm, ha1=ha1.lower()) for ext, ha1 in rows]
    return write_subscribers(edge_paths(ctx.settings).db_dir, subscribers)
