"""POST /api/messages on the shared aiohttp server (botbuilder's CloudAdapter)."""

from __future__ import annotations

import logging

from aiohttp import web
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter

from bot.runtime import Runtime
from bot.teams.auth import authentication
from bot.teams.turns import TeamsBot

log = logging.getLogger("tokencoach.teams")


def build(rt: Runtime) -> tuple[CloudAdapter, TeamsBot]:
    _, auth = authentication(rt.env)
    adapter = CloudAdapter(auth)

    async def on_error(context: TurnContext, error: Exception) -> None:
        # Handlers answer their own failures; this is the adapter's: log, never leak.
        a = context.activity
        log.error("Teams turn failed", exc_info=error,
                  extra={"activity_type": a.type, "activity_name": a.name})

    adapter.on_turn_error = on_error
    return adapter, TeamsBot(rt)


def mount(app: web.Application, rt: Runtime) -> None:
    adapter, bot = build(rt)

    async def messages(request: web.Request) -> web.StreamResponse:
        if "application/json" not in request.headers.get("Content-Type", ""):
            raise web.HTTPUnsupportedMediaType(text="expected application/json")
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(text="malformed JSON") from None
        if not isinstance(body, dict) or not body.get("type"):
            raise web.HTTPBadRequest(text="expected a Bot Framework activity")
        # The JWT (when an app id is configured) is checked inside process(): 401 if bad.
        response = await adapter.process(request, bot)
        return response if response is not None else web.Response(status=201)

    app.router.add_post("/api/messages", messages)
