"""The playground's HTTP routes: the page, its static files and JSON APIs under
/playground/api/. Loopback only.

`serve` already binds the playground to loopback; every route here checks again
(defence in depth): the client address must be loopback, no proxy may have forwarded
the request, the Host header must name loopback (so a DNS-rebinding page cannot reach
it from a browser), and writes must be same-origin JSON (so a cross-site form cannot).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.playground import api
from bot.runtime import Runtime
from bot.server import local_refusal, read_limited
from bot.usertext import received

log = logging.getLogger("tokencoach.playground")

STATIC = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {"app.js": "text/javascript", "app.css": "text/css"}
MAX_BODY = 64 * 1024
# Nothing inline, nothing from elsewhere (tutorial links open in a new tab; that is
# navigation, which this does not restrict). https: images allow Image(url=…).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refusal(request: web.Request) -> str | None:
    """Why this request may not reach the playground, or None."""
    local = local_refusal(request)
    if local:
        return f"the playground {local}"
    if request.method == "POST":
        if request.content_type != "application/json":
            return "expected a JSON body"
        origin = request.headers.get("Origin")
        if origin and origin != f"http://{request.host}":
            return "cross-origin requests are refused"
    return None


def guarded(handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        reason = refusal(request)
        if reason:
            log.warning(
                "playground request refused", extra={"reason": reason, "remote": request.remote}
            )
            return web.json_response({"error": reason}, status=403, headers=HEADERS)
        response = await handler(request)
        response.headers.update(HEADERS)
        return response

    return wrapper


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        raw = await read_limited(request, MAX_BODY)
    except web.HTTPRequestEntityTooLarge:
        raise api.Refused("request too large", 413) from None
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise api.Refused("malformed JSON") from exc
    if not isinstance(body, dict):
        raise api.Refused("expected a JSON object")
    return dict(received(body))


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


def json_api(
    rt: Runtime, fn: Callable[[Runtime, dict[str, Any]], Awaitable[dict[str, Any]]]
) -> Handler:
    """A POST endpoint: JSON in, JSON out, refusals as {"error": …} with their status."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return _json(await fn(rt, await _body(request)))
        except api.Refused as exc:
            return _json({"error": str(exc)}, exc.status)

    return guarded(handler)


async def _messages(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    known = body.get("known") or {}
    if not isinstance(known, dict):
        raise api.Refused("known must be an object")
    return await api.read(rt, await api.where(rt, body), {str(k): str(v) for k, v in known.items()})


async def _send(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    return await api.say(rt, await api.where(rt, body), str(body.get("text") or ""))


async def _action(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    return await api.act(rt, await api.where(rt, body), body)


async def _run_due(rt: Runtime, body: dict[str, Any]) -> dict[str, Any]:
    at = body.get("at")
    return await api.run_jobs(rt, str(at) if at else None)


def mount(app: web.Application, rt: Runtime) -> None:
    async def index(_request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            STATIC / "index.html",
            headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"},
        )

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_TYPES:
            raise web.HTTPNotFound()
        return web.FileResponse(
            STATIC / name,
            headers={
                "Content-Type": f"{STATIC_TYPES[name]}; charset=utf-8",
                "Cache-Control": "no-cache",
            },
        )

    async def directory(_request: web.Request) -> web.StreamResponse:
        return _json(await api.directory(rt))

    app.router.add_get("/", guarded(index))
    app.router.add_get("/playground/static/{name}", guarded(static))
    app.router.add_get("/playground/api/directory", guarded(directory))
    app.router.add_post("/playground/api/messages", json_api(rt, _messages))
    app.router.add_post("/playground/api/send", json_api(rt, _send))
    app.router.add_post("/playground/api/action", json_api(rt, _action))
    app.router.add_post("/playground/api/run-due", json_api(rt, _run_due))
