"""OpenAI organization Usage and Costs APIs (Admin key).

- Usage: ``GET /v1/organization/usage/completions`` grouped by user, API key, project and
  model; records are priced from the price table (the API gives no cost at this grain).
- Costs: ``GET /v1/organization/costs`` (daily, by line item and project), stored in
  provider_costs so a pull can compare what was billed with what was priced.
- API-key owners: ``/v1/organization/projects`` and each project's ``/api_keys`` listing
  give the owner's email, stored as discovered identities.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any
from urllib.parse import quote

from bot.config.models import OpenAISource
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
GROUP_BY = ("user_id", "api_key_id", "project_id", "model")
COST_GROUP_BY = ("line_item", "project_id")
DAY = timedelta(days=1)
BUCKETS = {"1h": timedelta(hours=1), "1d": DAY}


class OpenAIConnector:
    name = SOURCE

    def __init__(self, cfg: OpenAISource, key: str):
        self.cfg = cfg
        self.width = cfg.bucket_width
        self.bucket = BUCKETS[cfg.bucket_width]
        self.reconciles = cfg.reconcile_costs
        self.client = SourceClient(
            SOURCE, cfg.base_url, {"Authorization": f"Bearer {key}"}, key_env=cfg.key_env,
            secret=key, timeout=cfg.timeout_seconds, max_pages=cfg.max_pages)

    async def __aenter__(self) -> OpenAIConnector:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.client.__aexit__(et, e, tb)

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
        async for page in self.client.pages(USAGE_PATH, params,
                                            lambda p: _usage_page(p, self.width)):
            for b_end, records in page:
                data.records.extend(records)
                if records:
                    data.saw(SOURCE, b_end)
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
            async for owners in self.client.pages(path, [("limit", 100)], _api_keys_page,
                                                  cursor_param="after"):
                found.extend(owners)
        return found

    def skipped_note(self, reason: str, rows: int) -> str:
        return f"{rows} row(s) skipped: {reason}"


# --- parsers ---------------------------------------------------------------------------

# Usage bucket and result shapes:
# https://developers.openai.com/api/reference/resources/organization/subresources/audit_logs/subresources/usage/methods/get_completions
# {"object": "page", "data": [{"object": "bucket", "start_time": 1730419200,
#   "end_time": 1730505600, "results": [{"input_tokens", "output_tokens",
#   "input_cached_tokens", "input_audio_tokens", "output_audio_tokens",
#   "num_model_requests", "project_id", "user_id", "api_key_id", "model", ...}]}],
#  "has_more": true, "next_page": "page_..."}
UsageBucket = tuple[datetime, list[RawUsage]]


def _usage_page(payload: Any, width: str) -> Page[UsageBucket]:
    return cursor_page(payload, "response", lambda b, where: [_usage_bucket(b, where, width)])


def _usage_bucket(value: Any, where: str, width: str) -> UsageBucket:
    bucket = obj(value, where)
    start = unix_time(bucket, "start_time", where)
    end = unix_time(bucket, "end_time", where)
    results = arr(bucket.get("results", []), f"{where}.results")
    return end, [_usage_record(r, f"{where}.results[{i}]", start, width)
                 for i, r in enumerate(results)]


def _usage_record(value: Any, where: str, start: datetime, width: str) -> RawUsage:
    r = obj(value, where)
    # input_tokens INCLUDES cached tokens (spec: "including cached tokens"); the neutral
    # record wants uncached input, with cache reads apart (billed at their own rate).
    total_in = count(r, "input_tokens", where, required=True)
    cached = min(count(r, "input_cached_tokens", where), total_in)
    # Audio tokens are counted apart from text; they are added to the text counts so no
    # usage is dropped (priced at the text rate: an underestimate for audio models).
    audio_in = count(r, "input_audio_tokens", where)
    audio_out = count(r, "output_audio_tokens", where)
    user, api_key = text(r, "user_id", where), text(r, "api_key_id", where)
    project, model = text(r, "project_id", where), text(r, "model", where)
    return RawUsage(
        key=record_key(SOURCE, width, start.isoformat(), user, api_key, project, model),
        source=SOURCE,
        occurred_at=occurred(start, width),
        provider="openai",
        model=(model or "unknown")[:128],
        input_tokens=total_in - cached + audio_in,
        output_tokens=count(r, "output_tokens", where, required=True) + audio_out,
        cache_read_tokens=cached,
        requests=count(r, "num_model_requests", where),
        user=user,
        user_kind="openai:users",  # provider user ids map via sources.openai.mappings.users
        api_key=api_key,
        project=project,
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
