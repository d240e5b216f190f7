"""LiteLLM proxy spend data: raw spend logs, or the daily activity breakdown.

Read from the proxy's own source (BerriAI/litellm, ``litellm/proxy/spend_tracking/
spend_management_endpoints.py``, ``management_endpoints/internal_user_endpoints.py``,
``daily_activity_routes.py``, ``schema.prisma``) and https://docs.litellm.ai/docs/proxy/
cost_tracking.

``mode: spend_logs`` (default): one row per request with the proxy's own cost (``spend``,
dollars) and who made it (internal user, team, end user, tags).
- ``GET /spend/logs/v2`` (paginated: ``page``, ``page_size`` <= 1000, dates to the second)
  where the proxy has it. Offset pages over rows that can share a ``startTime`` may skip
  or repeat rows at a boundary, so a window is never paged: a range whose ``total``
  exceeds one page is cut in two until each part fits one page (parts share their
  boundary second; rows are de-duplicated by ``request_id``). Only a single second with
  more rows than a page is paged, and then checked against ``total``.
- ``GET /spend/logs?summarize=false`` for older proxies (no ``/v2``: a 404, detected per
  pull, or ``spend_logs_endpoint: legacy``). It answers a whole window unpaginated and
  current proxies cap it at 10,000 rows (header ``x-litellm-spend-logs-truncated``): a
  truncated answer fails the window instead of storing part of it.

``mode: daily_activity``: per day and model, no per-person split, for proxies that keep
only daily aggregates: ``GET /user/daily/activity/aggregated`` (one answer, no pages)
where the proxy has it, else the paginated ``/user/daily/activity`` read page by page
and checked for rows that moved between pages while it was read.

Attribution uses what the spend-log schema really carries (there is no email column):
the key owner's email the proxy copies into ``metadata.user_api_key_user_email``, an
``end_user`` that is an email, else the internal ``user`` id, whose email comes from the
proxy's user list (``/user/list``, discovered identities) or ``mappings.users``.
The two modes key their records differently, so switch modes only with a fresh window.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.config.models import LiteLLMSource
from bot.money import to_micros
from bot.usage.record import RawUsage, record_key
from bot.usage.sources.base import Discovered, PullError, WindowData
from bot.usage.sources.files import guess_provider
from bot.usage.sources.http import (
    ApiConnector,
    Page,
    PayloadError,
    amount,
    arr,
    count,
    flag,
    iso_time,
    obj,
    occurred,
    text,
)

SOURCE = "litellm"
SPEND_LOGS_PATH = "/spend/logs"
SPEND_LOGS_V2_PATH = "/spend/logs/v2"
DAILY_PATH = "/user/daily/activity"
DAILY_AGGREGATED_PATH = "/user/daily/activity/aggregated"
USER_LIST_PATH = "/user/list"
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)
DAILY_PAGE_SIZE = 1000  # the documented maximum
V2_PAGE_SIZE = 1000  # the proxy's maximum page_size
USER_PAGE_SIZE = 100  # /user/list maximum
TRUNCATED_HEADER = "x-litellm-spend-logs-truncated"
# Raw rows have no buckets; an hour of settling time lets the proxy flush its batched
# spend-log writes before a row's hour counts as complete.
SPEND_LOGS_BUCKET = timedelta(hours=1)


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


class LiteLLMConnector(ApiConnector):
    name = SOURCE

    def __init__(self, cfg: LiteLLMSource, key: str):
        super().__init__(cfg, key)
        self.cfg: LiteLLMSource = cfg
        self.mode = cfg.mode
        self.bucket = SPEND_LOGS_BUCKET if cfg.mode == "spend_logs" else DAY
        # None until the first request tells whether this proxy has /spend/logs/v2.
        self.v2: bool | None = {"v2": True, "legacy": False}.get(cfg.spend_logs_endpoint)
        self.aggregated: bool | None = None  # has /user/daily/activity/aggregated

    async def probe(self, now: datetime) -> str:
        if self.mode == "daily_activity":
            today = now.astimezone(UTC).date().isoformat()
            await self.client.get(DAILY_PATH, [("start_date", today), ("end_date", today),
                                               ("page", 1), ("page_size", 1)], _daily_page)
            return f"proxy answered (daily_activity); key in {self.cfg.key_env} accepted"
        if self.v2 is not False:
            hour = now - timedelta(hours=1)
            response = await self.client.request("GET", SPEND_LOGS_V2_PATH, params=[
                ("start_date", _stamp(hour)), ("end_date", _stamp(now)), ("page", 1),
                ("page_size", 1)], ok=(404,))
            if response.status_code != 404:
                self.client.parsed(SPEND_LOGS_V2_PATH, response, V2Page.parse)
                return (f"proxy answered (spend_logs via paginated {SPEND_LOGS_V2_PATH}); "
                        f"key in {self.cfg.key_env} accepted")
            if self.v2:
                raise self.client.fail(SPEND_LOGS_V2_PATH, "answered 404: this proxy has no "
                                       "paginated spend logs (set spend_logs_endpoint: auto)")
            return (f"proxy answered 404 for {SPEND_LOGS_V2_PATH} (an older LiteLLM): the "
                    f"legacy unpaginated {SPEND_LOGS_PATH} will be used")
        # A lookup by request id is one indexed read; the date form returns a whole day.
        await self.client.get_json(SPEND_LOGS_PATH, [("request_id", "tokencoach-probe")])
        return (f"proxy answered (spend_logs via legacy {SPEND_LOGS_PATH}); key in "
                f"{self.cfg.key_env} accepted")

    async def discover(self) -> list[Discovered]:
        """Internal users' emails (``/user/list``): spend-log rows name the user by id."""
        if not self.cfg.fetch_user_emails or self.mode != "spend_logs":
            return []
        found: list[Discovered] = []
        params: list[tuple[str, str | int]] = [("page_size", USER_PAGE_SIZE),
                                               ("sort_by", "user_id"), ("sort_order", "asc")]
        async for users in self.client.pages(USER_LIST_PATH, params, _users_page,
                                             first_page=1):
            found.extend(users)
        return found

    async def fetch_window(self, start: datetime, end: datetime) -> WindowData:
        if self.mode == "spend_logs":
            return await self._spend_logs(start, end)
        return await self._daily(start, end)

    async def _spend_logs(self, start: datetime, end: datetime) -> WindowData:
        rows: dict[bytes, tuple[datetime, RawUsage]] = {}
        if self.v2 is not False:
            if not await self._v2_range(start, end, rows):
                self.v2 = False  # an older proxy: 404 on /v2
        if self.v2 is False:
            await self._legacy_range(start, end, rows)
        data = WindowData()
        for at, record in rows.values():
            if start <= at < end:
                data.add(record)
                data.saw(SOURCE, at)
        return data

    async def _v2_range(self, lo: datetime, hi: datetime,
                        rows: dict[bytes, tuple[datetime, RawUsage]]) -> bool:
        """Rows with lo <= startTime <= hi (seconds) into ``rows``; False on a 404."""
        params: list[tuple[str, str | int]] = [
            ("start_date", _stamp(lo)), ("end_date", _stamp(hi)), ("page_size", V2_PAGE_SIZE),
            ("sort_by", "startTime"), ("sort_order", "asc")]
        response = await self.client.request("GET", SPEND_LOGS_V2_PATH,
                                             params=[*params, ("page", 1)], ok=(404,))
        if response.status_code == 404:
            if self.v2:
                raise self.client.fail(SPEND_LOGS_V2_PATH, "answered 404 (set "
                                       "spend_logs_endpoint: auto for an older proxy)")
            return False
        self.v2 = True
        page = self.client.parsed(SPEND_LOGS_V2_PATH, response, V2Page.parse)
        if page.total <= len(page.rows):
            rows.update(page.rows)
            return True
        if hi - lo >= 2 * SECOND:  # too many for one page: halve the range, never page it
            mid = lo + (hi - lo) / 2
            mid = mid.replace(microsecond=0)
            await self._v2_range(lo, mid, rows)
            await self._v2_range(mid, hi, rows)
            return True
        await self._v2_paged(params, page, rows)
        return True

    async def _v2_paged(self, params: list[tuple[str, str | int]], first: V2Page,
                        rows: dict[bytes, tuple[datetime, RawUsage]]) -> None:
        """One second holding more rows than a page: read every page, then make sure the
        distinct rows add up to the proxy's total (nothing skipped at a boundary)."""
        if first.capped:
            raise self.client.fail(SPEND_LOGS_V2_PATH, "counts more than 10,000 rows in one "
                                   "second; cannot be read completely")
        seen = dict(first.rows)
        for number in range(2, first.pages + 1):
            page = await self.client.get(SPEND_LOGS_V2_PATH, [*params, ("page", number)],
                                         V2Page.parse)
            seen.update(page.rows)
        if len(seen) != first.total:
            raise self.client.fail(SPEND_LOGS_V2_PATH, f"paged {len(seen)} distinct rows for a "
                                   f"total of {first.total} (rows moved between pages); "
                                   "try again")
        rows.update(seen)

    async def _legacy_range(self, start: datetime, end: datetime,
                            rows: dict[bytes, tuple[datetime, RawUsage]]) -> None:
        # The proxy filters startTime >= start_date 00:00 and <= end_date 00:00 (dates
        # only), so ask for the days covering the window and keep [start, end) here.
        last_day = (end - timedelta(microseconds=1)).date() + DAY
        params = [("start_date", start.date().isoformat()),
                  ("end_date", last_day.isoformat()), ("summarize", "false")]
        response = await self.client.request("GET", SPEND_LOGS_PATH, params=params)
        if response.headers.get(TRUNCATED_HEADER, "").lower() == "true":
            raise PullError(f"{SOURCE}: {SPEND_LOGS_PATH} truncated its answer for "
                            f"{params[0][1]} to {params[1][1]} (the proxy caps it at 10,000 "
                            "rows); upgrade the proxy for the paginated /spend/logs/v2")
        for at, record in self.client.parsed(SPEND_LOGS_PATH, response, _spend_logs):
            rows[record.key] = (at, record)

    async def _daily(self, start: datetime, end: datetime) -> WindowData:
        params: list[tuple[str, str | int]] = [
            ("start_date", start.date().isoformat()),
            ("end_date", (end - DAY).date().isoformat())]  # inclusive
        merged: dict[tuple[date, str], Metrics] = defaultdict(Metrics)
        items = await self._daily_aggregated(params) if self.aggregated is not False else None
        if items is None:
            items = await self._daily_paged(params)
        for day, model, metrics in items:
            merged[(day, model)].add(metrics)
        data = WindowData()
        for (day, model), m in sorted(merged.items()):
            at = datetime.combine(day, datetime.min.time(), UTC)
            if not start <= at < end:
                continue
            data.add(m.record(day, model, occurred(at, "1d")))
            data.saw(SOURCE, at + DAY)
        return data

    async def _daily_aggregated(self, params: list[tuple[str, str | int]]
                                ) -> list[DailyItem] | None:
        """The whole range in one answer; None when the proxy is too old to have it."""
        response = await self.client.request("GET", DAILY_AGGREGATED_PATH, params=params,
                                             ok=(404,))
        if response.status_code == 404:
            self.aggregated = False
            return None
        self.aggregated = True
        return self.client.parsed(DAILY_AGGREGATED_PATH, response, _daily_page).items

    async def _daily_paged(self, params: list[tuple[str, str | int]]) -> list[DailyItem]:
        # Pages split the underlying per-user/key/model rows, not days: one date's data can
        # span pages, so items are merged by (date, model). A row written between two page
        # reads shifts the rest by one (doubling one row, or skipping one): page 1 is read
        # again at the end, and a different answer fails the window to be read again.
        paged = [*params, ("page_size", DAILY_PAGE_SIZE)]
        pages: list[list[DailyItem]] = []
        async for page in self.client.pages(DAILY_PATH, paged, _daily_page, first_page=1):
            pages.append(page)
        if len(pages) > 1:
            again = await self.client.get(DAILY_PATH, [*paged, ("page", 1)], _daily_page)
            if _fingerprint(again.items) != _fingerprint(pages[0]):
                raise self.client.fail(DAILY_PATH, "changed while it was read page by page "
                                       "(rows moved between pages); try again")
        return [item for page in pages for item in page]


