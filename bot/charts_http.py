"""Serving stored chart PNGs behind signed, expiring links."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from bot.digest.chart import png_for
from bot.runtime import Runtime
from bot.signing import sign, verify

LINK_TTL = timedelta(days=14)


def chart_path(chart_id: str) -> str:
    return f"/charts/{chart_id}.png"


def chart_url(rt: Runtime, chart_id: str, *, absolute: bool = True) -> str:
    link = sign(rt, chart_path(chart_id), ttl=LINK_TTL)
    base = (rt.config.server.public_url or "").rstrip("/")
    return f"{base}{link}" if absolute and base else link


def mount(app: web.Application, rt: Runtime) -> None:
    async def get_chart(request: web.Request) -> web.Response:
        chart_id = request.match_info["chart_id"]
        if not verify(rt, chart_path(chart_id), request.query.get("exp"), request.query.get("sig")):
            raise web.HTTPForbidden(text="link expired or invalid")
        png = await png_for(rt, chart_id)
        if png is None:
            raise web.HTTPNotFound(text="no such chart")
        return web.Response(
            body=png, content_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
        )

    app.router.add_get(r"/charts/{chart_id:[A-Za-z0-9_-]{1,64}}.png", get_chart)
