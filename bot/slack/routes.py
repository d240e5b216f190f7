"""POST /slack/events on the shared aiohttp server (commands, interactivity, events).

Nothing of a request is parsed before Slack's signature is verified over its raw bytes:
the body is read up to MAX_BODY (a Slack request is a few KiB; the largest, a click on a
50-block message or a 100-block form, stays well under it), the timestamp must be a
whole number within five minutes, and the HMAC must match. Anything else is a 401 (413
for a body too large) and never reaches Bolt, whose parser and logs only ever see
requests Slack signed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot.runtime import Runtime
from bot.server import read_limited
from bot.slack.app import build_bolt
from bot.usertext import received

log = logging.getLogger("tokencoach.slack")
MAX_BODY = 1024 * 1024


def _unauthorized() -> web.Response:
    return web.json_response({"error": "invalid request signature"}, status=401)


def signed(verifier: SignatureVerifier, headers: Mapping[str, str], body: str) -> bool:
    """Slack's check (v0:timestamp:body, HMAC-SHA256), with the header shapes checked
    first so that odd values (a decimal or huge timestamp, non-ASCII) are a plain False."""
    timestamp = headers.get("X-Slack-Request-Timestamp", "")
    signature = headers.get("X-Slack-Signature", "")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if not (signature.isascii() and signature.startswith("v0=") and len(signature) < 100):
        return False
    # The verifier also refuses a timestamp more than five minutes off (a replay).
    return verifier.is_valid(body=body, timestamp=timestamp, signature=signature)


def mount(app: web.Application, rt: Runtime) -> None:
    bolt = build_bolt(rt)
    verifier = SignatureVerifier(rt.env.slack_signing_secret or "")

    async def slack_events(request: web.Request) -> web.StreamResponse:
        raw = await read_limited(request, MAX_BODY)
        try:
            body = raw.decode("utf-8")  # Slack sends UTF-8; the verifier decodes it anyway
        except UnicodeDecodeError:
            return web.json_response({"error": "the body is not UTF-8"}, status=400)
        if not signed(verifier, request.headers, body):
            log.info("Slack request refused: bad, missing or stale signature",
                     extra={"bytes": len(raw)})
            return _unauthorized()
        try:
            bolt_request = AsyncBoltRequest(body=body, query=request.query_string,
                                            headers=dict(request.headers))
        except (ValueError, TypeError, AttributeError, RecursionError):
            # Signed by Slack yet not a payload we can read: say so, don't trace.
            return web.json_response({"error": "malformed Slack payload"}, status=400)
        bolt_request.body = received(bolt_request.body)  # what listeners read
        return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))

    app.router.add_post("/slack/events", slack_events)
