"""The playground's HTTP routes (loopback only)."""

from __future__ import annotations

from aiohttp import web

from bot.runtime import Runtime


def mount(app: web.Application, rt: Runtime) -> None:
    async def index(_request: web.Request) -> web.Response:
        return web.Response(text="tokencoach local playground", content_type="text/plain")

    app.router.add_get("/", index)
