"""Reads on the hot path, on the driver itself.

A ``Statement`` is written once in SQLAlchemy Core and compiled once per dialect to the
driver's own SQL. ``DriverReads`` runs it on a small pool of raw driver connections (asyncpg
or aiosqlite) that belongs to the process: no pre-ping (a dead connection is replaced and
the read retried once, which a read may be), no BEGIN/COMMIT (a single statement reads one
snapshot on both databases), and the driver's prepared-statement cache, so a read is one
round trip. ``SessionReads`` runs the same statement inside a session's transaction, for
callers that must see what they have written but not yet committed.

Values come back as the driver gives them: on SQLite, dates and times are text (``day`` and
``moment`` turn them into ``date`` and aware ``datetime``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from sqlalchemy import Integer, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncSession

Row = Sequence[Any]
ACQUIRE_TIMEOUT = 5.0  # seconds, as the engine's pool_timeout: answer "try again", don't hang


class StoreUnavailable(ConnectionError):
    """The database could not be reached for a read (counted in ``bot.store.UNAVAILABLE``)."""


class _Lost(Exception):
    """A connection failed itself (not its statement); its cause is the driver's error."""


@dataclass
class Statement:
    """``build(dialect_name)`` gives the Core statement; it is compiled on first use.

    Values written into the statement (``status IN ('active', 'ended')``) are kept with
    it; the parameters left without a value (``bindparam("pid")``) are given by name to
    ``args`` on each run."""

    build: Callable[[str], Any]
    _compiled: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = field(
        default_factory=dict)

    def compiled(self, dialect: Dialect) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        found = self._compiled.get(dialect.name)
        if found is None:
            c = self.build(dialect.name).compile(dialect=dialect)
            open_ = {name for name, bind in c.binds.items() if bind.required}
            # Expanding IN lists are rendered into the SQL (their values are fixed).
            state = c.construct_expanded_state({name: None for name in open_})
            fixed = {k: v for k, v in state.parameters.items() if k not in open_}
            found = (state.statement, tuple(state.positiontup or ()), fixed)
            self._compiled[dialect.name] = found
        return found

    def args(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        sql, names, fixed = self.compiled(dialect)
        values = [params[n] if n in params else fixed[n] for n in names]
        if dialect.name == "sqlite":
            return sql, [_sqlite_value(v) for v in values]
        return sql, values


def _sqlite_value(value: Any) -> Any:
    # As SQLAlchemy's SQLite types store them (bot.store.types.UTCDateTime: naive UTC).
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return value


def any_of(column: Any, name: str, dialect: str, item: Any = Integer) -> Any:
    """``column IN (the list given as parameter ``name``)``, as ONE parameter, so one
    statement serves any number of values (an array on PostgreSQL, JSON on SQLite)."""
    if dialect == "postgresql":
        return column == func.any(bindparam(name, type_=ARRAY(item)))
    each = func.json_each(bindparam(name)).table_valued("value")
    return column.in_(select(each.c.value))


def day(value: Any) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def moment(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Reads(Protocol):
    dialect: Dialect

    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> list[Row]: ...


class SessionReads:
    """``Reads`` inside a session's transaction (sees its own uncommitted writes)."""

    def __init__(self, session: AsyncSession):
        self.session = session
        bind = session.get_bind()
        self.dialect = bind.dialect

    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> list[Row]:
        sql, args = stmt.args(self.dialect, params)
        conn = await self.session.connection()
        return list((await conn.exec_driver_sql(sql, tuple(args))).all())


class DriverReads:
    """``Reads`` on the process's own pool of raw driver connections."""

    def __init__(self, url: str, dialect: Dialect, size: int):
        self.dialect = dialect
        self._url = make_url(url)
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(size)
        # Bumped by close(): connections of an older generation are closed when given back.
        # Like an engine's dispose(), closing does not end the object: a later read opens
        # a new connection (a runtime is reused after its server stops, e.g. in the CLI).
        self._generation = 0
        self._born: dict[int, int] = {}

    async def fetch(self, stmt: Statement, params: Mapping[str, Any]) -> list[Row]:
        sql, args = stmt.args(self.dialect, params)
        try:
            async with asyncio.timeout(ACQUIRE_TIMEOUT):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise StoreUnavailable("no database connection free for a read") from exc
        try:
            conn = self._idle.pop() if self._idle else None
            if conn is not None and self._pg and conn.is_closed():
                conn = None  # the server closed it while it was idle
            if conn is not None:
                try:
                    return await self._use(conn, sql, args)
                except _Lost:
                    pass  # gone while idle (a restart, a timeout): once more, on a new one
            try:
                return await self._use(await self._connect(), sql, args)
            except _Lost as lost:
                raise StoreUnavailable(repr(lost.__cause__)) from lost.__cause__
        finally:
            self._slots.release()

    async def _use(self, conn: Any, sql: str, args: list[Any]) -> list[Row]:
        """Run on ``conn`` and give it back; a connection that failed (or was interrupted
        mid-statement) is closed instead, and its own failure raised as ``_Lost``."""
        try:
            rows = await self._run(conn, sql, args)
        except Exception as exc:
            if not self._lost(exc):
                await self._release(conn)
                raise
            await self._discard(conn)
            raise _Lost from exc
        except BaseException:
            await self._discard(conn)
            raise
        await self._release(conn)
        return rows

    async def _release(self, conn: Any) -> None:
        if self._born.get(id(conn)) != self._generation:  # closed while this read ran
            await self._discard(conn)
        else:
            self._idle.append(conn)

    # --- the two drivers ------------------------------------------------------------

    @property
    def _pg(self) -> bool:
        return self.dialect.name == "postgresql"

    async def _connect(self) -> Any:
        try:
            if self._pg:
                import asyncpg

                dsn = self._url.set(drivername="postgresql").render_as_string(
                    hide_password=False)
                conn = await asyncpg.connect(dsn, timeout=5, command_timeout=60)
            else:
                import aiosqlite

                conn = await aiosqlite.connect(self._url.database or "", timeout=30,
                                               isolation_level=None)
                for pragma in ("busy_timeout=30000", "cache_size=-16384", "query_only=1"):
                    await conn.execute(f"PRAGMA {pragma}")
        except (OSError, TimeoutError) as exc:
            raise StoreUnavailable(repr(exc)) from exc
        self._born[id(conn)] = self._generation
        return conn

    async def _run(self, conn: Any, sql: str, args: list[Any]) -> list[Row]:
        if self._pg:
            return list(await conn.fetch(sql, *args))
        return list(await conn.execute_fetchall(sql, args))

    def _lost(self, exc: BaseException) -> bool:
        """Did the connection itself fail (not the statement)?"""
        if isinstance(exc, OSError | ConnectionError):
            return True
        if self._pg:
            import asyncpg

            return isinstance(exc, asyncpg.InterfaceError | asyncpg.PostgresConnectionError
                              | asyncpg.exceptions.AdminShutdownError
                              | asyncpg.exceptions.CannotConnectNowError
                              | asyncpg.exceptions.InternalClientError)
        return False

    async def _discard(self, conn: Any) -> None:
        self._born.pop(id(conn), None)
        with contextlib.suppress(Exception):  # already broken: nothing to release
            if self._pg:
                conn.terminate()
            else:
                await conn.close()

    async def close(self) -> None:
        self._generation += 1
        idle, self._idle = self._idle, []
        for conn in idle:
            self._born.pop(id(conn), None)
            await conn.close()
