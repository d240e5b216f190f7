"""Anthropic Admin API: Messages usage report, cost report and Claude Code usage report.

- Messages usage (``/v1/organizations/usage_report/messages``) grouped by API key,
  workspace and model; priced from the price table (no cost at this grain).
- Cost report (``/v1/organizations/cost_report``): billed amounts, for reconciliation.
- Claude Code report (``/v1/organizations/usage_report/claude_code``): per-user, per-day,
  per-model tokens with an estimated cost; stored as source ``claude_code`` (agentic by
  definition). Only subscription-billed rows are kept — see ``_claude_code_rows``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any

from bot.config.models import AnthropicSource
from bot.money import to_micros
from bot.usage.pull import CostRow, Discovered, WindowData
from bot.usage.record import RawUsage, record_key
from bot.usage.sources.http import (
    Page,
    PayloadError,
    SourceClient,
    amount,
    arr,
    count,
    cursor_page,
    iso_time,
    obj,
    occurred,
    text,
)

SOURCE = "anthropic"
CLAUDE_CODE = "claude_code"
API_VERSION = "2023-06-01"
USAGE_PATH = "/v1/organizations/usage_report/messages"
COSTS_PATH = "/v1/organizations/cost_report"
CLAUDE_CODE_PATH = "/v1/organizations/usage_report/claude_code"
GROUP_BY = ("api_key_id", "workspace_id", "model")
COST_GROUP_BY = ("workspace_id", "description")
DAY = timedelta(days=1)
BUCKETS = {"1h": timedelta(hours=1), "1d": DAY}
CLAUDE_CODE_PAGE = 1000  # records per page, the documented maximum


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AnthropicConnector:
    name = SOURCE

    def __init__(self, cfg: AnthropicSource, key: str):
        self.cfg = cfg
        self.width = cfg.bucket_width
        self.bucket = BUCKETS[cfg.bucket_width]
        self.reconciles = cfg.reconcile_costs
        self.client = SourceClient(
            SOURCE, cfg.base_url, {"x-api-key": key, "anthropic-version": API_VERSION},
            key_env=cfg.key_env, secret=key, timeout=cfg.timeout_seconds,
            max_pages=cfg.max_pages)

    async def __aenter__(self) -> AnthropicConnector:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.client.__aexit__(et, e, tb)

    async def probe(self, now: datetime) -> str:
        day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - DAY
        params: list[tuple[str, str | int]] = [("starting_at", rfc3339(day)),
                                               ("bucket_width", "1d"), ("limit", 1)]
        await self.client.get(USAGE_PATH, params, lambda p: _usage_page(p, "1d"))
        return f"usage report answered; admin key in {self.cfg.key_env} accepted"

    async def discover(self) -> list[Discovered]:
        return []  # the Admin API lists keys by name and creator id, not by owner email

    def skipped_note(self, reason: str, rows: int) -> str:
        return f"{rows} Claude Code row(s) skipped: {reason}"

    async def fetch_window(self, start: datetime, end: datetime) -> WindowData:
        data = WindowData()
        await self._usage(start, end, data)
        if self.cfg.claude_code:
            await self._claude_code(start.date(), end, data)  # windows never span midnight
        if self.reconciles:
            data.costs = await self._costs(start)
        return data

    async def _usage(self, start: datetime, end: datetime, data: WindowData) -> None:
        params: list[tuple[str, str | int]] = [
            ("starting_at", rfc3339(start)), ("ending_at", rfc3339(end)),
            ("bucket_width", self.width), ("limit", max(int((end - start) / self.bucket), 1)),
            *(("group_by[]", g) for g in GROUP_BY),  # bracket form, as in the doc's curl
        ]
        async for page in self.client.pages(USAGE_PATH, params,
                                            lambda p: _usage_page(p, self.width)):
            for b_end, records in page:
                data.records.extend(records)
                if records:
                    data.saw(SOURCE, b_end)

    async def _costs(self, start: datetime) -> list[CostRow]:
        # Whole UTC days only; today's partial amount is replaced when the day is re-pulled.
        day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
        params: list[tuple[str, str | int]] = [
            ("starting_at", rfc3339(day0)), ("ending_at", rfc3339(day0 + DAY)),
            ("bucket_width", "1d"), ("limit", 1),
            *(("group_by[]", g) for g in COST_GROUP_BY),
        ]
        totals: dict[tuple[Any, ...], tuple[CostItem, Decimal]] = {}
        async for page in self.client.pages(COSTS_PATH, params, _costs_page):
            for item in page:
                key = item.natural_key()
                prev = totals.get(key)
                totals[key] = (item, item.cents + (prev[1] if prev else 0))
        return [
            CostRow(record_key("anthropic-cost", *key), item.day, item.workspace,
                    item.description or item.cost_type, to_micros(cents / 100))
            for key, (item, cents) in totals.items()
        ]

    async def _claude_code(self, day: date, end: datetime, data: WindowData) -> None:
        params: list[tuple[str, str | int]] = [("starting_at", day.isoformat()),
                                               ("limit", CLAUDE_CODE_PAGE)]
        merged: dict[bytes, RawUsage] = {}
        async for page in self.client.pages(CLAUDE_CODE_PATH, params, _claude_code_page):
            for row in page:
                if isinstance(row, str):
                    data.skipped[row] += 1
                    continue
                old = merged.get(row.key)
                merged[row.key] = row if old is None else _summed(old, row)
                data.saw(CLAUDE_CODE, min(datetime.combine(day, datetime.min.time(), UTC)
                                          + DAY, end))
        data.records.extend(merged.values())


def _summed(a: RawUsage, b: RawUsage) -> RawUsage:
    """Two report rows with the same natural key (e.g. a new dimension we do not key on)
    are added, never overwritten, so no usage is lost."""
    return replace(
        a, input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cache_read_tokens=a.cache_read_tokens + b.cache_read_tokens,
        cache_write_tokens=a.cache_write_tokens + b.cache_write_tokens,
        cost_micros=(a.cost_micros or 0) + (b.cost_micros or 0))


# --- Messages usage report -------------------------------------------------------------
# https://docs.anthropic.com/en/api/admin-api/usage-cost/get-messages-usage-report
# https://platform.claude.com/docs/en/api/admin/usage_report/retrieve_messages
# {"data": [{"starting_at": "2025-08-01T00:00:00Z", "ending_at": "2025-08-02T00:00:00Z",
#   "results": [{"uncached_input_tokens": 1500, "cache_creation": {
#     "ephemeral_1h_input_tokens": 1000, "ephemeral_5m_input_tokens": 500},
#     "cache_read_input_tokens": 200, "output_tokens": 500,
#     "server_tool_use": {"web_search_requests": 10}, "api_key_id": "apikey_...",
#     "workspace_id": "wrkspc_...", "model": "claude-sonnet-4-20250514", ...}]}],
#  "has_more": true, "next_page": "page_..."}
UsageBucket = tuple[datetime, list[RawUsage]]


def _usage_page(payload: Any, width: str) -> Page[UsageBucket]:
    return cursor_page(payload, "response", lambda b, where: [_usage_bucket(b, where, width)])


def _usage_bucket(value: Any, where: str, width: str) -> UsageBucket:
    bucket = obj(value, where)
    start = iso_time(bucket, "starting_at", where)
    end = iso_time(bucket, "ending_at", where)
    results = arr(bucket.get("results", []), f"{where}.results")
    return end, [_usage_record(r, f"{where}.results[{i}]", start, width)
                 for i, r in enumerate(results)]


def _usage_record(value: Any, where: str, start: datetime, width: str) -> RawUsage:
    r = obj(value, where)
    cache = obj(r.get("cache_creation") or {}, f"{where}.cache_creation")
    api_key, workspace = text(r, "api_key_id", where), text(r, "workspace_id", where)
    model = text(r, "model", where)
    return RawUsage(
        key=record_key(SOURCE, width, start.isoformat(), api_key, workspace, model),
        source=SOURCE,
        occurred_at=occurred(start, width),
        provider="anthropic",
        model=(model or "unknown")[:128],
        input_tokens=count(r, "uncached_input_tokens", where, required=True),
        output_tokens=count(r, "output_tokens", where, required=True),
        cache_read_tokens=count(r, "cache_read_input_tokens", where),
        # 1-hour and 5-minute cache writes together; the price table has one write rate
        # (the 5-minute one), so 1-hour writes are priced low — the cost report shows it.
        cache_write_tokens=(count(cache, "ephemeral_1h_input_tokens", where)
                            + count(cache, "ephemeral_5m_input_tokens", where)),
        # The report has no request counts at all (only web_search_requests). Web searches
        # are not mapped to tool_calls either: one search would mark a whole bucket agentic.
        requests=0,
        api_key=api_key,  # null for Console (Workbench) usage
        workspace=workspace,  # null for the default workspace
    )


# --- Cost report -----------------------------------------------------------------------
# https://docs.anthropic.com/en/api/admin-api/usage-cost/get-cost-report
# https://platform.claude.com/docs/en/api/admin/cost_report/retrieve
# results: [{"currency": "USD", "amount": "123.78912", "workspace_id": "wrkspc_...",
#   "description": "Claude Sonnet 4 Usage - Input Tokens", "cost_type": "tokens",
#   "context_window": "0-200k", "model": "...", "service_tier": "standard",
#   "token_type": "uncached_input_tokens"}]
# "amount": "Cost amount in lowest currency units (e.g. cents) as a decimal string.
# For example, "123.45" in "USD" represents $1.23." -> dollars = Decimal(amount) / 100.
class CostItem:
    __slots__ = ("cents", "context_window", "cost_type", "day", "description", "model",
                 "service_tier", "token_type", "workspace")

    def __init__(self, r: dict[str, Any], where: str, day: date):
        self.day = day
        self.workspace = text(r, "workspace_id", where)
        self.description = text(r, "description", where)
        self.cost_type = text(r, "cost_type", where)
        self.model = text(r, "model", where)
        self.service_tier = text(r, "service_tier", where)
        self.context_window = text(r, "context_window", where)
        self.token_type = text(r, "token_type", where)
        currency = (text(r, "currency", where) or "USD").upper()
        if currency != "USD":
            raise PayloadError(f"{where}.currency: {currency!r} (only USD is supported)")
        if not isinstance(r.get("amount"), str):
            # Documented as a decimal string; a number here means the shape changed and
            # the unit (cents) can no longer be trusted.
            raise PayloadError(f"{where}.amount: expected a decimal string of cents, "
                               f"got {r.get('amount')!r}")
        self.cents = amount(r["amount"], f"{where}.amount")

    def natural_key(self) -> tuple[Any, ...]:
        # Every field that can split a description's amount, so no two rows collide.
        return (self.day, self.workspace, self.description, self.cost_type, self.model,
                self.service_tier, self.context_window, self.token_type)


def _costs_page(payload: Any) -> Page[CostItem]:
    return cursor_page(payload, "response", _cost_bucket)


def _cost_bucket(value: Any, where: str) -> list[CostItem]:
    bucket = obj(value, where)
    day = iso_time(bucket, "starting_at", where).date()
    results = arr(bucket.get("results", []), f"{where}.results")
    return [CostItem(obj(r, f"{where}.results[{i}]"), f"{where}.results[{i}]", day)
            for i, r in enumerate(results)]


# --- Claude Code usage report ----------------------------------------------------------
# https://platform.claude.com/docs/en/api/admin-api/claude-code/get-claude-code-usage-report
# https://platform.claude.com/docs/en/build-with-claude/claude-code-analytics-api
# {"data": [{"actor": {"type": "user_actor", "email_address": "..."} | {"type":
#   "api_actor", "api_key_name": "..."}, "customer_type": "api" | "subscription",
#   "subscription_type": "enterprise" | "team" | null, "date": "2025-08-08T00:00:00Z"
#   (text says YYYY-MM-DD: both accepted), "terminal_type": "iTerm.app",
#   "model_breakdown": [{"model": "...", "tokens": {"input", "output", "cache_read",
#     "cache_creation"}, "estimated_cost": {"amount": 186, "currency": "USD"}}], ...}],
#  "has_more": true, "next_page": "page_..."}
# estimated_cost.amount: "Estimated cost amount in minor currency units (e.g., cents for
# USD)" — a number, so 186 means $1.86.
SKIP_API_BILLED = "api-billed (already in the Messages usage report under its API key)"


def _claude_code_page(payload: Any) -> Page[RawUsage | str]:
    return cursor_page(payload, "response", _claude_code_rows)


def _claude_code_rows(value: Any, where: str) -> list[RawUsage | str]:
    row = obj(value, where)
    customer = text(row, "customer_type", where)
    models = arr(row.get("model_breakdown") or [], f"{where}.model_breakdown")
    # Double counting guard: for customer_type "api" the same tokens are billed through
    # the API and already appear in the Messages report (Claude Code workspace, its key).
    # Subscription (Pro/Team/Enterprise seat) usage appears nowhere else, so only it is
    # ingested here. Skipped rows are counted and reported, never silently dropped.
    if customer != "subscription":
        return [SKIP_API_BILLED] * max(len(models), 1)
    day_text = text(row, "date", where, required=True) or ""
    try:
        day = date.fromisoformat(day_text[:10])
    except ValueError:
        raise PayloadError(f"{where}.date: {day_text!r} is not a date") from None
    actor = obj(row.get("actor"), f"{where}.actor")
    email = text(actor, "email_address", f"{where}.actor")
    key_name = text(actor, "api_key_name", f"{where}.actor")
    if not email and not key_name:
        raise PayloadError(f"{where}.actor: neither email_address nor api_key_name")
    dims = (day.isoformat(), actor.get("type"), email or key_name, customer,
            text(row, "subscription_type", where), text(row, "terminal_type", where),
            row.get("is_remote"))
    return [_claude_code_record(m, f"{where}.model_breakdown[{i}]", day, dims, email,
                                key_name) for i, m in enumerate(models)]


def _claude_code_record(value: Any, where: str, day: date, dims: tuple[Any, ...],
                        email: str | None, key_name: str | None) -> RawUsage:
    m = obj(value, where)
    model = text(m, "model", where) or "unknown"
    tokens = obj(m.get("tokens") or {}, f"{where}.tokens")
    cost = obj(m.get("estimated_cost") or {}, f"{where}.estimated_cost")
    currency = (text(cost, "currency", where) or "USD").upper()
    if currency != "USD":
        raise PayloadError(f"{where}.estimated_cost.currency: {currency!r} (only USD)")
    cents = amount(cost.get("amount", 0), f"{where}.estimated_cost.amount")
    return RawUsage(
        key=record_key(CLAUDE_CODE, *dims, model),
        source=CLAUDE_CODE,
        occurred_at=occurred(datetime.combine(day, datetime.min.time(), UTC), "1d"),
        provider="anthropic",
        model=model[:128],
        input_tokens=count(tokens, "input", where),
        output_tokens=count(tokens, "output", where),
        cache_read_tokens=count(tokens, "cache_read", where),
        cache_write_tokens=count(tokens, "cache_creation", where),
        cost_micros=to_micros(cents / 100),  # the report's own estimate, in cents
        user=email,
        api_key=None if email else key_name,  # api_actor carries the key NAME, not an id
        product=CLAUDE_CODE,
    )

