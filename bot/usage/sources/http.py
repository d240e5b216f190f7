"""Shared HTTP plumbing and lifecycle for the provider connectors.

``ApiConnector`` is what every connector shares: one ``SourceClient`` per pull built from
its ``sources.<name>`` config and key, ``async with`` around the pull, and a helper that
reads a bucketed report page by page. The checkpoint and the one-transaction window live
in the orchestration (``bot/usage/pull.py``), so a connector only fetches.

One ``SourceClient`` per pull: base URL and auth headers from app.yaml / env, retries
(429 honours ``Retry-After``; 5xx and connection errors back off exponentially), JSON
parsed with ``parse_float=Decimal`` so money never passes through a float, and every
failure raised as a ``PullError`` that names the source and the endpoint. The key is
sent in a header only: it is never logged, and it is scrubbed from any provider error
text we quote (OpenAI echoes part of a wrong key back in its 401 message).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx

from bot.config.models import SourceBase
from bot.usage.record import RawUsage
from bot.usage.sources.base import Discovered, PullError, WindowData

log = logging.getLogger("tokencoach.sources")

T = TypeVar("T")
Params = Sequence[tuple[str, str | int]]

USER_AGENT = "tokencoach/0.1 (+usage connector)"
RETRY_STATUSES = frozenset({408, 500, 502, 503, 504, 529})  # 529: Anthropic "overloaded"


class PayloadError(ValueError):
    """A response did not have the documented shape; the message says where."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5  # total attempts per request, first one included
    backoff_base: float = 0.5  # seconds; doubled per attempt
    backoff_cap: float = 30.0
    retry_after_cap: float = 300.0  # a longer Retry-After gives up with a clear message


# Read at client creation, so tests can swap in a fast policy with monkeypatch.
DEFAULT_RETRY = RetryPolicy()


@dataclass
class Page(Generic[T]):
    """One parsed page: its items and how to ask for the next one."""

    items: list[T]
    more: bool = False
    cursor: str | None = None  # None with more=True means "next page number"


