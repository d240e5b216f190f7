"""Servers the benchmarks load, each in its own process (the load generator is elsewhere).

    python -m benchmarks.serve app  --db URL --port P [--slack] [--ingest-token T]
    python -m benchmarks.serve bare --port P
    python -m benchmarks.serve bolt --port P

``app`` is the real aiohttp application (bot.server.build_app: middleware, Bolt with
signature verification, the webhook) with the clock stopped at the benchmarks' ANCHOR and
no scheduler (a benchmark measures requests, not background jobs). With ``--slack`` it
also serves a minimal fake of the Slack Web API on a second port of the same process; the
bot calls it once (auth.test, cached by Bolt): people have stored Slack ids, so /tokens
makes no users.info calls.

``bare`` is the floor: a plain aiohttp endpoint that reads the body and answers a fixed
JSON of about the size of a /tokens card.

``bolt`` is slack_bolt alone: an AsyncApp configured as the bot's (signature verification,
process_before_response, the same aiohttp adapter) whose only listener acks /tokens with
that fixed JSON: no database, no middleware of ours. It shows what the library the issue
prescribes costs per request before the bot does anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from aiohttp import web

from benchmarks.common import ANCHOR, CONFIG

SIGNING_SECRET = "bench-signing-secret-0123456789"
BOT_TOKEN = "xoxb-bench-token"
INGEST_TOKEN = "bench-ingest-token"

# A canned answer shaped like an ephemeral /tokens card (about 2.3 kB).
BARE_REPLY = {
    "response_type": "ephemeral",
    "text": "$812.40 of $1,500.00 spent in November, $687.60 left",
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 180}}
               for _ in range(10)],
}


def fake_slack_app() -> web.Application:
    """auth.test and users.info, answered as Slack documents them."""

    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        await request.read()
        if method == "auth.test":
            return web.json_response({"ok": True, "url": "https://acme.slack.com/",
                                      "team": "Acme", "user": "tokencoach",
                                      "team_id": "T0ACME", "user_id": "UBOT",
                                      "bot_id": "BBOT"})
        return web.json_response({"ok": False, "error": "user_not_found"})

    app = web.Application()
    app.router.add_route("*", "/api/{method}", api)
    return app


def bare_app() -> web.Application:
    body = json.dumps(BARE_REPLY).encode()

    async def events(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", lambda _r: _ok())
    return app


def bolt_app(slack_api: str) -> web.Application:
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    bolt = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=slack_api),
                    signing_secret=SIGNING_SECRET, process_before_response=True,
                    raise_error_for_unhandled_request=False)

    @bolt.command("/tokens")
    async def tokens(ack: Any) -> None:
        await ack(**BARE_REPLY)

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", lambda _r: _ok())
    return app


async def _start_fake_slack(runners: list[web.AppRunner]) -> str:
    """The fake Web API on a free port of this process; returns its base URL."""
    fake = web.AppRunner(fake_slack_app(), access_log=None)
    await fake.setup()
    await web.TCPSite(fake, "127.0.0.1", 0).start()
    runners.append(fake)
    return f"http://127.0.0.1:{fake.addresses[0][1]}/api/"


async def _ok() -> web.Response:
    return web.json_response({"status": "ok"})


async def _serve_app(args: argparse.Namespace) -> None:
    from bot.config.env import Env
    from bot.directory import sync_directory
    from bot.logs import setup_logging
    from bot.runtime import Runtime
    from bot.server import build_app

    environ = {"DATABASE_URL": args.db}
    runners: list[web.AppRunner] = []
    if args.slack:
        environ.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET,
                       SLACK_API_URL=await _start_fake_slack(runners))
    if args.ingest_token:
        environ["TOKENCOACH_INGEST_TOKEN"] = args.ingest_token
    env = Env.from_environ(environ)
    # What `tokencoach serve` sets up: INFO-level JSON logs, the same pool size.
    setup_logging(level="INFO", json_logs=True, secrets=env.secrets())
    rt = Runtime.create(CONFIG, env).frozen_at(ANCHOR)
    await rt.db.ensure_migrated()
    await sync_directory(rt)
    runner = web.AppRunner(build_app(rt, background=False), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    runners.append(runner)
    try:
        await asyncio.Event().wait()
    finally:
        for r in reversed(runners):
            await r.cleanup()


async def _serve_plain(args: argparse.Namespace) -> None:
    runners: list[web.AppRunner] = []
    if args.kind == "bolt":  # Bolt calls auth.test once (cached), as in the bot
        app = bolt_app(await _start_fake_slack(runners))
    else:
        app = bare_app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.port).start()
    runners.append(runner)
    try:
        await asyncio.Event().wait()
    finally:
        for r in reversed(runners):
            await r.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve")
    parser.add_argument("kind", choices=["app", "bare", "bolt"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db")
    parser.add_argument("--slack", action="store_true")
    parser.add_argument("--ingest-token")
    args = parser.parse_args()
    try:
        asyncio.run(_serve_app(args) if args.kind == "app" else _serve_plain(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
