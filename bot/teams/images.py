"""Where a card's chart images come from: a signed link under ``server.public_url`` (Teams
fetches it), else the PNG inline as a data URI (the renderer falls back to a line of
text if that would push the card over the size limit)."""

from __future__ import annotations

import base64

from bot.charts_http import chart_url
from bot.reply import Image, Reply
from bot.runtime import Runtime
from bot.store.tables import Chart


async def sources(rt: Runtime, reply: Reply) -> dict[str, str]:
    ids = {b.chart_id for b in reply.blocks if isinstance(b, Image) and b.chart_id and not b.url}
    if not ids:
        return {}
    if rt.config.server.public_url:
        return {i: chart_url(rt, i) for i in ids}
    out = {}
    async with rt.db.reader() as s:
        for chart_id in sorted(ids):
            chart = await s.get(Chart, chart_id)
            if chart is not None and chart.png:
                out[chart_id] = "data:image/png;base64," + base64.b64encode(chart.png).decode()
    return out
