"""POST /slack/events on the shared aiohttp server (commands, interactivity, events)."""

from __future__ import annotations

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.runtime import Runtime
from bot.slack.app import build_bolt


def mount(app: web.Application, rt: Runtime) -> None:
    bolt = build_bolt(rt)

    async def slack_events(request: web.Request) -> web.Response:
        # Bolt verifies the signature over the raw body before anything runs.
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app.router.add_post("/slack/events", slack_events)