# --- spend logs ------------------------------------------------------------------------
# Row shape: LiteLLM_SpendLogs (schema.prisma) and the documented example in
# https://docs.litellm.ai/docs/proxy/cost_tracking ("tracked in Table LiteLLM_SpendLogs"):
# {"request_id", "api_key" (hashed), "user", "team_id", "end_user", "request_tags": [...],
#  "model", "model_group", "custom_llm_provider", "spend": 2e-06 (dollars),
#  "total_tokens", "prompt_tokens", "completion_tokens", "startTime", "endTime",
#  "metadata": {...}, "mcp_namespaced_tool_name", ...}
# Endpoint: view_spend_logs in litellm/proxy/spend_tracking/spend_management_endpoints.py.
def _spend_logs(payload: Any) -> list[tuple[datetime, RawUsage]]:
    rows = arr(payload, "response")
    return [_spend_row(r, f"response[{i}]") for i, r in enumerate(rows)]


def _spend_row(value: Any, where: str) -> tuple[datetime, RawUsage]:
    r = obj(value, where)
    request_id = text(r, "request_id", where)
    if request_id is None:
        if "users" in r or "models" in r:
            raise PayloadError(
                f"{where} is a per-day summary, not a raw row: this proxy ignores "
                "summarize=false (older LiteLLM); set sources.litellm.mode: daily_activity")
        raise PayloadError(f"{where}.request_id: missing")
    at = iso_time(r, "startTime", where)
    meta = _json_object(r.get("metadata"), f"{where}.metadata")
    model = text(r, "model", where) or text(r, "model_group", where) or "unknown"
    cache_read, cache_write = _cache_tokens(meta, where)
    prompt = count(r, "prompt_tokens", where)
    spend = r.get("spend")
    user, user_kind = _who(r, meta, where)
    return at, RawUsage(
        key=record_key(SOURCE, request_id),
        source=SOURCE,
        occurred_at=at,
        provider=_provider(model, text(r, "custom_llm_provider", where)),
        model=model[:128],
        # LiteLLM's prompt_tokens include cached tokens (OpenAI-style usage); the neutral
        # record keeps uncached input apart from cache reads and writes.
        input_tokens=max(prompt - cache_read - cache_write, 0),
        output_tokens=count(r, "completion_tokens", where),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        requests=1,
        tool_calls=_tool_calls(r, meta, where),
        cost_micros=None if spend is None else to_micros(amount(spend, f"{where}.spend")),
        user=user,
        user_kind=user_kind,
        api_key=text(r, "api_key", where),  # the proxy's hashed token
        project=text(meta, "user_api_key_project_id", f"{where}.metadata"),
        team=text(r, "team_id", where),
        tags=_tags(r.get("request_tags"), f"{where}.request_tags"),
    )


