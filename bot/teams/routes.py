"""POST /api/messages on the shared aiohttp server (botbuilder's CloudAdapter).

Before anything is parsed: in emulator mode (no app id) the request must come from this
computer, unproxied, with a loopback Host; otherwise the Authorization header must be a
well-formed Bearer JWT. Then the body is read up to MAX_BODY (Teams activities are a few
KiB; a message holds at most ~28 KB of text) and parsed. The JWT's signature, issuer,
audience and service URL are checked by botbuilder (401 if any is wrong); in emulator mode
the activity's serviceUrl must be loopback, the only place replies may go.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import jwt
from aiohttp import web
from botbuilder.core import TurnContext, serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity
from msrest.exceptions import DeserializationError

from bot.runtime import Runtime
from bot.server import is_loopback_url, local_refusal, read_limited
from bot.teams.auth import authentication
from bot.teams.turns import TeamsBot
from bot.usertext import received

log = logging.getLogger("tokencoach.teams")
MAX_BODY = 256 * 1024
BOT_FRAMEWORK_ALGORITHMS = ("RS256",)  # what botbuilder accepts


def build(rt: Runtime) -> tuple[CloudAdapter, TeamsBot, bool]:
    settings, auth = authentication(rt.env)
    adapter = CloudAdapter(auth)

    async def on_error(context: TurnContext, error: Exception) -> None:
        # Handlers answer their own failures; this is the adapter's: log, never leak.
        a = context.activity
        log.error("Teams turn failed", exc_info=error,
                  extra={"activity_type": a.type, "activity_name": a.name})

    adapter.on_turn_error = on_error
    return adapter, TeamsBot(rt), settings.anonymous


def bearer_problem(header: str) -> str | None:
    """Why an Authorization header can't hold a Bot Framework token, checked on its shape
    alone (no body parsed, no key fetched): None when botbuilder should verify it."""
    scheme, _, token = header.partition(" ")
    if scheme != "Bearer" or not token.strip():
        return "expected Authorization: Bearer <token>"
    try:
        head = jwt.get_unverified_header(token.strip())
        claims = jwt.decode(token.strip(), options={"verify_signature": False})
    except jwt.PyJWTError:
        return "the bearer token is not a JWT"
    if head.get("alg") not in BOT_FRAMEWORK_ALGORITHMS or not claims.get("iss"):
        return "the bearer token is not a Bot Framework token"
    return None


def _refused(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


def mount(app: web.Application, rt: Runtime) -> None:
    adapter, bot, anonymous = build(rt)

    async def messages(request: web.Request) -> web.StreamResponse:
        auth_header = request.headers.get("Authorization", "")
        if anonymous:
            refusal = local_refusal(request)
            if refusal:
                log.warning("Teams emulator request refused", extra={"reason": refusal,
                                                                      "remote": request.remote})
                return _refused(403, f"Teams emulator mode {refusal}")
            auth_header = ""  # unauthenticated by design; the checks above are the guard
        else:
            problem = bearer_problem(auth_header)
            if problem:
                return _refused(401, problem)
        if "application/json" not in request.headers.get("Content-Type", ""):
            raise web.HTTPUnsupportedMediaType(text="expected application/json")
        raw = await read_limited(request, MAX_BODY)
        try:
            body: Any = json.loads(raw)
        except (ValueError, RecursionError):
            return _refused(400, "malformed JSON")
        if not isinstance(body, dict) or not body.get("type"):
            return _refused(400, "expected a Bot Framework activity")
        body = received(body)
        try:
            activity = Activity().deserialize(body)
        except (DeserializationError, ValueError, TypeError, AttributeError):
            return _refused(400, "malformed Bot Framework activity")
        if anonymous and not is_loopback_url(activity.service_url or ""):
            log.warning("Teams emulator request refused: serviceUrl is not loopback")
            return _refused(403, "Teams emulator mode only replies to a loopback serviceUrl")
        try:
            invoke = await adapter.process_activity(auth_header, activity, bot.on_turn)
        except (PermissionError, jwt.PyJWTError) as exc:
            log.info("Teams request refused: invalid token", extra={"error": type(exc).__name__})
            return _refused(401, "invalid Bot Framework token")
        if invoke:
            return web.json_response(data=serializer_helper(invoke.body), status=invoke.status)
        return web.Response(status=201)

    app.router.add_post("/api/messages", messages)
