"""Hand-made usage records with known costs, written through the real writer."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from bot.money import to_micros
from bot.runtime import Runtime
from bot.timeutil import start_of_day
from bot.usage.record import RawUsage, record_key
from bot.usage.writer import UsageWriter

_seq = itertools.count()


def record(rt: Runtime, email: str, day: date, *, cost: str | None = "1.00",
           category: str | None = "chat", model: str = "gpt-4o", provider: str = "openai",
           tools: int = 0, input_tokens: int = 1000, output_tokens: int = 100) -> RawUsage:
    n = next(_seq)
    return RawUsage(
        key=record_key("crafted", email, day, n), source="import",
        occurred_at=start_of_day(day, rt.tz) + timedelta(hours=12), provider=provider,
        model=model, input_tokens=input_tokens, output_tokens=output_tokens, requests=1,
        tool_calls=tools, cost_micros=to_micros(cost) if cost is not None else None,
        category=category, user=email)


async def write(rt: Runtime, records: list[RawUsage]) -> None:
    writer = await UsageWriter.create(rt)
    await writer.write(records)