class V2Page:
    """One ``/spend/logs/v2`` answer (``_build_ui_spend_logs_response`` in the proxy):
    {"data": [rows...], "total", "page", "page_size", "total_pages", "total_is_capped"}."""

    __slots__ = ("capped", "pages", "rows", "total")

    def __init__(self, rows: dict[bytes, tuple[datetime, RawUsage]], total: int, pages: int,
                 capped: bool):
        self.rows, self.total, self.pages, self.capped = rows, total, pages, capped

    @classmethod
    def parse(cls, payload: Any) -> V2Page:
        body = obj(payload, "response")
        rows = {}
        for i, r in enumerate(arr(body.get("data"), "response.data")):
            at, record = _spend_row(r, f"response.data[{i}]")
            rows[record.key] = (at, record)
        return cls(rows, count(body, "total", "response", required=True),
                   count(body, "total_pages", "response"),
                   flag(body, "total_is_capped", "response"))


def _users_page(payload: Any) -> Page[Discovered]:
    """``/user/list``: {"users": [{"user_id", "user_email", ...}], "total", "page",
    "page_size", "total_pages"}; users without an email are left out."""
    body = obj(payload, "response")
    found = []
    for i, u in enumerate(arr(body.get("users"), "response.users")):
        where = f"response.users[{i}]"
        user = obj(u, where)
        user_id, email = text(user, "user_id", where, required=True), text(
            user, "user_email", where)
        if user_id and email and "@" in email:
            found.append(Discovered("litellm:users", user_id, email))
    page, pages = count(body, "page", "response"), count(body, "total_pages", "response")
    return Page(found, page < pages)


