"""Engines and sessions for SQLite and PostgreSQL, and the "is it migrated?" check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.store.reads import DriverReads


def insert_for(dialect: str, table: Any) -> Any:
    """``INSERT`` for ``table`` in the dialect's flavour, which has ``on_conflict_do_*``."""
    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


class NotMigratedError(RuntimeError):
    """The database schema is missing or older than this code."""


# The store is unreachable or overloaded (down, restarting, pool exhausted): answer
# "try again" quickly rather than hang or show a stack trace.
UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    SATimeoutError,
    ConnectionError,
    OSError,
    TimeoutError,
)


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> AsyncEngine:
    engine = create_async_engine(
        url,
        connect_args={"timeout": 30},
        pool_size=pool_size,
        max_overflow=4,
        pool_pre_ping=False,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transactions out of pysqlite's hands so we can choose the BEGIN kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # 16 MiB page cache per connection (default 2 MiB): the rollup and its indexes
        # stay in memory for /tokens and digests instead of going through the OS each read.
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that later
        # writes fails at once with SQLITE_BUSY instead of waiting for the lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _checked_out(engine: AsyncEngine) -> int:
    counter = getattr(engine.sync_engine.pool, "checkedout", None)
    return int(counter()) if callable(counter) else 0


class Database:
    """One place that knows the URL, the dialect and how to open sessions."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False):
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url, immediate=True, pool_size=pool_size)
            self._read_engine = _sqlite_engine(url, immediate=False, pool_size=pool_size)
        elif self.dialect == "postgresql":
            self.engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_pre_ping=True,
                pool_timeout=5,
                # Fail fast when the server is gone, instead of hanging a request.
                connect_args={"timeout": 5, "command_timeout": 60},
                echo=echo,
            )
            self._read_engine = self.engine
        else:
            raise ValueError(f"unsupported database {self.dialect!r}: use sqlite or postgresql")
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # The hot path's reads: raw driver connections of their own (bot.store.reads).
        self.reads = DriverReads(url, self.engine.dialect, pool_size)
        self._readers = async_sessionmaker(self._read_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def insert(self, table: Any) -> Any:
        """``INSERT`` for ``table`` with this database's ``on_conflict_do_*``."""
        return insert_for(self.dialect, table)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction for hot paths (no write lock on SQLite)."""
        async with self._readers() as session, session.begin():
            yield session

    async def ping(self) -> None:
        async with self._read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        async with self._read_engine.connect() as conn:
            return await conn.run_sync(
                lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
            )

    async def ensure_migrated(self) -> None:
        from bot.store.migrate import head_revision

        current = await self.current_revision()
        head = head_revision()
        if current != head:
            state = "empty" if current is None else f"at revision {current}"
            raise NotMigratedError(
                f"the database is {state}, this version needs {head}: "
                "run `tokencoach db upgrade` first"
            )

    async def dispose(self, *, wait_seconds: float = 5.0) -> None:
        """Close every connection. Connections still checked out are waited for (briefly):
        a task cancelled mid-transaction returns its connection from a shielded close, and
        disposing under it would cut its rollback short."""
        await self.reads.close()
        engines = {self.engine, self._read_engine}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        # The pool offers no awaitable "all returned": poll its counter.
        while loop.time() < deadline and any(_checked_out(e) for e in engines):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        for engine in engines:
            await engine.dispose()
