"""Hot-path reads on the driver (bot.store.reads): the same statement and values on both
databases, and a connection the server dropped is replaced without failing the read."""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
from sqlalchemy import Date, Integer, bindparam, select

from bot.runtime import Runtime
from bot.store.reads import SessionReads, Statement, any_of, day, moment
from bot.store.tables import Person, SourceState
from bot.store.types import UTCDateTime
from tests.helpers.databases import PG_ADMIN_DSN

AT = datetime(2026, 11, 18, 15, 0, 0, 123456, tzinfo=UTC)

PEOPLE = Statement(lambda d: select(Person.email).where(any_of(Person.id, "ids", d))
                   .order_by(Person.email))
FRESH = Statement(lambda d: select(SourceState.source, SourceState.data_as_of, bindparam(
    "day", type_=Date())).where(SourceState.data_as_of >= bindparam("at", type_=UTCDateTime()),
                                SourceState.records_total > bindparam("n", type_=Integer()))
    .order_by(SourceState.source))


async def test_values_go_in_and_come_out_the_same_on_both_databases(rt: Runtime) -> None:
    async with rt.db.session() as s:
        s.add(SourceState(source="openai", data_as_of=AT, records_total=5))
        s.add(SourceState(source="anthropic", data_as_of=AT.replace(hour=9), records_total=5))
        ids = [p.id for p in (await s.scalars(select(Person).order_by(Person.id))).all()][:3]
    rows = await rt.db.reads.fetch(FRESH, {"at": AT, "n": 1, "day": date(2026, 11, 2)})
    assert [(src, moment(at), day(d)) for src, at, d in rows] == [
        ("openai", AT, date(2026, 11, 2))]  # microseconds and the zone survive
    emails = [e for (e,) in await rt.db.reads.fetch(PEOPLE, {"ids": ids})]
    async with rt.db.reader() as s:
        expected = sorted((await s.scalars(select(Person.email).where(Person.id.in_(ids)))).all())
        assert emails == expected and len(emails) == 3
        # The same statement inside a session's transaction sees what it wrote.
        s.add(SourceState(source="litellm", data_as_of=AT, records_total=9))
        await s.flush()
        inside = await SessionReads(s).fetch(FRESH, {"at": AT, "n": 1, "day": date(2026, 11, 2)})
        assert [r[0] for r in inside] == ["litellm", "openai"]
        await s.rollback()


async def test_a_connection_the_server_dropped_is_replaced(rt: Runtime, backend: str) -> None:
    ids = {"ids": [1, 2]}
    assert await rt.db.reads.fetch(PEOPLE, ids)
    if backend != "postgresql":
        return  # a SQLite file has no server to drop it
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        dropped = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()", rt.db.engine.url.database)
    finally:
        await admin.close()
    assert dropped >= 1
    assert await rt.db.reads.fetch(PEOPLE, ids)  # retried once on a new connection


async def test_reads_open_again_after_the_database_is_disposed(rt: Runtime) -> None:
    """Like an engine's dispose(): a runtime whose server stopped (its cleanup disposes the
    database) still reads, e.g. the CLI after an in-process server or a test after a POST."""
    ids = {"ids": [1, 2]}
    before = await rt.db.reads.fetch(PEOPLE, ids)
    await rt.db.dispose()
    assert await rt.db.reads.fetch(PEOPLE, ids) == before