def _who(r: dict[str, Any], meta: dict[str, Any], where: str) -> tuple[str | None, str]:
    """Most specific person first: the key owner's email (LiteLLM_SpendLogs has no email
    column; the proxy copies it into metadata.user_api_key_user_email), an end user that
    is an email, then the proxy's internal user id, then any other end user name."""
    email = text(meta, "user_api_key_user_email", f"{where}.metadata")
    if email:
        return email, "email"
    end_user = text(r, "end_user", where)
    if end_user and "@" in end_user:
        return end_user, "email"
    user = text(r, "user", where) or text(meta, "user_api_key_user_id", where)
    if user:
        return user, "litellm:users"
    return end_user, "litellm:users"


def _provider(model: str, custom: str | None) -> str:
    guessed = guess_provider(model.rsplit("/", 1)[-1])
    return (guessed if guessed != "other" else (custom or "other"))[:32]


def _cache_tokens(meta: dict[str, Any], where: str) -> tuple[int, int]:
    """Cache counts live in metadata.usage_object (Anthropic- or OpenAI-style usage)."""
    usage = meta.get("usage_object")
    if not isinstance(usage, dict):
        return 0, 0
    at = f"{where}.metadata.usage_object"
    read = count(usage, "cache_read_input_tokens", at)
    details = usage.get("prompt_tokens_details")
    if not read and isinstance(details, dict):
        read = count(details, "cached_tokens", f"{at}.prompt_tokens_details")
    return read, count(usage, "cache_creation_input_tokens", at)


