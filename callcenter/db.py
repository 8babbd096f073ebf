"""SQL engine, sessions and the declarative base shared by every domain's tables.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` so a committed call
record or ticket survives a power cut; PostgreSQL is used as is.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import JSON, DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which stores naive text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


def utcnow() -> datetime:
    return datetime.now(UTC)


CONNECT_TIMEOUT_SECONDS = 5


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create the engine; for SQLite make the parent directory and set durable pragmas."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if "connect_timeout" not in url:
        # A server that does not answer (a host gone, packets dropped) fails a connection
        # attempt in seconds instead of the TCP timeout's minutes: every loop that writes
        # (call records, the router's log) and /readyz move on and try again.
        given = kwargs.pop("connect_args", {})
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **given}
    # pre-ping: a pooled connection the server dropped (a restart) is replaced, not used
    return create_engine(url, pool_pre_ping=True, **kwargs)


class _SqliteWriteGate:
    """One writer at a time, queued in order, across the threads and processes of this host.

    SQLite allows one writer; a second one waits in SQLite's busy handler, which sleeps 1,
    2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between attempts instead of waking when the
    lock is released, so under steady writes a waiter loses tens of milliseconds for a lock
    held for one. Here waiters block on a thread lock (this process) and then an ``flock``
    on ``<database>-writegate`` (other processes): both wake the next waiter at once.
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._path = f"{database}-writegate" if database and database != ":memory:" else None
        self._fd: int | None = None

    def __enter__(self) -> None:
        self._threads.acquire()
        try:
            if self._path is not None:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


_gates: weakref.WeakKeyDictionary[Engine, AbstractContextManager[None]] = (
    weakref.WeakKeyDictionary()
)
_gates_lock = threading.Lock()


def _forget_gates_after_fork() -> None:
    """A forked child (an RQ work horse) must not share its parent's lock file description
    (flock would not tell them apart) nor use a thread lock copied while held."""
    global _gates_lock
    _gates.clear()
    _gates_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_gates_after_fork)


def write_gate(engine: Engine) -> AbstractContextManager[None]:
    """Hold around a write transaction that is frequent and short (the API's ticket writes):
    on SQLite it queues writers without the busy handler's sleeps; on PostgreSQL, which
    queues row locks itself, it does nothing."""
    gate = _gates.get(engine)
    if gate is None:
        with _gates_lock:
            gate = _gates.get(engine)
            if gate is None:
                gate = (
                    _SqliteWriteGate(engine.url.database)
                    if engine.dialect.name == "sqlite"
                    else nullcontext()
                )
                _gates[engine] = gate
    return gate


# SQLite's OperationalError also means a wrong statement or schema ("no such table"): only
# these say the file could not be used just now.
SQLITE_BUSY = ("database is locked", "unable to open database file", "disk I/O error")


def database_down(exc: BaseException) -> bool:
    """Is ``exc`` the database not answering (down, restarting, a connection cut under a
    statement), i.e. the same work done again later would succeed? For PostgreSQL the DBAPI's
    ``OperationalError`` and ``InterfaceError`` (connection failures, the server shutting
    down or recovering, out of resources); for SQLite a locked or unreadable file; a
    connection SQLAlchemy found invalidated whatever its class. Not a wrong statement."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        return isinstance(exc, OperationalError) and any(t in str(exc.orig) for t in SQLITE_BUSY)
    return isinstance(exc, OperationalError | InterfaceError)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session
