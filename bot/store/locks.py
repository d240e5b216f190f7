"""Transaction-scoped locks for work that must not interleave across replicas."""

from __future__ import annotations

import zlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


async def xact_lock(session: AsyncSession, name: str) -> None:
    """Hold a named lock until the transaction ends.

    PostgreSQL: an advisory lock. SQLite: write transactions already begin IMMEDIATE,
    which serializes writers, so there is nothing more to take.
    """
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(name.encode()) - 2**31
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
