"""A believable demo org: people from app.yaml (or synthetic at scale) and usage history.

Deterministic: the same person, day and category always give the same records (and the
same natural keys), so running the generator twice changes nothing. It streams batches
through the real writer, so it is also how benchmarks build their 20M-record stores.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, update

from bot.runtime import Runtime
from bot.store.tables import Person, Team, UsageRecord
from bot.timeutil import local_day
from bot.usage.record import RawUsage, record_key
from bot.usage.state import record_success
from bot.usage.writer import IngestStats, UsageWriter

# Category mix (percent of requests-weighted spend intent) and a monthly spend target.
PERSONAS: dict[str, tuple[dict[str, int], int]] = {
    "agentic": (
        {"agentic": 60, "coding": 15, "analysis": 10, "chat": 10, "summarization": 5},
        1300,
    ),
    "coder": ({"coding": 45, "agentic": 25, "chat": 15, "summarization": 15}, 700),
    "summarizer": ({"summarization": 70, "chat": 22, "writing": 8}, 420),
    "chatter": ({"chat": 65, "summarization": 20, "writing": 15}, 140),
    "writer": ({"writing": 50, "summarization": 25, "chat": 15, "analysis": 10}, 260),
    "analyst": ({"analysis": 45, "summarization": 25, "agentic": 15, "chat": 15}, 420),
    "light": ({"chat": 70, "summarization": 30}, 6),
}

# The demo org's people, by email local part; anyone else gets a persona by hash.
DEMO_PERSONAS = {
    "jordan.blake": "chatter",
    "dana.okafor": "analyst",
    "priya.raman": "agentic",
    "tomas.novak": "agentic",
    "aisha.bello": "coder",
    "kenji.watanabe": "agentic",
    "lena.fischer": "coder",
    "omar.haddad": "summarizer",
    "grace.kim": "coder",
    "rafael.costa": "chatter",
    "nina.petrova": "light",
    "marcus.webb": "summarizer",
    "sara.lindqvist": "summarizer",
    "david.osei": "summarizer",
    "mei.chen": "chatter",
    "lucas.martin": "summarizer",
    "fatima.zahra": "writer",
    "ivan.horvat": "summarizer",
    "chloe.dubois": "chatter",
    "noah.fitz": "light",
    "sofia.alvarez": "writer",
    "ben.carter": "summarizer",
    "hana.sato": "writer",
    "ella.nguyen": "analyst",
    "sam.okoro": "chatter",
    "maya.rossi": "summarizer",
    "leo.schmidt": "agentic",
    "zoe.bennett": "writer",
    "arjun.mehta": "chatter",
    "olivia.grant": "light",
}


@dataclass(frozen=True)
class Shape:
    """Per-request tokens and where the usage comes from."""

    source: str
    provider: str
    model: str
    input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0
    tools: int = 0
    product: str | None = None
    tags: tuple[str, ...] = ()


SHAPES: dict[str, list[tuple[int, Shape]]] = {
    "agentic": [
        (
            50,
            Shape(
                "claude_code",
                "anthropic",
                "claude-sonnet-4-5",
                9000,
                3500,
                60000,
                4000,
                product="claude_code",
            ),
        ),
        (30, Shape("litellm", "anthropic", "claude-sonnet-4-5", 12000, 3000, 40000, 0, tools=6)),
        (20, Shape("litellm", "openai", "gpt-5", 15000, 2500, 20000, 0, tools=4)),
    ],
    "coding": [
        (70, Shape("openai", "openai", "gpt-5-codex", 8000, 2200, 6000)),
        (30, Shape("openai", "openai", "gpt-4.1-codex-preview", 6000, 1500, 2000)),
    ],
    "analysis": [(100, Shape("litellm", "openai", "gpt-4.1", 5000, 900, tags=("analytics",)))],
    "writing": [
        (70, Shape("openai", "openai", "gpt-4o", 600, 1500)),
        (30, Shape("anthropic", "anthropic", "claude-sonnet-4-5", 700, 1400)),
    ],
    "summarization": [
        (60, Shape("openai", "openai", "gpt-4o", 12000, 450)),
        (25, Shape("anthropic", "anthropic", "claude-sonnet-4-5", 14000, 500)),
        (15, Shape("openai", "openai", "gpt-4o-mini", 10000, 400)),
    ],
    "chat": [
        (50, Shape("openai", "openai", "gpt-4o", 700, 250)),
        (30, Shape("openai", "openai", "gpt-4o-mini", 600, 220)),
        (20, Shape("anthropic", "anthropic", "claude-haiku-4-5", 650, 260)),
    ],
}
SOURCES = ("openai", "anthropic", "claude_code", "litellm")


def _seed(*parts: object) -> int:
    return int.from_bytes(
        hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest(), "big"
    )


def persona_of(email: str) -> str:
    local = email.split("@")[0]
    if local in DEMO_PERSONAS:
        return DEMO_PERSONAS[local]
    names = list(PERSONAS)
    weights = [6, 10, 26, 22, 14, 12, 10]  # a realistic org is mostly summaries and chat
    return random.Random(_seed(email)).choices(names, weights)[0]


def _cost_per_request(shape: Shape) -> float:
    # Rough list prices, only to turn a monthly target into request counts.
    rates = {
        "gpt-4o": (2.5, 10),
        "gpt-4o-mini": (0.15, 0.6),
        "gpt-5": (1.25, 10),
        "gpt-5-codex": (1.25, 10),
        "gpt-4.1": (2, 8),
        "gpt-4.1-codex-preview": (2, 8),
        "claude-sonnet-4-5": (3, 15),
        "claude-haiku-4-5": (1, 5),
    }
    i, o = rates[shape.model]
    return (
        shape.input * i
        + shape.output * o
        + shape.cache_read * i * 0.1
        + shape.cache_write * i * 1.25
    ) / 1e6


def person_day_records(
    email: str, day: date, tz: str, *, until: datetime | None = None
) -> Iterator[RawUsage]:
    """One person's usage for one day: a few hourly buckets per category."""
    persona = persona_of(email)
    mix, monthly = PERSONAS[persona]
    rng = random.Random(_seed(email, day))
    intensity = 0.5 + random.Random(_seed(email)).random() * 0.9
    weekend = day.weekday() >= 5
    day_target = monthly * intensity / 21 * (0.12 if weekend else 1.0)
    zone = ZoneInfo(tz)
    for category, share in mix.items():
        budget = day_target * share / 100 * (0.6 + rng.random() * 0.8)
        shapes = SHAPES[category]
        for _ in range(rng.choice((1, 2, 2, 3))):
            shape = rng.choices([s for _, s in shapes], [w for w, _ in shapes])[0]
            per_request = _cost_per_request(shape)
            requests = max(int(budget / max(per_request, 1e-6) / 2), 0)
            if requests == 0:
                if rng.random() > 0.3:
                    continue
                requests = 1
            hour = rng.randint(8, 18)
            start = datetime.combine(day, time(hour), tzinfo=zone).astimezone(UTC)
            if until is not None and start + timedelta(hours=1) > until:
                continue

            def jitter(n: int, count: int = requests) -> int:
                return int(n * count * (0.8 + rng.random() * 0.4))

            yield RawUsage(
                key=record_key("demo", email, day, category, hour, shape.model, shape.source),
                source=shape.source,
                occurred_at=start,
                provider=shape.provider,
                model=shape.model,
                input_tokens=jitter(shape.input),
                output_tokens=jitter(shape.output),
                cache_read_tokens=jitter(shape.cache_read),
                cache_write_tokens=jitter(shape.cache_write),
                requests=requests,
                tool_calls=shape.tools * requests,
                user=email,
                tags=shape.tags,
                product=shape.product,
            )


