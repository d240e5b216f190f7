"""The real server and a fake Slack in a background thread with their own event loop,
for synchronous tests (hypothesis drives plain functions, not coroutines)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web


class ThreadedApps:
    """Start the (app, port) pairs built by ``factory`` inside the thread's loop; port 0
    picks a free one."""

    def __init__(self, factory: Callable[[], Awaitable[list[tuple[web.Application, int]]]]):
        self.factory = factory
        self.bases: list[str] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        runners = []
        try:
            for app, port in await self.factory():
                runner = web.AppRunner(app, access_log=None)
                await runner.setup()
                site = web.TCPSite(runner, "127.0.0.1", port)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                self.bases.append(f"http://127.0.0.1:{port}")
                runners.append(runner)
        except BaseException as exc:  # surface setup errors in the test thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        for runner in reversed(runners):
            await runner.cleanup()

    def call(self, coro: Awaitable[Any]) -> Any:
        """Run a coroutine on the apps' loop (e.g. to inspect the database)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)  # type: ignore[arg-type]

    def __enter__(self) -> ThreadedApps:
        self._thread.start()
        self._ready.wait(timeout=60)
        if self._error:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)