@dataclass
class SourceClient:
    source: str  # "openai", "anthropic", "litellm": leads every error message
    base_url: str
    headers: Mapping[str, str] = field(repr=False)
    key_env: str = ""  # named in auth errors so the admin knows what to fix
    secret: str = field(default="", repr=False)  # only used to scrub error text
    timeout: float = 30.0
    max_pages: int = 10_000
    retry: RetryPolicy | None = None
    _http: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    async def __aenter__(self) -> SourceClient:
        self.retry = self.retry or DEFAULT_RETRY
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers},
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # --- one request ---------------------------------------------------------------------

    def fail(self, path: str, what: str) -> PullError:
        return PullError(f"{self.source}: {path} {self._scrub(what)}")

    def _scrub(self, text: str) -> str:
        if self.secret and len(self.secret) >= 6:
            text = text.replace(self.secret, "[redacted]")
            text = text.replace(self.secret[-8:], "[redacted]")
        return text

    async def get(self, path: str, params: Params, parse: Callable[[Any], T]) -> T:
        """GET ``path``, retrying what is worth retrying, and parse the JSON body."""
        return self.parsed(path, await self.request("GET", path, params=params), parse)

    async def get_json(self, path: str, params: Params) -> Any:
        return self.decode(path, await self.request("GET", path, params=params))

    async def post_json(self, path: str, body: Mapping[str, Any],
                        parse: Callable[[Any], T]) -> T:
        """POST a JSON body (Cursor's Admin API reads its filters from the body)."""
        return self.parsed(path, await self.request("POST", path, body=body), parse)

    def parsed(self, path: str, response: httpx.Response, parse: Callable[[Any], T]) -> T:
        """A response's JSON through ``parse``; a wrong shape is a PullError naming it."""
        payload = self.decode(path, response)
        try:
            return parse(payload)
        except PayloadError as exc:
            raise self.fail(path, f"answered an unexpected shape: {exc}") from None

    async def request(self, method: str, path: str, *, params: Params = (),
                      body: Mapping[str, Any] | None = None,
                      ok: Sequence[int] = ()) -> httpx.Response:
        """One request, retried on 429 (honouring Retry-After), 5xx and connection errors.
        A 2xx, or a status listed in ``ok``, is returned; anything else raises."""
        assert self._http is not None and self.retry is not None, "use `async with`"
        policy = self.retry
        last = "no attempt made"
        for attempt in range(1, policy.attempts + 1):
            try:
                response = await self._http.request(method, path, params=list(params),
                                                    json=body)
            except httpx.TransportError as exc:
                last = f"could not be reached ({type(exc).__name__}: {str(exc) or 'no detail'})"
                delay = self._backoff(attempt)
            else:
                status = response.status_code
                if 200 <= status < 300 or status in ok:
                    return response
                if status == 429:
                    delay = self._retry_after(path, response, attempt)
                    last = "answered 429 Too Many Requests"
                elif status in RETRY_STATUSES:
                    delay = self._backoff(attempt)
                    last = f"answered {status} {response.reason_phrase}"
                else:
                    raise self._http_error(path, response)
            if attempt == policy.attempts:
                break
            log.warning("provider request will be retried", extra={
                "source": self.source, "path": path, "attempt": attempt, "problem": last,
                "wait_seconds": round(delay, 2)})
            await asyncio.sleep(delay)
        raise self.fail(path, f"{last}; gave up after {policy.attempts} attempts")

    def _backoff(self, attempt: int) -> float:
        assert self.retry is not None
        return float(min(self.retry.backoff_base * 2 ** (attempt - 1), self.retry.backoff_cap))

    def _retry_after(self, path: str, response: httpx.Response, attempt: int) -> float:
        """Seconds to wait after a 429: Retry-After (seconds or an HTTP date), else backoff."""
        assert self.retry is not None
        header = response.headers.get("retry-after", "").strip()
        if not header:
            return self._backoff(attempt)
        try:
            wait = float(header)
            if not math.isfinite(wait):
                return self._backoff(attempt)
        except ValueError:
            try:
                when = parsedate_to_datetime(header)
            except (TypeError, ValueError):
                return self._backoff(attempt)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            wait = (when - datetime.now(UTC)).total_seconds()
        wait = max(wait, 0.0)
        if wait > self.retry.retry_after_cap:
            raise self.fail(path, f"is rate limited: the provider asks to wait {wait:.0f} s "
                                  "(Retry-After); try again later")
        return wait

    def _http_error(self, path: str, response: httpx.Response) -> PullError:
        status = response.status_code
        detail = _provider_message(response)
        if status in (401, 403):
            hint = f"check {self.key_env}" if self.key_env else "check the credentials"
            if status == 403:
                hint += " (the key may lack the admin/usage permission)"
            detail = f"{hint} ({detail})" if detail else hint
        text = f"answered {status} {response.reason_phrase}"
        return self.fail(path, f"{text}: {detail}" if detail else text)

    def decode(self, path: str, response: httpx.Response) -> Any:
        try:
            return json.loads(response.content, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise self.fail(path, f"answered invalid JSON ({exc.msg} at byte {exc.pos} of "
                                  f"{len(response.content)}): the response may be truncated"
                            ) from None
        except UnicodeDecodeError:
            raise self.fail(path, "answered a body that is not UTF-8 JSON") from None

    # --- paging --------------------------------------------------------------------------

    async def pages(self, path: str, params: Params, parse: Callable[[Any], Page[T]], *,
                    cursor_param: str = "page", first_page: int | None = None
                    ) -> AsyncIterator[list[T]]:
        """Yield each page's items until the API says there are no more.

        Cursor APIs (OpenAI, Anthropic) hand back an opaque ``next_page``; numbered APIs
        (LiteLLM) are asked for ``first_page``, ``first_page + 1``, ... Stops with a
        PullError after ``max_pages`` pages, so a server that pages forever cannot hang us.
        """
        cursor: str | int | None = first_page
        for _ in range(self.max_pages):
            query = list(params)
            if cursor is not None:
                query.append((cursor_param, cursor))
            page = await self.get(path, query, parse)
            yield page.items
            if not page.more:
                return
            if page.cursor is not None:
                if page.cursor == cursor:
                    raise self.fail(path, "returned the same next-page cursor twice")
                cursor = page.cursor
            elif isinstance(cursor, int):
                cursor += 1
            else:
                raise self.fail(path, "said there are more pages but gave no cursor")
        raise self.fail(path, f"still had more pages after {self.max_pages} pages; stopped "
                              f"(raise sources.{self.source}.max_pages if that is expected)")


class ApiConnector:
    """The lifecycle every HTTP connector shares (see the module docstring)."""

    name: str
    bucket: timedelta
    reconciles = False
    replaces_window = True
    skipped_what = "row(s)"

    def __init__(self, cfg: SourceBase, key: str) -> None:
        self.cfg = cfg
        self.client = SourceClient(
            self.name, cfg.base_url, self.auth_headers(key), key_env=cfg.key_env,
            secret=key, timeout=cfg.timeout_seconds, max_pages=cfg.max_pages)

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def __aenter__(self) -> ApiConnector:
        await self.client.__aenter__()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.client.__aexit__(et, e, tb)

    async def discover(self) -> list[Discovered]:
        return []

    def skipped_note(self, reason: str, rows: int) -> str:
        return f"{rows} {self.skipped_what} skipped: {reason}"

    async def collect(self, data: WindowData, source: str, path: str, params: Params,
                      parse: Callable[[Any], Page[Bucket]], *,
                      client: SourceClient | None = None) -> None:
        """Read every page of a bucketed report into ``data``."""
        async for page in (client or self.client).pages(path, params, parse):
            for end, records in page:
                data.extend(records)
                if records:
                    data.saw(source, end)


Bucket = tuple[datetime, list[RawUsage]]  # a report bucket: its end and its records


def _provider_message(response: httpx.Response) -> str:
    """The provider's own error text ({"error": {"message": ...}} and friends), short."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:200].strip()
    message: Any = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            message = err.get("message")
        elif isinstance(err, str):
            message = err
        message = message or body.get("message") or body.get("detail")
    return str(message)[:200] if message else ""


# --- schema helpers: small, explicit checks with a path in every message ----------------


def occurred(start: datetime, width: str) -> datetime:
    """When a bucket's usage is stamped. Hourly: its start. Daily buckets are UTC days,
    and their usage belongs to that date: stamping midnight UTC would put it on the
    previous local day for every org west of UTC (and the 1st into the previous month).
    Midday UTC keeps the provider's date for every zone from UTC-12 to UTC+11."""
    return start + timedelta(hours=12) if width == "1d" else start


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object, got {_kind(value)}")
    return value


def arr(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError(f"{where}: expected a list, got {_kind(value)}")
    return value


def count(d: Mapping[str, Any], name: str, where: str, *, required: bool = False) -> int:
    """A non-negative whole number (tokens, requests); absent/null is 0 unless required."""
    value = d.get(name)
    if value is None:
        if required:
            raise PayloadError(f"{where}.{name}: missing")
        return 0
    if isinstance(value, bool):
        raise PayloadError(f"{where}.{name}: expected a whole number, got a boolean")
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise PayloadError(f"{where}.{name}: expected a whole number >= 0, got {value!r}")
    return value


def text(d: Mapping[str, Any], name: str, where: str, *, required: bool = False) -> str | None:
    value = d.get(name)
    if value is None or value == "":
        if required:
            raise PayloadError(f"{where}.{name}: missing")
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise PayloadError(f"{where}.{name}: expected a string, got {_kind(value)}")
    return str(value)


def flag(d: Mapping[str, Any], name: str, where: str) -> bool:
    value = d.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise PayloadError(f"{where}.{name}: expected true or false, got {value!r}")
    return value


def amount(value: Any, where: str) -> Decimal:
    """Money as Decimal from a JSON number (already Decimal or int) or a numeric string."""
    if isinstance(value, bool):
        raise PayloadError(f"{where}: expected an amount, got a boolean")
    if isinstance(value, Decimal | int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise PayloadError(f"{where}: {value!r} is not a number") from None
    else:
        raise PayloadError(f"{where}: expected an amount, got {_kind(value)}")
    if not result.is_finite():
        raise PayloadError(f"{where}: {value!r} is not a finite amount")
    return result


def unix_time(d: Mapping[str, Any], name: str, where: str) -> datetime:
    value = d.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayloadError(f"{where}.{name}: expected Unix seconds, got {value!r}")
    return datetime.fromtimestamp(value, UTC)


def iso_time(d: Mapping[str, Any], name: str, where: str) -> datetime:
    """RFC 3339 / ISO 8601; a naive value is read as UTC (LiteLLM's Prisma timestamps)."""
    value = d.get(name)
    if not isinstance(value, str):
        raise PayloadError(f"{where}.{name}: expected an RFC 3339 time, got {value!r}")
    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{where}.{name}: {value!r} is not an RFC 3339 time") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def cursor_page(payload: Any, where: str, item: Callable[[Any, str], list[T]]) -> Page[T]:
    """The OpenAI/Anthropic envelope: {data: [...], has_more, next_page}."""
    body = obj(payload, where)
    items: list[T] = []
    for i, entry in enumerate(arr(body.get("data"), f"{where}.data")):
        items.extend(item(entry, f"{where}.data[{i}]"))
    more = flag(body, "has_more", where)
    cursor = text(body, "next_page", where)
    if more and cursor is None:
        raise PayloadError(f"{where}: has_more is true but next_page is missing")
    return Page(items, more, cursor)


def bucket_page(payload: Any, width: str,
                span: Callable[[dict[str, Any], str], tuple[datetime, datetime]],
                record: Callable[[Any, str, datetime, str], RawUsage]) -> Page[Bucket]:
    """The OpenAI / Anthropic bucketed report: {data: [{<start>, <end>, results: [...]}],
    has_more, next_page}; ``span`` reads a bucket's start and end, ``record`` a result."""
    def bucket(value: Any, where: str) -> list[Bucket]:
        b = obj(value, where)
        start, end = span(b, where)
        results = arr(b.get("results", []), f"{where}.results")
        return [(end, [record(r, f"{where}.results[{i}]", start, width)
                       for i, r in enumerate(results)])]

    return cursor_page(payload, "response", bucket)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__)
