"""The weekly-spend chart: a stacked bar per week by category, last 8 weeks (PNG).

The digest stores the chart's data; the PNG is rendered on first use (Slack upload,
Teams or playground fetch) and cached, so computing thousands of digests stays fast.
Matplotlib's object API (no pyplot) keeps rendering thread-safe.
"""

from __future__ import annotations

import asyncio
import io
from datetime import date
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from sqlalchemy import select

from bot.runtime import Runtime
from bot.store.tables import Chart

COLORS = {
    "agentic": "#2e7d32",
    "coding": "#66bb6a",
    "analysis": "#29b6f6",
    "writing": "#ab47bc",
    "summarization": "#ffa726",
    "chat": "#ef5350",
    "unknown": "#9e9e9e",
    "other": "#78909c",
}
ORDER = ["agentic", "coding", "analysis", "writing", "summarization", "chat", "unknown", "other"]


def spec(title: str, weeks: list[date], series: dict[str, list[int]]) -> dict[str, Any]:
    """What the chart shows, as JSON: week labels and micro-dollars per category."""
    return {
        "title": title,
        "weeks": [w.isoformat() for w in weeks],
        "series": {c: list(v) for c, v in series.items() if any(v)},
    }


def render(chart: dict[str, Any]) -> tuple[bytes, int]:
    """PNG bytes and the number of bars drawn (one per week and category with spend)."""
    weeks = [date.fromisoformat(w) for w in chart["weeks"]]
    series: dict[str, list[int]] = chart["series"]
    fig = Figure(figsize=(8, 4), dpi=100)
    ax = fig.add_subplot()
    labels = [w.strftime("%b %-d") for w in weeks]
    positions = list(range(len(weeks)))  # not the labels: they look like dates to matplotlib
    bottom = [0.0] * len(weeks)
    bars = 0
    for category in sorted(series, key=lambda c: ORDER.index(c) if c in ORDER else 99):
        # Plotting needs floats; money was summed exactly before it got here.
        heights = [v / 1_000_000 for v in series[category]]
        ax.bar(
            positions,
            heights,
            bottom=bottom,
            label=category.capitalize(),
            color=COLORS.get(category, "#607d8b"),
            width=0.7,
        )
        bars += sum(1 for h in heights if h > 0)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_xticks(positions, labels)
    ax.set_title(chart.get("title", "Weekly spend by category"), fontsize=11)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"${v:,.0f}"))
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(axis="x", labelsize=8)
    if series:
        ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue(), bars


async def png_for(rt: Runtime, chart_id: str) -> bytes | None:
    """The chart's PNG, rendering and caching it the first time it is asked for."""
    async with rt.db.reader() as s:
        row = (await s.execute(select(Chart.png, Chart.spec).where(Chart.id == chart_id))).first()
    if row is None:
        return None
    if row.png is not None:
        return bytes(row.png)
    if row.spec is None:
        return None
    png, _ = await asyncio.to_thread(render, row.spec)
    async with rt.db.session() as s:
        chart = await s.get(Chart, chart_id)
        if chart is not None and chart.png is None:
            chart.png = png
    return png
