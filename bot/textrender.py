"""Reply model -> plain text, for the CLI (`digest --dry-run`) and logs."""

from __future__ import annotations

import re

from bot.reply import (
    Actions,
    Context,
    Divider,
    Facts,
    Header,
    Image,
    Progress,
    Quote,
    Reply,
    Text,
)

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)


def _plain(text: str) -> str:
    return _BOLD.sub(r"\1", text)


def as_text(reply: Reply, *, chart_paths: dict[str, str] | None = None) -> str:
    lines: list[str] = []
    for b in reply.blocks:
        if isinstance(b, Header):
            lines += [b.text, "=" * min(len(b.text), 72)]
        elif isinstance(b, Text):
            lines.append(_plain(b.text))
        elif isinstance(b, Facts):
            if b.title:
                lines.append(f"{b.title}:")
            width = max((len(f.label) for f in b.items), default=0)
            lines += [f"  {f.label.ljust(width)}  {_plain(f.value)}" for f in b.items]
        elif isinstance(b, Progress):
            filled = b.percent * 30 // 100
            lines.append(
                f"{b.label} [{'#' * min(filled, 30)}{'.' * max(30 - filled, 0)}] "
                f"{b.percent}% {b.caption}"
            )
        elif isinstance(b, Actions):
            lines.append("  ".join(f"[{x.label}]" for x in b.buttons))
        elif isinstance(b, Context):
            lines.append(f"  ({_plain(b.text)})")
        elif isinstance(b, Quote):
            lines += [f"  > {line}" for line in b.text.splitlines()]
            if b.author:
                lines[-1] += f"   — {b.author}"
        elif isinstance(b, Image):
            where = (chart_paths or {}).get(b.chart_id or "", b.url or b.chart_id or "")
            lines.append(f"[chart: {b.title or b.alt}] {where}")
        elif isinstance(b, Divider):
            lines.append("-" * 40)
    return "\n".join(lines)