def _tool_calls(r: dict[str, Any], meta: dict[str, Any], where: str) -> int:
    """Counted, never kept: MCP tool calls the proxy ran, else tool calls in the response."""
    if r.get("mcp_namespaced_tool_name") or meta.get("mcp_tool_call_metadata"):
        return 1
    response = r.get("response")
    if isinstance(response, str):
        response = _json_object(response, f"{where}.response", strict=False)
    calls = 0
    if isinstance(response, dict):
        for choice in response.get("choices") or []:
            message = choice.get("message") if isinstance(choice, dict) else None
            if isinstance(message, dict) and isinstance(message.get("tool_calls"), list):
                calls += len(message["tool_calls"])
    return calls


def _tags(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):  # Prisma Json can come back as an encoded string
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return (value[:255],) if value else ()
    if value is None:
        return ()
    return tuple(str(t)[:255] for t in arr(value, where) if t is not None)


def _json_object(value: Any, where: str, *, strict: bool = True) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_float=Decimal)
        except json.JSONDecodeError:
            if strict:
                raise PayloadError(f"{where}: not a JSON object") from None
            return {}
    if not isinstance(value, dict):
        if strict:
            raise PayloadError(f"{where}: expected an object")
        return {}
    return value


# --- daily activity --------------------------------------------------------------------
# https://docs.litellm.ai/docs/proxy/cost_tracking#daily-spend-breakdown-api
# Source: SpendAnalyticsPaginatedResponse in
# litellm/types/proxy/management_endpoints/common_daily_activity.py:
# {"results": [{"date": "2025-03-27", "metrics": {...}, "breakdown": {"models": {
#   "gpt-4o-mini": {"spend": 1.095e-05, "prompt_tokens": 37, "completion_tokens": 9,
#   "cache_read_input_tokens", "cache_creation_input_tokens", "api_requests": 1}}}}],
#  "metadata": {"total_spend", ..., "page": 1, "total_pages": 1, "has_more": false}}
# Older proxies (and the doc example) give breakdown entries as flat metrics; current ones
# nest them as {"metrics": {...}, "metadata": {...}}. Both are read.
class Metrics:
    __slots__ = ("cache_read", "cache_write", "completion", "prompt", "requests", "spend")

    def __init__(self) -> None:
        self.spend = Decimal(0)
        self.prompt = self.completion = self.cache_read = self.cache_write = 0
        self.requests = 0

    @classmethod
    def parse(cls, value: Any, where: str) -> Metrics:
        m = obj(value, where)
        if isinstance(m.get("metrics"), dict):  # the nested (current) shape
            return cls.parse(m["metrics"], f"{where}.metrics")
        out = cls()
        out.spend = amount(m.get("spend", 0), f"{where}.spend")
        out.prompt = count(m, "prompt_tokens", where)
        out.completion = count(m, "completion_tokens", where)
        out.cache_read = count(m, "cache_read_input_tokens", where)
        out.cache_write = count(m, "cache_creation_input_tokens", where)
        out.requests = count(m, "api_requests", where)
        return out

    def add(self, other: Metrics) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def empty(self) -> bool:
        return not (self.spend or self.prompt or self.completion or self.requests)

    def record(self, day: date, model: str, at: datetime) -> RawUsage:
        return RawUsage(
            key=record_key(SOURCE, "daily", day.isoformat(), model),
            source=SOURCE,
            occurred_at=at,
            provider=_provider(model, None),
            model=model[:128],
            input_tokens=max(self.prompt - self.cache_read - self.cache_write, 0),
            output_tokens=self.completion,
            cache_read_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            requests=self.requests,
            cost_micros=to_micros(self.spend),
        )


