"""Costs that cannot be right: a given cost far above what the price table says.

A provider's or a file's own cost wins over the price table (contract prices, surcharges),
so such a record is kept; but a cost more than ``pricing.implausible_cost_factor`` times
the table's (a typo, a unit mix-up: dollars for cents, 1e9 for 1.0) would make balances
absurd. Each one is named in the ingest summary and reported to the admins in chat.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.money import fmt_usd
from bot.reply import Context, Reply, Text, literal
from bot.runtime import Runtime
from bot.store.tables import Person
from bot.usage.record import RawUsage

if TYPE_CHECKING:
    from bot.usage.writer import RecordNote

FLOOR_MICROS = 10_000  # a cent: below it no cost is worth a report
SHOWN_TO_ADMINS = 5  # records named in the admins' message (the summary names them all)


def implausible(given_micros: int, table_micros: int, factor: int) -> bool:
    """The given cost is over a cent and more than ``factor`` times the table's."""
    return given_micros > FLOOR_MICROS and given_micros > factor * table_micros


def implausible_note(given_micros: int, table_micros: int, factor: int) -> str:
    return (f"cost {fmt_usd(given_micros, cents=True)} is more than {factor}× what the "
            f"price table gives ({fmt_usd(table_micros, cents=True)}); kept, check the source")


def describe(r: RawUsage) -> str:
    """A record in words, for sources that have no line numbers."""
    who = r.user or r.api_key or r.project or r.workspace or "nobody"
    return f"{r.source} record of {r.occurred_at:%Y-%m-%d %H:%M} UTC, {r.model}, {who}"


async def tell_admins(rt: Runtime, source: str, notes: Sequence[RecordNote],
                      count: int) -> None:
    """One chat message to each admin about the implausible costs an ingest kept. The
    same records ingested again make the same message key, so admins hear once."""
    kept = [n for n in notes if not n.refused]
    if not count or not kept:
        return
    from bot.outbox import enqueue

    digest = hashlib.sha256(b"".join(sorted(n.key for n in kept))).hexdigest()[:24]
    shown = "\n".join(f"• {literal(n.where)}: {n.message}"
                      for n in kept[:SHOWN_TO_ADMINS])
    more = count - min(len(kept), SHOWN_TO_ADMINS)
    reply = Reply(
        text=f"Ingest kept {count} record(s) with an implausible cost",
        blocks=[
            Text(text=f"**{source}: {count} record(s) with an implausible cost were kept.** "
                      "They count toward balances until corrected at the source "
                      "(re-sending a record with the same id replaces it)."),
            Text(text=shown + (f"\n…and {more} more" if more > 0 else "")),
            Context(text="Threshold: pricing.implausible_cost_factor in app.yaml"),
        ],
    )
    async with rt.db.session() as s:
        admins = (await s.scalars(select(Person.id).where(Person.is_admin, Person.active))).all()
        for admin_id in admins:
            await enqueue(s, rt, kind="admin_alert", target_type="person", target_id=admin_id,
                          reply=reply, key=f"implausible-cost:{source}:{digest}:{admin_id}")
