"""Socket Mode (SLACK_APP_TOKEN set): the same Bolt app over a websocket, no public URL."""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

from bot.runtime import Runtime
from bot.slack.app import build_bolt

log = logging.getLogger("tokencoach.slack")


async def start_socket_mode(app: web.Application, rt: Runtime) -> None:
    handler = AsyncSocketModeHandler(build_bolt(rt), rt.env.slack_app_token)

    async def start(_app: web.Application) -> None:
        await handler.connect_async()
        log.info("Slack Socket Mode connected")

    async def stop(_app: web.Application) -> None:
        await handler.close_async()

    app.on_startup.append(start)
    app.on_cleanup.insert(0, stop)