DailyItem = tuple[date, str, Metrics]


def _fingerprint(items: list[DailyItem]) -> list[tuple[Any, ...]]:
    return sorted((day, model, *(getattr(m, n) for n in Metrics.__slots__))
                  for day, model, m in items)


def _daily_page(payload: Any) -> Page[DailyItem]:
    body = obj(payload, "response")
    items: list[DailyItem] = []
    for i, entry in enumerate(arr(body.get("results"), "response.results")):
        items.extend(_daily_entry(entry, f"response.results[{i}]"))
    meta = obj(body.get("metadata") or {}, "response.metadata")
    return Page(items, flag(meta, "has_more", "response.metadata"))


def _daily_entry(value: Any, where: str) -> list[DailyItem]:
    d = obj(value, where)
    day_text = text(d, "date", where, required=True) or ""
    try:
        day = date.fromisoformat(day_text[:10])
    except ValueError:
        raise PayloadError(f"{where}.date: {day_text!r} is not a date") from None
    breakdown = obj(d.get("breakdown") or {}, f"{where}.breakdown")
    models = obj(breakdown.get("models") or {}, f"{where}.breakdown.models")
    items = [(day, str(name), Metrics.parse(m, f"{where}.breakdown.models[{name!r}]"))
             for name, m in models.items()]
    if not items:
        # No per-model breakdown (very old proxies): keep the day's total, model unknown.
        total = Metrics.parse(d.get("metrics") or {}, f"{where}.metrics")
        if not total.empty():
            items.append((day, "unknown", total))
    return items
