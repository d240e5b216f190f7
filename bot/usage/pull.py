"""Pull usage from a provider API into the store, one window at a time.

The window logic, for every connector:
- ``since`` defaults to the source's checkpoint minus ``repull_window`` (providers fill in
  late data), or ``now - backfill_days`` on the first run; ``until`` defaults to now. Both
  are floored to the connector's bucket, so only complete buckets are ever fetched.
- The range is cut into UTC days. Each window is fetched completely (every page) before
  anything is written, then written in ONE transaction together with the checkpoint
  advance. A failure mid-window leaves the store as it was before that window, and the
  next run resumes from the checkpoint.
- Records carry natural keys (source + bucket + every group-by dimension), so re-pulling
  a window changes nothing and a provider restating a bucket replaces it; a row the
  provider no longer reports for the window is removed (``replaces_window``).

The contract a connector implements is in ``bot/usage/sources/base.py``; the connectors
(``bot/usage/sources/<name>.py``) share their HTTP lifecycle through ``ApiConnector``.
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.models import PROVIDER_SOURCES, SourceBase
from bot.money import fmt_usd
from bot.runtime import Runtime
from bot.store.database import insert_for
from bot.store.tables import Identity, Person, ProviderCost, UsageRecord
from bot.timeutil import as_utc
from bot.usage.plausible import tell_admins
from bot.usage.record import RawUsage
from bot.usage.sources.base import Connector, CostRow, Discovered, PullError, WindowData
from bot.usage.state import checkpoint_of, record_error, record_success
from bot.usage.writer import IngestStats, UsageWriter, remove_stale

__all__ = ["SOURCES", "Connector", "CostRow", "Discovered", "PullError", "PullResult",
           "WindowData", "probe_source", "pull_source", "source_name"]

log = logging.getLogger("tokencoach.pull")

# Source name -> its connector class (module, class); the name is also its app.yaml key.
CONNECTORS = {
    "openai": ("bot.usage.sources.openai", "OpenAIConnector"),
    "anthropic": ("bot.usage.sources.anthropic", "AnthropicConnector"),
    "litellm": ("bot.usage.sources.litellm", "LiteLLMConnector"),
    "github_copilot": ("bot.usage.sources.github_copilot", "CopilotConnector"),
    "cursor": ("bot.usage.sources.cursor", "CursorConnector"),
}
SOURCES = PROVIDER_SOURCES
assert tuple(CONNECTORS) == SOURCES, "every provider source in app.yaml has a connector"
DAY = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW_ATTEMPTS = 3  # a window transaction that raced another writer is retried


def source_name(text: str) -> str:
    """The stored name of a source as typed on a command line ("github-copilot")."""
    return text.strip().lower().replace("-", "_")


def cli_name(name: str) -> str:
    return name.replace("_", "-")


@dataclass
class PullResult:
    source: str
    since: datetime
    until: datetime
    stats: IngestStats
    notes: list[str] = field(default_factory=list)
    windows: int = 0

    def window_text(self) -> str:
        return (f"{self.since:%Y-%m-%d %H:%M} → {self.until:%Y-%m-%d %H:%M} UTC, "
                f"{self.windows} window{'s' if self.windows != 1 else ''}")

    def as_dict(self) -> dict[str, Any]:
        return {"window": self.window_text(), **self.stats.as_dict(), "notes": self.notes}


# --- entry points ----------------------------------------------------------------------


def source_config(rt: Runtime, name: str) -> SourceBase:
    if name not in SOURCES:
        raise PullError(f"{name}: unknown source (use one of "
                        f"{', '.join(cli_name(n) for n in SOURCES)})")
    cfg = getattr(rt.config.sources, name)
    if cfg is None:
        raise PullError(f"{name}: not configured (add sources.{name} to app.yaml)")
    if not cfg.enabled:
        raise PullError(f"{name}: disabled in app.yaml (sources.{name}.enabled: false)")
    return cfg


def make_connector(rt: Runtime, name: str) -> Connector:
    cfg = source_config(rt, name)
    key = rt.env.secret(cfg.key_env)
    if not key:
        raise PullError(f"{name}: no API key: set the environment variable {cfg.key_env}")
    module, cls = CONNECTORS[name]
    connector: Connector = getattr(importlib.import_module(module), cls)(cfg, key)
    return connector


async def probe_source(rt: Runtime, name: str) -> str:
    """One cheap authenticated request; a short description, or an exception."""
    async with make_connector(rt, name) as connector:
        return await connector.probe(rt.now())


async def pull_source(rt: Runtime, name: str, *, since: datetime | None = None,
                      until: datetime | None = None,
                      progress: Callable[[int, int], None] | None = None) -> PullResult:
    """Pull ``name`` for [since, until) window by window; see the module docstring."""
    try:
        connector = make_connector(rt, name)
        async with connector:
            return await _pull(rt, name, connector, since, until, progress)
    except PullError as exc:
        # Recorded here so every caller (the CLI and the scheduled job) leaves a trace
        # for freshness and admin reports; the checkpoint is untouched.
        await record_pull_error(rt, name, str(exc))
        raise


async def record_pull_error(rt: Runtime, name: str, error: str) -> None:
    try:
        async with rt.db.session() as s:
            await record_error(s, name, now=rt.now(), error=error)
    except Exception as exc:  # the pull's own error matters more than this bookkeeping
        log.error("could not record a pull error", extra={"source": name, "error": repr(exc)})


# --- the pull --------------------------------------------------------------------------


def floor_to(at: datetime, step: timedelta) -> datetime:
    """Floor to a multiple of ``step`` since the Unix epoch (hour/day boundaries in UTC)."""
    at = as_utc(at)
    return at - (at - EPOCH) % step


def day_windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at UTC midnights: every window lies within one UTC day."""
    windows = []
    cursor = start
    while cursor < end:
        nxt = min(floor_to(cursor, DAY) + DAY, end)
        windows.append((cursor, nxt))
        cursor = nxt
    return windows


