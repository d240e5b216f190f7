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

from bot.digest.chart import png_for
from bot.playground import api
from bot.playground.simulation import Worlds
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
    worlds: Worlds, fn: Callable[[Worlds, dict[str, Any]], Awaitable[dict[str, Any]]]
) -> Handler:
    """A POST endpoint: JSON in, JSON out, refusals as {"error": …} with their status.
    Every answer says which store it came from (``world``: real, or a simulation)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            return _json({**await fn(worlds, await _body(request)), "world": worlds.world})
        except api.Refused as exc:
            return _json({"error": str(exc)}, exc.status)

    return guarded(handler)


async def _messages(worlds: Worlds, body: dict[str, Any]) -> dict[str, Any]:
    known = body.get("known") or {}
    if not isinstance(known, dict):
        raise api.Refused("known must be an object")
    rt = worlds.rt
    return await api.read(rt, await api.where(rt, body), {str(k): str(v) for k, v in known.items()})


async def _send(worlds: Worlds, body: dict[str, Any]) -> dict[str, Any]:
    rt = worlds.rt
    return await api.say(rt, await api.where(rt, body), str(body.get("text") or ""))


async def _action(worlds: Worlds, body: dict[str, Any]) -> dict[str, Any]:
    rt = worlds.rt
    return await api.act(rt, await api.where(rt, body), body)


async def _run_due(worlds: Worlds, body: dict[str, Any]) -> dict[str, Any]:
    at = body.get("at")
    return await api.run_jobs(worlds, str(at) if at else None)


async def _back_to_now(worlds: Worlds, body: dict[str, Any]) -> dict[str, Any]:
    return await api.back_to_now(worlds)


def mount(app: web.Application, rt: Runtime) -> None:
    worlds = Worlds(rt)

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
        return _json({**await api.directory(worlds.rt), "world": worlds.world})

    async def chart(request: web.Request) -> web.StreamResponse:
        png = await png_for(worlds.rt, request.match_info["chart_id"])
        if png is None:
            raise web.HTTPNotFound(text="no such chart")
        return web.Response(
            body=png, content_type="image/png", headers={"Cache-Control": "no-store"}
        )

    async def discard(_app: web.Application) -> None:
        await worlds.back_to_now()

    app.router.add_get("/", guarded(index))
    app.router.add_get("/playground/static/{name}", guarded(static))
    app.router.add_get("/playground/api/directory", guarded(directory))
    app.router.add_get(r"/playground/charts/{chart_id:[A-Za-z0-9_-]{1,64}}.png", guarded(chart))
    app.router.add_post("/playground/api/messages", json_api(worlds, _messages))
    app.router.add_post("/playground/api/send", json_api(worlds, _send))
    app.router.add_post("/playground/api/action", json_api(worlds, _action))
    app.router.add_post("/playground/api/run-due", json_api(worlds, _run_due))
    app.router.add_post("/playground/api/back-to-now", json_api(worlds, _back_to_now))
    app.on_cleanup.insert(0, discard)  # before the runtime closes
