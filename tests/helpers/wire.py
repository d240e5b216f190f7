"""Counting what an application asks its database, on the real drivers.

``PgWire`` is a TCP proxy in front of the real PostgreSQL: point a DATABASE_URL at it and
it counts, per direction change, the round trips clients make (a client sending after the
server answered starts one) and the statements they run (protocol messages Query and
Execute; see https://www.postgresql.org/docs/current/protocol-message-formats.html).

``sqlite_statements`` counts every statement the sqlite3 driver runs on any connection
opened while it is active (BEGIN and COMMIT included), through sqlite3's own trace hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104


@dataclass
class Counts:
    round_trips: int = 0
    statements: int = 0
    sql: list[str] = field(default_factory=list)  # SQLite: the statements themselves


class _Conn:
    """One client connection: parses what the client sends, notes whose turn it is."""

    def __init__(self, counts: Counts):
        self.counts = counts
        self.buffer = b""
        self.typed = False  # past the startup packet: every message has a type byte
        self.answered = True  # the server spoke since the client last did

    def from_client(self, data: bytes) -> None:
        if self.answered:
            self.counts.round_trips += 1
            self.answered = False
        self.buffer += data
        while True:
            if not self.typed:
                if len(self.buffer) < 8:
                    return
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    return
                self.buffer = self.buffer[length:]
                self.typed = code not in (SSL_REQUEST, GSSENC_REQUEST)
                continue
            if len(self.buffer) < 5:
                return
            kind = self.buffer[:1]
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            self.buffer = self.buffer[1 + length:]
            if kind in (b"Q", b"E"):
                self.counts.statements += 1

    def from_server(self) -> None:
        self.answered = True


class PgWire:
    def __init__(self, host: str = "127.0.0.1", port: int = 5432):
        self.upstream = (host, port)
        self.counts = Counts()
        self.port = 0

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    seen: Any) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                seen(data)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        conn = _Conn(self.counts)
        await asyncio.gather(self._pipe(reader, up_writer, conn.from_client),
                             self._pipe(up_reader, writer, lambda _data: conn.from_server()))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PgWire]:
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()


@contextlib.contextmanager
def sqlite_statements() -> Iterator[Counts]:
    """Counts statements on sqlite3 connections opened inside the block."""
    counts = Counts()
    real = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        con = real(*args, **kwargs)

        def traced(sql: str) -> None:
            counts.statements += 1
            counts.sql.append(sql)

        con.set_trace_callback(traced)
        return con

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        yield counts
    finally:
        sqlite3.connect = real  # type: ignore[assignment]
