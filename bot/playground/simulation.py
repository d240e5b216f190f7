"""Simulated time in the playground: "As if it were" runs against a copy of the store.

Starting a simulation copies the SQLite store (SQLite's online backup, consistent while the
bot keeps writing) into a temporary file. From then on the page reads and writes only the
copy, on a clock that starts at the chosen moment and runs on from there; the real store
is not touched, and the real scheduler keeps running against it in the background. "Return
to now" throws the copy away and the page shows the real store again, as it was left.

Simulated time only moves forward: it may not start before the jobs last ran for real,
and inside a simulation it may not go back. PostgreSQL is shared with other processes and
is not copied from here, so on PostgreSQL the playground refuses simulated time.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import tempfile
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.outbox import OutboxSender
from bot.playground.deliver import PlaygroundDeliverer
from bot.ratelimit import RateLimiter
from bot.runtime import Runtime
from bot.scheduling.simulated import Rewind, check_forward, label
from bot.store import Database
from bot.timeutil import as_utc

log = logging.getLogger("tokencoach.playground")
# A chosen time this close behind the simulated clock counts as "now" (the page's field
# has minutes; the clock moved on while the person typed).
SLACK = timedelta(minutes=2)


class Unavailable(Exception):
    """Simulated time is not possible here, or not at that time; the message says why."""


def _sqlite_path(rt: Runtime) -> Path | None:
    url = make_url(rt.db.url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


class Simulation:
    """The copy of the store, the runtime on it, and its own outbox sender."""

    def __init__(self, real: Runtime, folder: Path, at: datetime):
        self.folder = folder
        self.db = Database(f"sqlite+aiosqlite:///{folder / 'simulated.db'}", pool_size=4)
        self._offset = at - real.real_now()
        self.rt = replace(
            real,
            db=self.db,
            clock=lambda: real.real_now() + self._offset,
            simulated=True,
            real_clock=real.real_now,
            platforms={},
            outbox_wakeup=None,
            limiter=RateLimiter(),
        )
        self.rt.platforms["playground"] = PlaygroundDeliverer(self.rt)
        self.sender = OutboxSender(self.rt)  # delivers into the copy's conversations
        self._task = asyncio.create_task(self.sender.run())

    def move_to(self, at: datetime) -> None:
        self._offset = at - self.rt.real_now()

    async def close(self) -> None:
        self.sender.stop()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.db.dispose()
        shutil.rmtree(self.folder, ignore_errors=True)


class Worlds:
    """Which store the playground shows: the real one, or a simulation's copy."""

    def __init__(self, real: Runtime):
        self.real = real
        self.sim: Simulation | None = None
        self.generation = 0  # changes whenever the page must drop what it shows
        self._lock = asyncio.Lock()

    @property
    def rt(self) -> Runtime:
        return self.sim.rt if self.sim else self.real

    @property
    def world(self) -> str:
        return f"sim-{self.generation}" if self.sim else f"real-{self.generation}"

    async def go_to(self, at: datetime) -> Runtime:
        """Start a simulation at ``at``, or move the running one forward to it."""
        async with self._lock:
            if self.sim is not None:
                now = self.sim.rt.now()
                if as_utc(at) < as_utc(now) - SLACK:
                    shown = label(now, self.real.tz)
                    raise Unavailable(
                        f"Simulated time only moves forward: it is already {shown} here. "
                        "Use Return to now to start again from the real store."
                    )
                self.sim.move_to(max(as_utc(at), as_utc(now)))
                return self.sim.rt
            source = _sqlite_path(self.real)
            if source is None:
                raise Unavailable(
                    "Simulated time needs the playground's SQLite store: it runs on a copy of "
                    "the database, and a PostgreSQL database is shared with other processes. "
                    "Run due jobs now (without a time) works; for time travel use `make run`."
                )
            try:
                await check_forward(self.real, at)
            except Rewind as exc:
                raise Unavailable(f"Not simulated: {exc}.") from None
            folder = Path(tempfile.mkdtemp(prefix="tokencoach-simulated-"))
            try:
                await asyncio.to_thread(_copy, source, folder / "simulated.db")
            except Exception:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            self.sim = Simulation(self.real, folder, at)
            self.generation += 1
            log.info("simulated time started", extra={"at": at.isoformat(), "copy": str(folder)})
            return self.sim.rt

    async def back_to_now(self) -> bool:
        """Throw the simulation away; False if there was none."""
        async with self._lock:
            sim, self.sim = self.sim, None
            if sim is None:
                return False
            self.generation += 1
        await sim.close()
        log.info("simulated time ended; the copy was discarded")
        return True
