"""LiteLLM proxy spend data: raw spend logs, or the daily activity breakdown.

``mode: spend_logs`` (default) reads ``GET /spend/logs?summarize=false``: one row per
request with the proxy's own cost (``spend``, dollars) and who made it (internal user,
team, end user, tags). ``mode: daily_activity`` reads ``GET /user/daily/activity`` for
proxies that keep only daily aggregates: per day and model, with no per-person split.
The two modes key their records differently, so switch modes only with a fresh window.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any

from bot.config.models import LiteLLMSource
from bot.money import to_micros
from bot.usage.pull import Discovered, WindowData
from bot.usage.record import RawUsage, record_key
from bot.usage.sources.files import guess_provider
from bot.usage.sources.http import (
    Page,
    PayloadError,
    SourceClient,
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
DAILY_PATH = "/user/daily/activity"
DAY = timedelta(days=1)
DAILY_PAGE_SIZE = 1000  # the documented maximum
# Raw rows have no buckets; an hour of settling time lets the proxy flush its batched
# spend-log writes before a row's hour counts as complete.
SPEND_LOGS_BUCKET = timedelta(hours=1)


class LiteLLMConnector:
    name = SOURCE
    reconciles = False  # the proxy's spend IS its cost; there is nothing to reconcile

    def __init__(self, cfg: LiteLLMSource, key: str):
        self.cfg = cfg
        self.mode = cfg.mode
        self.bucket = SPEND_LOGS_BUCKET if cfg.mode == "spend_logs" else DAY
        self.client = SourceClient(
            SOURCE, cfg.base_url, {"Authorization": f"Bearer {key}"}, key_env=cfg.key_env,
            secret=key, timeout=cfg.timeout_seconds, max_pages=cfg.max_pages)

    async def __aenter__(self) -> LiteLLMConnector:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.client.__aexit__(et, e, tb)

    async def probe(self, now: datetime) -> str:
        if self.mode == "spend_logs":
            # A lookup by request id is one indexed read; the date form returns a whole day.
            await self.client.get_json(SPEND_LOGS_PATH, [("request_id", "tokencoach-probe")])
        else:
            today = now.astimezone(UTC).date().isoformat()
            await self.client.get(DAILY_PATH, [("start_date", today), ("end_date", today),
                                               ("page", 1), ("page_size", 1)], _daily_page)
        return f"proxy answered ({self.mode}); key in {self.cfg.key_env} accepted"

    async def discover(self) -> list[Discovered]:
        return []

    def skipped_note(self, reason: str, rows: int) -> str:
        return f"{rows} row(s) skipped: {reason}"

    async def fetch_window(self, start: datetime, end: datetime) -> WindowData:
        if self.mode == "spend_logs":
            return await self._spend_logs(start, end)
        return await self._daily(start, end)

    async def _spend_logs(self, start: datetime, end: datetime) -> WindowData:
        # The proxy filters startTime >= start_date 00:00 and <= end_date 00:00 (dates
        # only), so ask for the days covering the window and keep [start, end) here.
        last_day = (end - timedelta(microseconds=1)).date() + DAY
        params = [("start_date", start.date().isoformat()),
                  ("end_date", last_day.isoformat()), ("summarize", "false")]
        rows = await self.client.get(SPEND_LOGS_PATH, params, _spend_logs)
        data = WindowData()
        for at, record in rows:
            if start <= at < end:
                data.records.append(record)
                data.saw(SOURCE, at)
        return data

    async def _daily(self, start: datetime, end: datetime) -> WindowData:
        params: list[tuple[str, str | int]] = [
            ("start_date", start.date().isoformat()),
            ("end_date", (end - DAY).date().isoformat()),  # inclusive
            ("page_size", DAILY_PAGE_SIZE)]
        # Pages split the underlying per-user/key/model rows, not days: one date's data
        # can span pages, so everything is merged by (date, model) before it is stored.
        merged: dict[tuple[date, str], Metrics] = defaultdict(Metrics)
        async for page in self.client.pages(DAILY_PATH, params, _daily_page, first_page=1):
            for day, model, metrics in page:
                merged[(day, model)].add(metrics)
        data = WindowData()
        for (day, model), m in sorted(merged.items()):
            at = datetime.combine(day, datetime.min.time(), UTC)
            if not start <= at < end:
                continue
            data.records.append(m.record(day, model, occurred(at, "1d")))
            data.saw(SOURCE, at + DAY)
        return data


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


def _who(r: dict[str, Any], meta: dict[str, Any], where: str) -> tuple[str | None, str]:
    """Most specific person first: an email, then the proxy's internal user id, then the
    end user the calling app named (often an employee email in internal tools)."""
    email = text(r, "user_email", where) or text(meta, "user_api_key_user_email", where)
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
