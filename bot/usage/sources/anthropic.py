"""Anthropic Admin API: usage and cost, and the Claude Code usage report.

Two ways to read Messages usage and cost (``sources.anthropic.api``):

- ``analytics`` (default): the Usage and Cost Analytics API (beta header
  ``anthropic-beta: analytics-usage-cost-2026-08-24``), ``GET /v1/organizations/analytics/
  usage`` and ``.../analytics/cost``, grouped by actor (the user, service account, API key
  or federated identity behind each request: per-person attribution by email), API key,
  workspace, model, service tier, context window and product. The API has no data before
  2026-01-01 ("starting_at ... no earlier than 2026-01-01T00:00:00Z"): older windows are
  read from the legacy endpoints below. What was checked against the docs, and what could
  not be: docs/vendors/anthropic-usage-cost-analytics.md.
  https://platform.claude.com/docs/en/manage-claude/usage-cost-analytics-api
  https://platform.claude.com/docs/en/api/beta/organization/analytics
- ``legacy``: the Usage and Cost API the docs now mark legacy,
  ``/v1/organizations/usage_report/messages`` grouped by API key, workspace, model, service
  tier and context window, and ``/v1/organizations/cost_report``.
  https://platform.claude.com/docs/en/manage-claude/usage-cost-api

Either way the records carry the billed dimensions (1-hour cache writes, web searches,
batch/priority tier, the long-context band) so the price table prices each at its rate.
The two APIs key their rows differently: a window pulled with the other one is replaced
whole (``replaces_window``), never added to.

Claude Code report (``/v1/organizations/usage_report/claude_code``): per-user, per-day,
per-model tokens with an estimated cost; stored as source ``claude_code`` (agentic by
definition). Only subscription-billed rows are kept — see ``_claude_code_rows``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar

from bot.config.models import AnthropicSource
from bot.money import to_micros
from bot.usage.pricing import normal_tier
from bot.usage.record import Billing, RawUsage, record_key
from bot.usage.sources.base import CostRow, WindowData
from bot.usage.sources.http import (
    ApiConnector,
    Bucket,
    Page,
    PayloadError,
    SourceClient,
    amount,
    arr,
    bucket_page,
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
ANALYTICS_BETA = "analytics-usage-cost-2026-08-24"
USAGE_PATH = "/v1/organizations/usage_report/messages"
COSTS_PATH = "/v1/organizations/cost_report"
CLAUDE_CODE_PATH = "/v1/organizations/usage_report/claude_code"
ANALYTICS_USAGE_PATH = "/v1/organizations/analytics/usage"
ANALYTICS_COST_PATH = "/v1/organizations/analytics/cost"
GROUP_BY = ("api_key_id", "workspace_id", "model", "service_tier", "context_window")
COST_GROUP_BY = ("workspace_id", "description")
ANALYTICS_GROUP_BY = ("actor", "api_key_id", "workspace_id", "model", "service_tier",
                      "context_window", "product")
ANALYTICS_COST_GROUP_BY = ("workspace_id", "model", "cost_type", "token_type")
ANALYTICS_PAGE = 100  # rows per page (the analytics API pages rows, not buckets)
ANALYTICS_FROM = datetime(2026, 1, 1, tzinfo=UTC)  # the documented earliest starting_at
DAY = timedelta(days=1)
BUCKETS = {"1h": timedelta(hours=1), "1d": DAY}
CLAUDE_CODE_PAGE = 1000  # records per page, the documented maximum
T = TypeVar("T")
STANDARD_CONTEXT = frozenset({"0-200k"})


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _billing(r: dict[str, Any], where: str, tier: str | None,
             context_window: str | None) -> tuple[Billing, int, int]:
    """The billed dimensions both APIs report the same way; returns it with the 1-hour +
    5-minute cache writes total and the web searches."""
    cache = obj(r.get("cache_creation") or {}, f"{where}.cache_creation")
    write_1h = count(cache, "ephemeral_1h_input_tokens", f"{where}.cache_creation")
    write_5m = count(cache, "ephemeral_5m_input_tokens", f"{where}.cache_creation")
    tools = obj(r.get("server_tool_use") or {}, f"{where}.server_tool_use")
    searches = count(tools, "web_search_requests", f"{where}.server_tool_use")
    billing = Billing(cache_write_1h=write_1h, web_search_requests=searches,
                      tier=normal_tier(tier),
                      long_context=bool(context_window)
                      and context_window not in STANDARD_CONTEXT)
    return billing, write_1h + write_5m, searches


def _dims(billing: Billing, context_window: str | None) -> tuple[str, ...]:
    """Key parts for a non-standard tier or context band only: standard rows keep the
    key they had before these were grouped on, so a re-pull replaces them."""
    parts: tuple[str, ...] = (billing.tier,) if billing.tier else ()
    if billing.long_context:
        parts += (f"ctx:{context_window}",)
    return parts


class AnthropicConnector(ApiConnector):
    name = SOURCE
    skipped_what = "Claude Code row(s)"

    def __init__(self, cfg: AnthropicSource, key: str):
        super().__init__(cfg, key)
        self.cfg: AnthropicSource = cfg
        self.width = cfg.bucket_width
        self.bucket = BUCKETS[cfg.bucket_width]
        self.reconciles = cfg.reconcile_costs
        self.analytics = cfg.api == "analytics"
        # The analytics endpoints need the beta header; the others are sent without it.
        self.beta = SourceClient(
            SOURCE, cfg.base_url, {**self.auth_headers(key), "anthropic-beta": ANALYTICS_BETA},
            key_env=cfg.key_env, secret=key, timeout=cfg.timeout_seconds,
            max_pages=cfg.max_pages)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": key, "anthropic-version": API_VERSION}

    async def __aenter__(self) -> AnthropicConnector:
        await super().__aenter__()
        await self.beta.__aenter__()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.beta.__aexit__(et, e, tb)
        await super().__aexit__(et, e, tb)

    async def probe(self, now: datetime) -> str:
        day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - DAY
        if self.analytics:
            await self.beta.get(ANALYTICS_USAGE_PATH, [
                ("starting_at", rfc3339(day)), ("ending_at", rfc3339(day + DAY)),
                ("time_bucket_width", "1d"), ("limit", 1)],
                lambda p: _analytics_page(p, "1d"))
            return (f"Usage and Cost Analytics API answered (api: analytics, beta "
                    f"{ANALYTICS_BETA}); admin key in {self.cfg.key_env} accepted")
        await self.client.get(USAGE_PATH, [("starting_at", rfc3339(day)),
                                           ("bucket_width", "1d"), ("limit", 1)],
                              lambda p: _usage_page(p, "1d"))
        return (f"legacy usage report answered (api: legacy); admin key in "
                f"{self.cfg.key_env} accepted")

    async def fetch_window(self, start: datetime, end: datetime) -> WindowData:
        data = WindowData()
        # Windows never span midnight, so a window is wholly before or after the epoch.
        analytics = self.analytics and start >= ANALYTICS_FROM
        if analytics:
            await self._analytics_usage(start, end, data)
        else:
            await self._usage(start, end, data)
        if self.cfg.claude_code:
            await self._claude_code(start.date(), end, data)
        if self.reconciles:
            data.costs = await (self._analytics_costs(start) if analytics
                                else self._costs(start))
        return data

    async def _usage(self, start: datetime, end: datetime, data: WindowData) -> None:
        params: list[tuple[str, str | int]] = [
            ("starting_at", rfc3339(start)), ("ending_at", rfc3339(end)),
            ("bucket_width", self.width), ("limit", max(int((end - start) / self.bucket), 1)),
            *(("group_by[]", g) for g in GROUP_BY),  # bracket form, as in the doc's curl
        ]
        await self.collect(data, SOURCE, USAGE_PATH, params,
                           lambda p: _usage_page(p, self.width))

    async def _analytics_usage(self, start: datetime, end: datetime, data: WindowData
                               ) -> None:
        params: list[tuple[str, str | int]] = [
            ("starting_at", rfc3339(start)), ("ending_at", rfc3339(end)),
            ("time_bucket_width", self.width), ("limit", ANALYTICS_PAGE),
            *(("group_by[]", g) for g in ANALYTICS_GROUP_BY),
        ]
        await self.collect(data, SOURCE, ANALYTICS_USAGE_PATH, params,
                           lambda p: _analytics_page(p, self.width), client=self.beta)

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

    async def _analytics_costs(self, start: datetime) -> list[CostRow]:
        day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
        params: list[tuple[str, str | int]] = [
            ("starting_at", rfc3339(day0)), ("ending_at", rfc3339(day0 + DAY)),
            ("time_bucket_width", "1d"), ("limit", ANALYTICS_PAGE),
            *(("group_by[]", g) for g in ANALYTICS_COST_GROUP_BY),
        ]
        totals: dict[tuple[Any, ...], Decimal] = {}
        async for page in self.beta.pages(ANALYTICS_COST_PATH, params, _analytics_cost_page):
            for key, cents in page:
                totals[key] = totals.get(key, Decimal(0)) + cents
        return [
            CostRow(record_key("anthropic-analytics-cost", *key), key[0], key[1],
                    " ".join(p for p in key[2:] if p) or None, to_micros(cents / 100))
            for key, cents in totals.items()
        ]

    async def _claude_code(self, day: date, end: datetime, data: WindowData) -> None:
        params: list[tuple[str, str | int]] = [("starting_at", day.isoformat()),
                                               ("limit", CLAUDE_CODE_PAGE)]
        async for page in self.client.pages(CLAUDE_CODE_PATH, params, _claude_code_page):
            for row in page:
                if isinstance(row, str):
                    data.skipped[row] += 1
                    continue
                data.add(row)  # rows with one key (a dimension we do not key on) are summed
                data.saw(CLAUDE_CODE, min(datetime.combine(day, datetime.min.time(), UTC)
                                          + DAY, end))


# --- Usage and Cost Analytics API (beta) ------------------------------------------------
# https://platform.claude.com/docs/en/manage-claude/usage-cost-analytics-api (quickstart row)
# https://platform.claude.com/docs/en/api/beta/organization/analytics (shared models)
# https://platform.claude.com/docs/en/api/csharp/beta/organization/analytics/usage
# https://platform.claude.com/docs/en/api/go/beta/organization/analytics/cost
# {"data": [{"starting_at": "2026-09-03T00:00:00Z", "ending_at": "2026-09-04T00:00:00Z",
#   "group": {"product": null, "model": "claude-sonnet-5", "context_window": null, ...
#     every dimension, null unless it is in group_by[]; "actor": BetaAnalyticsActor =
#     {"type": "user_actor", "user_id", "email_address" (nullable), "name", "deleted"}
#     | {"type": "service_account_actor", ...} | {"type": "api_actor", "api_key_id"}
#     | {"type": "federated_actor", ...} ("federated identities have no tagged ID")},
#   "usage": {"uncached_input_tokens", "cache_creation": {"ephemeral_1h_input_tokens",
#     "ephemeral_5m_input_tokens"}, "cache_read_input_tokens", "output_tokens",
#     "server_tool_use": {"web_search_requests"}, "requests" (nullable), "total_tokens"}}],
#  ...} -- the SDKs page it as a ReportPageCursor (request parameter ``page``).
# Cost rows: {"starting_at", "ending_at", "group": {... + "cost_type", "token_type"},
#   "cost": {"amount": String, "fractional cents (minor units)", post-discount,
#   pre-credit; "currency": "USD"; "list_amount": String; "requests": null when grouped
#   by cost_type or token_type}}.
# What the envelope beyond "data" looks like was not in the text that could be read: the
# page is followed while has_more is true, or (has_more absent) while next_page is set.


def _report_page(payload: Any, item: Callable[[Any, str], list[T]]) -> Page[T]:
    page = cursor_page(payload, "response", item)
    if isinstance(payload, dict) and "has_more" not in payload and page.cursor:
        page.more = True  # a ReportPageCursor without has_more: next_page decides
    return page


def _analytics_page(payload: Any, width: str) -> Page[Bucket]:
    return _report_page(payload, lambda row, where: [_analytics_row(row, where, width)])


def _actor(group: dict[str, Any], where: str) -> tuple[str | None, str, str | None]:
    """(user, user kind, api key) for the identity a row is attributed to."""
    actor = group.get("actor")
    if actor is None:
        return None, "email", None
    where = f"{where}.actor"
    actor = obj(actor, where)
    kind = text(actor, "type", where, required=True)
    if kind == "user_actor":
        # email_address is nullable; the tagged user id still tells people apart.
        email = text(actor, "email_address", where)
        if email:
            return email, "email", None
        return text(actor, "user_id", where, required=True), "anthropic:users", None
    if kind == "service_account_actor":
        return text(actor, "service_account_id", where), "anthropic:users", None
    if kind == "api_actor":
        return None, "email", text(actor, "api_key_id", where, required=True)
    # federated_actor (no tagged ID) or a kind added later: the row is kept, counted and
    # attributed by its API key or workspace, like Console usage without an identity.
    return None, "email", None


def _analytics_row(value: Any, where: str, width: str) -> Bucket:
    row = obj(value, where)
    start, end = _span(row, where)
    group = obj(row.get("group") or {}, f"{where}.group")
    usage = obj(row.get("usage"), f"{where}.usage")
    gw = f"{where}.group"
    tier, window = text(group, "service_tier", gw), text(group, "context_window", gw)
    billing, writes, _ = _billing(usage, f"{where}.usage", tier, window)
    user, kind, actor_key = _actor(group, gw)
    api_key = text(group, "api_key_id", gw) or actor_key
    workspace, model = text(group, "workspace_id", gw), text(group, "model", gw)
    product = text(group, "product", gw)
    return end, [RawUsage(
        key=record_key(SOURCE, "analytics", width, start.isoformat(), user, api_key,
                       workspace, model, product, *_dims(billing, window)),
        source=SOURCE,
        occurred_at=occurred(start, width),
        provider="anthropic",
        model=(model or "unknown")[:128],
        input_tokens=count(usage, "uncached_input_tokens", f"{where}.usage", required=True),
        output_tokens=count(usage, "output_tokens", f"{where}.usage", required=True),
        cache_read_tokens=count(usage, "cache_read_input_tokens", f"{where}.usage"),
        cache_write_tokens=writes,
        requests=count(usage, "requests", f"{where}.usage"),
        user=user,
        user_kind=kind,
        api_key=api_key,
        workspace=workspace,
        product=product.strip().lower().replace(" ", "_").replace("-", "_")[:64]
        if product else None,
        billing=billing,
    )]


CostKey = tuple[Any, ...]


def _analytics_cost_page(payload: Any) -> Page[tuple[CostKey, Decimal]]:
    return _report_page(payload, _analytics_cost_row)


def _analytics_cost_row(value: Any, where: str) -> list[tuple[CostKey, Decimal]]:
    row = obj(value, where)
    day = iso_time(row, "starting_at", where).date()
    group = obj(row.get("group") or {}, f"{where}.group")
    cost = obj(row.get("cost"), f"{where}.cost")
    currency = (text(cost, "currency", f"{where}.cost") or "USD").upper()
    if currency != "USD":
        raise PayloadError(f"{where}.cost.currency: {currency!r} (only USD is supported)")
    cents = _cents(cost.get("amount"), f"{where}.cost.amount")
    gw = f"{where}.group"
    key = (day, text(group, "workspace_id", gw), text(group, "model", gw),
           text(group, "cost_type", gw), text(group, "token_type", gw))
    return [(key, cents)]


# --- Messages usage report -------------------------------------------------------------
# https://docs.anthropic.com/en/api/admin-api/usage-cost/get-messages-usage-report
# https://platform.claude.com/docs/en/api/admin/usage_report/retrieve_messages
# {"data": [{"starting_at": "2025-08-01T00:00:00Z", "ending_at": "2025-08-02T00:00:00Z",
#   "results": [{"uncached_input_tokens": 1500, "cache_creation": {
#     "ephemeral_1h_input_tokens": 1000, "ephemeral_5m_input_tokens": 500},
#     "cache_read_input_tokens": 200, "output_tokens": 500,
#     "server_tool_use": {"web_search_requests": 10}, "api_key_id": "apikey_...",
#     "workspace_id": "wrkspc_...", "model": "claude-sonnet-4-20250514",
#     "service_tier": "standard", "context_window": "0-200k"}]}],
#  "has_more": true, "next_page": "page_..."}
def _usage_page(payload: Any, width: str) -> Page[Bucket]:
    return bucket_page(payload, width, _span, _usage_record)


def _span(row: dict[str, Any], where: str) -> tuple[datetime, datetime]:
    return iso_time(row, "starting_at", where), iso_time(row, "ending_at", where)


def _usage_record(value: Any, where: str, start: datetime, width: str) -> RawUsage:
    r = obj(value, where)
    api_key, workspace = text(r, "api_key_id", where), text(r, "workspace_id", where)
    model = text(r, "model", where)
    tier, window = text(r, "service_tier", where), text(r, "context_window", where)
    billing, writes, _ = _billing(r, where, tier, window)
    return RawUsage(
        key=record_key(SOURCE, width, start.isoformat(), api_key, workspace, model,
                       *_dims(billing, window)),
        source=SOURCE,
        occurred_at=occurred(start, width),
        provider="anthropic",
        model=(model or "unknown")[:128],
        input_tokens=count(r, "uncached_input_tokens", where, required=True),
        output_tokens=count(r, "output_tokens", where, required=True),
        cache_read_tokens=count(r, "cache_read_input_tokens", where),
        cache_write_tokens=writes,  # 1-hour + 5-minute; billing holds the 1-hour part
        # The report has no request counts at all (only web_search_requests). Web searches
        # are not mapped to tool_calls either: one search would mark a whole bucket agentic.
        requests=0,
        api_key=api_key,  # null for Console (Workbench) usage
        workspace=workspace,  # null for the default workspace
        billing=billing,
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
        self.cents = _cents(r.get("amount"), f"{where}.amount")

    def natural_key(self) -> tuple[Any, ...]:
        # Every field that can split a description's amount, so no two rows collide.
        return (self.day, self.workspace, self.description, self.cost_type, self.model,
                self.service_tier, self.context_window, self.token_type)


def _cents(value: Any, where: str) -> Decimal:
    """Both cost APIs document the amount as a decimal string of (fractional) cents; a
    number here means the shape changed and the unit can no longer be trusted."""
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected a decimal string of cents, got {value!r}")
    return amount(value, where)


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

