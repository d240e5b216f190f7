"""OpenAI organization Usage and Costs APIs (Admin key).

Spec: openai/openai-openapi, openapi.yaml (``UsageCompletionsResult``, ``CostsResult``,
``ProjectApiKey``); reference pages under
https://developers.openai.com/api/reference/resources/organization/

- Usage: ``GET /v1/organization/usage/completions`` grouped by user, API key, project,
  model, batch and service tier; priced from the price table (no cost at this grain).
- Costs: ``GET /v1/organization/costs`` (daily, by line item and project), stored in
  provider_costs so a pull can compare what was billed with what was priced.
- API-key owners: ``/v1/organization/projects`` and each project's ``/api_keys`` listing
  (``owner_project_access=any``: every enabled key) give the owner's email, stored as
  discovered identities.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from bot.config.models import OpenAISource
from bot.money import to_micros
from bot.usage.pricing import normal_tier
from bot.usage.record import Billing, RawUsage, record_key
from bot.usage.sources.base import CostRow, Discovered, WindowData
from bot.usage.sources.http import (
    ApiConnector,
    Bucket,
    Page,
    PayloadError,
    amount,
    arr,
    bucket_page,
    count,
    cursor_page,
    flag,
    obj,
    occurred,
    text,
    unix_time,
)

SOURCE = "openai"
USAGE_PATH = "/v1/organization/usage/completions"
COSTS_PATH = "/v1/organization/costs"
PROJECTS_PATH = "/v1/organization/projects"
GROUP_BY = ("user_id", "api_key_id", "project_id", "model", "batch", "service_tier")
COST_GROUP_BY = ("line_item", "project_id")
DAY = timedelta(days=1)
BUCKETS = {"1h": timedelta(hours=1), "1d": DAY}


class OpenAIConnector(ApiConnector):
    name = SOURCE

    def __init__(self, cfg: OpenAISource, key: str):
        super().__init__(cfg, key)
        self.cfg: OpenAISource = cfg
        self.width = cfg.bucket_width
        self.bucket = BUCKETS[cfg.bucket_width]
        self.reconciles = cfg.reconcile_costs

    async def probe(self, now: datetime) -> str:
        start = int((now - timedelta(days=1)).timestamp())
        params: list[tuple[str, str | int]] = [("start_time", start), ("bucket_width", "1d"),
                                               ("limit", 1)]
        await self.client.get(USAGE_PATH, params, lambda p: _usage_page(p, "1d"))
        return f"usage API answered; admin key in {self.cfg.key_env} accepted"

    # --- usage and costs, one window at a time --------------------------------------------

    async def fetch_window(self, start: datetime, end: datetime) -> WindowData:
        data = WindowData()
        buckets = max(int((end - start) / self.bucket), 1)
        params: list[tuple[str, str | int]] = [
            ("start_time", int(start.timestamp())), ("end_time", int(end.timestamp())),
            ("bucket_width", self.width), ("limit", buckets),
            *(("group_by", g) for g in GROUP_BY),  # repeated keys, as the cookbook sends
        ]
        await self.collect(data, SOURCE, USAGE_PATH, params,
                           lambda p: _usage_page(p, self.width))
        if self.reconciles:
            data.costs = await self._costs(start, end)
        return data

    async def _costs(self, start: datetime, end: datetime) -> list[CostRow]:
        # Costs come in whole UTC days only; a partial day is fetched whole and replaced
        # (same key) when a later pull sees the finished day.
        day0 = start.replace(hour=0, minute=0, second=0, microsecond=0)
        days = max(-(-(end - day0) // DAY), 1)  # ceil: the days the window touches
        params: list[tuple[str, str | int]] = [
            ("start_time", int(day0.timestamp())),
            ("end_time", int((day0 + days * DAY).timestamp())),
            ("bucket_width", "1d"), ("limit", days),
            *(("group_by", g) for g in COST_GROUP_BY),
        ]
        totals: dict[tuple[date, str | None, str | None], Decimal] = defaultdict(Decimal)
        async for page in self.client.pages(COSTS_PATH, params, _costs_page):
            for day, project, line_item, dollars in page:
                totals[(day, project, line_item)] += dollars
        return [
            CostRow(record_key("openai-cost", day, project, line_item), day, project,
                    line_item, to_micros(dollars))
            for (day, project, line_item), dollars in totals.items()
        ]

    # --- API-key owners -------------------------------------------------------------------

    async def discover(self) -> list[Discovered]:
        if not self.cfg.fetch_key_owners:
            return []
        projects: list[str] = []
        params: list[tuple[str, str | int]] = [("limit", 100), ("include_archived", "true")]
        async for page in self.client.pages(PROJECTS_PATH, params, _projects_page,
                                            cursor_param="after"):
            projects.extend(page)
        found: list[Discovered] = []
        for project in projects:
            path = f"{PROJECTS_PATH}/{quote(project, safe='')}/api_keys"
            # Without owner_project_access the listing applies membership visibility and
            # may leave enabled keys out; "any" lists every enabled key (spec).
            params = [("limit", 100), ("owner_project_access", "any")]
            async for owners in self.client.pages(path, params, _api_keys_page,
                                                  cursor_param="after"):
                found.extend(owners)
        return found



# --- parsers ---------------------------------------------------------------------------

# Usage bucket and result shapes (UsageTimeBucket / UsageCompletionsResult in the spec):
# {"object": "page", "data": [{"object": "bucket", "start_time": 1730419200,
#   "end_time": 1730505600, "results": [{"input_tokens": 5000, "input_cached_tokens": 1800,
#   "input_cache_write_tokens": 200, "input_uncached_tokens": 3000, "output_tokens": 1000,
#   "input_text_tokens": 2500, "output_text_tokens": 800, "input_cached_text_tokens": 1500,
#   "input_audio_tokens": 300, "input_cached_audio_tokens": 100, "output_audio_tokens": 100,
#   "input_image_tokens": 200, "input_cached_image_tokens": 200, "output_image_tokens": 100,
#   "num_model_requests": 5, "project_id", "user_id", "api_key_id", "model",
#   "batch": false, "service_tier": "default"}]}], "has_more": true, "next_page": "..."}
# Since the 2026-07-15 redefinition input_tokens INCLUDES cached, cache-write, text, audio
# and image tokens and output_tokens includes audio and image outputs; the *_audio_* and
# *_image_* fields are breakdowns, never added on top.


def _usage_page(payload: Any, width: str) -> Page[Bucket]:
    return bucket_page(payload, width, lambda b, where: (
        unix_time(b, "start_time", where), unix_time(b, "end_time", where)), _usage_record)


def _usage_record(value: Any, where: str, start: datetime, width: str) -> RawUsage:
    r = obj(value, where)
    total_in = count(r, "input_tokens", where, required=True)
    cached = count(r, "input_cached_tokens", where)
    written = count(r, "input_cache_write_tokens", where)
    if cached + written > total_in:
        raise PayloadError(f"{where}: input_cached_tokens + input_cache_write_tokens "
                           f"({cached + written}) exceed input_tokens ({total_in})")
    # The neutral record keeps uncached input, cache reads and cache writes apart.
    uncached = total_in - cached - written
    if r.get("input_uncached_tokens") is not None and count(
            r, "input_uncached_tokens", where) != uncached:
        raise PayloadError(f"{where}.input_uncached_tokens: {r['input_uncached_tokens']} "
                           f"!= input_tokens - cached - cache-write ({uncached})")
    output = count(r, "output_tokens", where, required=True)
    billing = Billing(
        audio_input=count(r, "input_audio_tokens", where),
        image_input=count(r, "input_image_tokens", where),
        audio_cache_read=count(r, "input_cached_audio_tokens", where),
        image_cache_read=count(r, "input_cached_image_tokens", where),
        audio_output=count(r, "output_audio_tokens", where),
        image_output=count(r, "output_image_tokens", where),
        tier="batch" if flag(r, "batch", where) else normal_tier(text(r, "service_tier", where)),
    )
    for part, within, total in (("input_audio/image", billing.audio_input
                                 + billing.image_input, uncached),
                                ("input_cached_audio/image", billing.audio_cache_read
                                 + billing.image_cache_read, cached),
                                ("output_audio/image", billing.audio_output
                                 + billing.image_output, output)):
        if within > total:
            raise PayloadError(f"{where}: {part} tokens ({within}) exceed their total "
                               f"({total}); are they counted apart (an older API)?")
    user, api_key = text(r, "user_id", where), text(r, "api_key_id", where)
    project, model = text(r, "project_id", where), text(r, "model", where)
    # Standard-priced rows keep the key they had before batch and service_tier were
    # grouped on, so a re-pull replaces them instead of adding a copy.
    tier_part = (billing.tier,) if billing.tier else ()
    return RawUsage(
        key=record_key(SOURCE, width, start.isoformat(), user, api_key, project, model,
                       *tier_part),
        source=SOURCE,
        occurred_at=occurred(start, width),
        provider="openai",
        model=(model or "unknown")[:128],
        input_tokens=uncached,
        output_tokens=output,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        requests=count(r, "num_model_requests", where),
        user=user,
        user_kind="openai:users",  # provider user ids map via sources.openai.mappings.users
        api_key=api_key,
        project=project,
        billing=billing,
    )


# Costs: https://developers.openai.com/api/reference/resources/organization/subresources/audit_logs/methods/get_costs
# results: [{"object": "organization.costs.result", "amount": {"value": 0.06,
#   "currency": "usd"}, "line_item": null, "project_id": null}] — value in DOLLARS; live
# responses have been seen with the value as a string ("12.50"), so both are accepted.
CostItem = tuple[date, str | None, str | None, Decimal]


def _costs_page(payload: Any) -> Page[CostItem]:
    return cursor_page(payload, "response", _cost_bucket)


def _cost_bucket(value: Any, where: str) -> list[CostItem]:
    bucket = obj(value, where)
    day = unix_time(bucket, "start_time", where).date()
    # Some generated docs call the list "result"; the official examples use "results".
    results = bucket.get("results", bucket.get("result", []))
    out = []
    for i, entry in enumerate(arr(results, f"{where}.results")):
        at = f"{where}.results[{i}]"
        r = obj(entry, at)
        money = obj(r.get("amount"), f"{at}.amount")
        currency = (text(money, "currency", f"{at}.amount") or "usd").lower()
        if currency != "usd":
            raise PayloadError(f"{at}.amount.currency: {currency!r} (only USD is supported)")
        out.append((day, text(r, "project_id", at), text(r, "line_item", at),
                    amount(money.get("value"), f"{at}.amount.value")))
    return out


# Projects: https://developers.openai.com/api/reference/resources/organization/subresources/projects/methods/list
# {"object": "list", "data": [{"id": "proj_abc", ...}], "first_id", "last_id", "has_more"}
def _list_page(payload: Any, where: str) -> tuple[list[dict[str, Any]], bool, str | None]:
    body = obj(payload, where)
    items = [obj(x, f"{where}.data[{i}]") for i, x in enumerate(arr(body.get("data"),
                                                                     f"{where}.data"))]
    more = flag(body, "has_more", where)
    last = text(body, "last_id", where) or (text(items[-1], "id", where) if items else None)
    if more and last is None:
        raise PayloadError(f"{where}: has_more is true but there is no last_id to page after")
    return items, more, last


def _projects_page(payload: Any) -> Page[str]:
    items, more, last = _list_page(payload, "response")
    ids = [text(p, "id", f"response.data[{i}]", required=True) or "" for i, p in
           enumerate(items)]
    return Page(ids, more, last)


# API keys: https://developers.openai.com/api/reference/resources/organization/subresources/projects/subresources/api_keys/methods/list
# data: [{"object": "organization.project.api_key", "id": "key_abc", "owner": {"type":
#   "user", "user": {"id": "user_abc", "email": "user@example.com", ...}}}]
# Service-account owners carry no email and are skipped.
def _api_keys_page(payload: Any) -> Page[Discovered]:
    items, more, last = _list_page(payload, "response")
    found = []
    for i, key in enumerate(items):
        where = f"response.data[{i}]"
        key_id = text(key, "id", where, required=True) or ""
        owner = obj(key.get("owner") or {}, f"{where}.owner")
        if owner.get("type") != "user":
            continue
        user = obj(owner.get("user") or {}, f"{where}.owner.user")
        email = text(user, "email", f"{where}.owner.user")
        if not email:
            continue
        found.append(Discovered("openai:api_keys", key_id, email))
        user_id = text(user, "id", f"{where}.owner.user")
        if user_id:  # the same id appears as user_id in usage results
            found.append(Discovered("openai:users", user_id, email))
    return Page(found, more, last)