async def default_since(rt: Runtime, name: str, cfg: SourceBase) -> datetime:
    async with rt.db.reader() as s:
        checkpoint = await checkpoint_of(s, name)
    if checkpoint is not None:
        return as_utc(checkpoint) - cfg.repull_window
    return rt.now() - timedelta(days=cfg.backfill_days)


async def _pull(rt: Runtime, name: str, connector: Connector, since: datetime | None,
                until: datetime | None, progress: Callable[[int, int], None] | None
                ) -> PullResult:
    cfg = source_config(rt, name)
    latest = floor_to(rt.now(), connector.bucket)  # the end of the last complete bucket
    end = min(floor_to(until, connector.bucket), latest) if until else latest
    start = floor_to(since if since else await default_since(rt, name, cfg), connector.bucket)
    result = PullResult(name, start, max(start, end), IngestStats())
    windows = day_windows(start, end)
    result.windows = len(windows)
    if not windows:
        result.notes.append("nothing to pull: the window holds no complete bucket yet")
        return result
    if progress:
        progress(0, len(windows))

    await _discover(rt, connector, result)
    writer = await UsageWriter.create(rt)  # after discovery: its resolver sees new owners
    skipped: Counter[str] = Counter()
    for done, (w_start, w_end) in enumerate(windows, 1):
        data = await connector.fetch_window(w_start, w_end)
        result.stats.add(await _store_window(rt, writer, name, data, w_start, w_end,
                                             replaces=connector.replaces_window))
        skipped.update(data.skipped)
        if progress:
            progress(done, len(windows))

    result.notes += [connector.skipped_note(reason, n) for reason, n in sorted(skipped.items())]
    if result.stats.removed:
        result.notes.append(f"{result.stats.removed} stored row(s) removed: the provider no "
                            "longer reports them for their window (restated)")
    if result.stats.approximated:
        result.notes.append("priced with a fallback rate (add the rate to pricing.models): "
                            + "; ".join(sorted(result.stats.approximated)))
    result.notes += [f"{n.where}: {n.message}" + (" (refused)" if n.refused else "")
                     for n in result.stats.notes[:20]]
    await tell_admins(rt, name, result.stats.notes, result.stats.implausible)
    if connector.reconciles:
        note = await _reconcile(rt, name, start, end)
        if note:
            result.notes.append(note)
    log.info("pull done", extra={"source": name, "window": result.window_text(),
                                 **result.stats.as_dict()})
    return result


async def _discover(rt: Runtime, connector: Connector, result: PullResult) -> None:
    """Owners' emails (OpenAI API keys) make more usage attributable. Optional: a failure
    here is a note, not a failed pull — the usage itself is what must not be missed."""
    try:
        found = await connector.discover()
    except PullError as exc:
        result.notes.append(f"identity discovery skipped: {exc}")
        return
    if found:
        added = await save_discovered(rt, found)
        if added:
            result.notes.append(f"{added} provider identit{'y' if added == 1 else 'ies'} "
                                "matched to people by email")