def usage_for(emails: list[str], *, days: int, now: datetime, tz: str) -> Iterator[RawUsage]:
    today = local_day(now, tz)
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        for email in emails:
            yield from person_day_records(email, day, tz, until=now)


async def generate_people(rt: Runtime, count: int) -> int:
    """Synthetic people in teams of 25, each team under a manager (benchmark scale)."""
    per_team = 25
    teams = max(count // per_team, 1)
    async with rt.db.session() as s:
        have = await s.scalar(
            select(func.count()).select_from(Person).where(Person.origin == "generated")
        )
        if have and have >= count:
            return 0
        await s.execute(
            insert(Team),
            [
                {
                    "key": f"gen-{t:05d}",
                    "name": f"Team {t:05d}",
                    "origin": "generated",
                    "active": True,
                    "slack_channel_id": f"CGEN{t:05d}",
                }
                for t in range(teams)
            ],
        )
        team_ids = dict(
            (await s.execute(select(Team.key, Team.id).where(Team.origin == "generated"))).all()
        )
        rows = []
        for n in range(count):
            t = min(n // per_team, teams - 1)
            rows.append(
                {
                    "email": f"p{n:06d}@scale.example",
                    "name": f"Person {n:06d}",
                    "team_id": team_ids[f"gen-{t:05d}"],
                    "origin": "generated",
                    "active": True,
                    "is_admin": False,
                    "tips_enabled": True,
                    "out_of_office": False,
                }
            )
        for i in range(0, len(rows), 5000):
            await s.execute(insert(Person), rows[i : i + 5000])
        # The first person of each team manages the rest.
        ids = dict(
            (
                await s.execute(select(Person.email, Person.id).where(Person.origin == "generated"))
            ).all()
        )
        updates = []
        for n in range(count):
            lead = (n // per_team) * per_team
            if n != lead:
                updates.append(
                    {
                        "id": ids[f"p{n:06d}@scale.example"],
                        "manager_id": ids[f"p{lead:06d}@scale.example"],
                    }
                )
        for i in range(0, len(updates), 5000):
            await s.execute(update(Person), updates[i : i + 5000])
    return count


async def seed_usage(
    rt: Runtime,
    emails: list[str],
    *,
    days: int,
    batch_size: int = 50_000,
    progress: Callable[[int], None] | None = None,
) -> IngestStats:
    writer = await UsageWriter.create(rt)
    total = IngestStats()
    batch: list[RawUsage] = []
    now = rt.now()
    for record in usage_for(emails, days=days, now=now, tz=rt.tz):
        batch.append(record)
        if len(batch) >= batch_size:
            total.add(await writer.write(batch))
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        total.add(await writer.write(batch))
        if progress:
            progress(len(batch))
    as_of = now.replace(minute=0, second=0, microsecond=0)
    async with rt.db.session() as s:
        for source in SOURCES:
            await record_success(s, source, now=now, data_as_of=as_of, checkpoint=as_of)
    return total


async def has_usage(rt: Runtime) -> bool:
    async with rt.db.reader() as s:
        return await s.scalar(select(UsageRecord.id).limit(1)) is not None
