"""HTTP for vendors' limit APIs: one call at a time, every failure classified.

A ``VendorError`` says whether trying again can help (429, 408, 5xx, 529, a dropped
connection) and how long the vendor asked us to wait (``Retry-After``). Reads retry in
place a few times; writes are retried by the durable op queue (``bot.enforcement.ops``),
which is why ``attempts`` is per client. JSON numbers are parsed as Decimal: money never
passes through a float. The key is sent in a header only and scrubbed from any error text.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

log = logging.getLogger("tokencoach.enforcement")

USER_AGENT = "tokencoach/0.1 (+limits enforcement)"
TRANSIENT = frozenset({408, 429, 500, 502, 503, 504, 529})  # 529: Anthropic overloaded
Params = Sequence[tuple[str, str | int]]


class VendorError(Exception):
    """A vendor call failed. ``transient``: the same call may succeed later."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        transient: bool = False,
        retry_after: float | None = None,
        uncertain: bool = False,
    ):
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.request_id = request_id
        self.transient = transient
        self.retry_after = retry_after
        # The vendor may have applied the write before the connection broke.
        self.uncertain = uncertain


def retry_after_seconds(header: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (a number, or an HTTP date); None when absent or junk."""
    text = (header or "").strip()
    if not text:
        return None
    try:
        wait = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        wait = (when - (now or datetime.now(UTC))).total_seconds()
    return max(wait, 0.0) if math.isfinite(wait) else None


def _error_fields(response: httpx.Response) -> tuple[str | None, str, str | None]:
    """(error type, message, request id) from Anthropic's ``{"type": "error", "error":
    {"type", "message"}, "request_id"}`` or LiteLLM's ``{"error": {"message", "type"}}``
    (or FastAPI's ``{"detail": ...}``)."""
    request_id = response.headers.get("request-id")
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None, response.text[:200].strip(), request_id
    if not isinstance(body, dict):
        return None, str(body)[:200], request_id
    request_id = body.get("request_id") or request_id
    err = body.get("error")
    if isinstance(err, dict):
        return err.get("type"), str(err.get("message") or "")[:300], request_id
    message = err or body.get("message") or body.get("detail") or ""
    return None, str(message)[:300], request_id


@dataclass
class VendorHTTP:
    vendor: str  # leads every error message ("claude_enterprise", "litellm")
    base_url: str
    headers: Mapping[str, str] = field(repr=False)
    secret: str = field(default="", repr=False)
    key_env: str = ""
    attempts: int = 1  # per call, the first included
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    retry_after_cap: float = 120.0  # a longer wait is left to the op queue
    timeout: float = 30.0
    max_pages: int = 10_000
    transport: httpx.AsyncBaseTransport | None = None
    _http: httpx.AsyncClient | None = field(default=None, init=False, repr=False)

    async def __aenter__(self) -> VendorHTTP:
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **self.headers},
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=False,
            transport=self.transport,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def _scrub(self, text: str) -> str:
        if self.secret and len(self.secret) >= 6:
            text = text.replace(self.secret, "[redacted]").replace(self.secret[-8:], "[redacted]")
        return text

    def _fail(self, method: str, path: str, what: str, **kw: Any) -> VendorError:
        return VendorError(self._scrub(f"{self.vendor}: {method} {path} {what}"), **kw)

    async def call(
        self, method: str, path: str, *, params: Params = (), body: Any = None
    ) -> Any:
        """One request (retried in place up to ``attempts``); the decoded JSON body.

        ``body`` is sent as JSON text built by the caller when it is a str (exact numbers),
        else serialized with ``json.dumps``.
        """
        assert self._http is not None, "use `async with`"
        content = None
        headers = {}
        if body is not None:
            content = body if isinstance(body, str) else json.dumps(body)
            headers["Content-Type"] = "application/json"
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self._http.request(
                    method, path, params=list(params), content=content, headers=headers
                )
            except httpx.TransportError as exc:
                error = self._fail(
                    method, path,
                    f"could not be reached ({type(exc).__name__}: {str(exc) or 'no detail'})",
                    transient=True,
                    # A write whose connection broke after sending may have been applied.
                    uncertain=method != "GET" and not isinstance(exc, httpx.ConnectError),
                )
            else:
                if 200 <= response.status_code < 300:
                    return self._decode(method, path, response)
                error = self._http_error(method, path, response)
            if not error.transient or attempt == self.attempts:
                raise error
            wait = error.retry_after if error.retry_after is not None else min(
                self.backoff_base * 2 ** (attempt - 1), self.backoff_cap)
            if wait > self.retry_after_cap:
                raise error
            log.warning("vendor call will be retried", extra={
                "vendor": self.vendor, "path": path, "attempt": attempt,
                "problem": str(error), "wait_seconds": round(wait, 2)})
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _http_error(self, method: str, path: str, response: httpx.Response) -> VendorError:
        status = response.status_code
        error_type, message, request_id = _error_fields(response)
        text = f"answered {status} {response.reason_phrase}"
        if status in (401, 403):
            hint = f"check {self.key_env}" if self.key_env else "check the credentials"
            if status == 403:
                hint += " (the key may lack the scope this call needs)"
            message = f"{hint}: {message}" if message else hint
        if message:
            text += f": {message}"
        if request_id:
            text += f" (request {request_id})"
        return self._fail(
            method, path, text, status=status, error_type=error_type, request_id=request_id,
            transient=status in TRANSIENT,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return json.loads(response.content, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise self._fail(method, path, "answered a body that is not JSON",
                             status=response.status_code, transient=True) from None

    async def cursor_pages(
        self, path: str, params: Params = (), *, cursor_param: str = "page",
        cursor_field: str = "next_page",
    ) -> AsyncIterator[list[Any]]:
        """Each page's ``data`` until ``next_page`` is null (an opaque cursor, passed back
        unchanged with the same filters)."""
        cursor: str | None = None
        for _ in range(self.max_pages):
            query = list(params) + ([(cursor_param, cursor)] if cursor else [])
            page = await self.call("GET", path, params=query)
            if not isinstance(page, dict) or not isinstance(page.get("data"), list):
                raise self._fail("GET", path, "answered an unexpected shape (no data list)")
            yield page["data"]
            nxt = page.get(cursor_field)
            if not nxt:
                return
            if nxt == cursor:
                raise self._fail("GET", path, "returned the same next-page cursor twice")
            cursor = str(nxt)
        raise self._fail("GET", path, f"still had more pages after {self.max_pages} pages")