async def _store_window(rt: Runtime, writer: UsageWriter, name: str, data: WindowData,
                        w_start: datetime, w_end: datetime, *, replaces: bool
                        ) -> IngestStats:
    """Write a window's records, costs and the checkpoint advance in ONE transaction."""
    by_source: dict[str, list[RawUsage]] = defaultdict(list)
    for r in data.records:
        by_source[r.source].append(r)
    for attempt in range(WINDOW_ATTEMPTS):
        total = IngestStats()
        now = rt.now()
        try:
            async with rt.db.session() as s:
                own = 0  # new + replaced rows of the pulled source itself
                for source, records in by_source.items():
                    stats = IngestStats()
                    rows = writer.prepare(records, stats, now)
                    await writer.write_rows(s, rows, stats)
                    total.add(stats)
                    if source == name:
                        own = stats.new + stats.replaced
                    else:  # e.g. claude_code rows pulled with anthropic: their own freshness
                        await record_success(s, source, now=now,
                                             records=stats.new + stats.replaced,
                                             data_as_of=data.data_as_of.get(source))
                if replaces:
                    total.removed += await remove_stale(
                        s, name, w_start, w_end, {r.key for r in by_source.get(name, ())})
                await upsert_costs(s, name, data.costs, now)
                await record_success(s, name, now=now, checkpoint=w_end, records=own,
                                     data_as_of=data.data_as_of.get(name))
        except IntegrityError:
            if attempt == WINDOW_ATTEMPTS - 1:
                raise
            log.info("pull window raced another writer; retrying", extra={"source": name})
            continue
        return total
    raise AssertionError("unreachable")


async def upsert_costs(s: AsyncSession, source: str, costs: list[CostRow],
                       now: datetime) -> None:
    """Billed amounts by natural key: a re-pull overwrites, never adds."""
    if not costs:
        return
    dialect = (await s.connection()).dialect.name
    ins = insert_for(dialect, ProviderCost)
    stmt = ins.on_conflict_do_update(
        index_elements=["cost_key"],
        set_={c: ins.excluded[c] for c in ("day", "scope", "line_item", "amount_micros",
                                            "ingested_at")},
    )
    await s.execute(stmt, [
        {"cost_key": c.key, "source": source, "day": c.day, "scope": c.scope,
         "line_item": c.line_item, "amount_micros": c.amount_micros, "ingested_at": now}
        for c in sorted(costs, key=lambda c: c.key)  # one lock order for every writer
    ])


async def save_discovered(rt: Runtime, found: list[Discovered]) -> int:
    """Insert or refresh discovered identities; rows from app.yaml (origin config) win."""
    emails = {d.email.strip().lower() for d in found}
    async with rt.db.session() as s:
        people = dict((await s.execute(
            select(Person.email, Person.id).where(Person.email.in_(emails)))).all())
        existing = {
            (k, v): (origin, pid) for k, v, origin, pid in await s.execute(
                select(Identity.kind, Identity.value, Identity.origin, Identity.person_id)
                .where(Identity.value.in_({d.value for d in found})))
        }
        changed = 0
        for d in found:
            person_id = people.get(d.email.strip().lower())
            if person_id is None:
                continue  # an unknown email attributes nothing; keep the raw identity
            old = existing.get((d.kind, d.value))
            if old is None:
                s.add(Identity(kind=d.kind, value=d.value, person_id=person_id,
                               team_id=None, origin="discovered"))
            elif old[0] == "discovered" and old[1] != person_id:
                row = await s.get(Identity, (d.kind, d.value))
                assert row is not None
                row.person_id = person_id
            else:
                continue
            existing[(d.kind, d.value)] = ("discovered", person_id)
            changed += 1
    return changed


async def _reconcile(rt: Runtime, name: str, start: datetime, end: datetime) -> str | None:
    """Compare what the provider billed with what the price table says, on whole UTC days.

    Differences are expected (batch and priority tiers, audio, web search, credits); the
    note makes them visible instead of silently trusting either number.
    """
    # Only days lying wholly inside [start, end): those were just pulled completely. A
    # partial first or last day would compare part of a day's usage with a full bill.
    first = floor_to(start, DAY)
    if first < start:
        first += DAY
    last = floor_to(end, DAY)
    if last <= first:
        return None
    async with rt.db.reader() as s:
        billed = await s.scalar(
            select(func.coalesce(func.sum(ProviderCost.amount_micros), 0))
            .where(ProviderCost.source == name, ProviderCost.day >= first.date(),
                   ProviderCost.day < last.date()))
        priced = await s.scalar(
            select(func.coalesce(func.sum(UsageRecord.cost_micros), 0))
            .where(UsageRecord.source == name, UsageRecord.occurred_at >= first,
                   UsageRecord.occurred_at < last))
    billed, priced = int(billed or 0), int(priced or 0)
    if billed == 0 and priced == 0:
        return None
    span = f"{first:%Y-%m-%d} → {last - DAY:%Y-%m-%d} (UTC days)"
    diff = priced - billed
    share = f" ({Decimal(diff * 100) / billed:+.1f}%)" if billed else ""
    return (f"reconciliation {span}: billed {fmt_usd(billed, cents=True)}, priced usage "
            f"{fmt_usd(priced, cents=True)}, difference {fmt_usd(diff, cents=True)}{share}")
