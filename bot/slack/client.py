"""Slack Web API clients: SLACK_API_URL for tests and proxies, slack_sdk retry handlers."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientConnectorError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Runtime

DEFAULT_API = "https://slack.com/api/"
# A post whose answer was lost (a 5xx, a dropped connection) may have been posted: sending
# it again blindly shows it twice. Only a connection never made is retried in-process; the
# outbox looks a lost post up by its metadata before it sends again.
POSTING = ("chat.postMessage", "chat.postEphemeral")


def _posts(request: HttpRequest) -> bool:
    return request.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] in POSTING


class ConnectionRetry(AsyncConnectionErrorRetryHandler):
    async def _can_retry_async(self, *, request: HttpRequest, error: Exception | None = None,
                               **kwargs: Any) -> bool:
        if _posts(request) and not isinstance(error, ClientConnectorError):
            return False
        return await super()._can_retry_async(request=request, error=error, **kwargs)


class ServerErrorRetry(AsyncServerErrorRetryHandler):
    async def _can_retry_async(self, *, request: HttpRequest, **kwargs: Any) -> bool:
        return not _posts(request) and await super()._can_retry_async(request=request, **kwargs)


def web_client(rt: Runtime, *, interactive: bool = True) -> AsyncWebClient:
    """Interactive calls (views.open within a 3 s trigger) retry briefly in-process;
    delivery retries connection errors only and leaves 429/5xx to the durable outbox,
    which reschedules with Retry-After instead of holding a sender busy. Posts are never
    retried once Slack may have received them (see POSTING)."""
    handlers: list[AsyncRetryHandler] = [ConnectionRetry(max_retry_count=2)]
    if interactive:
        handlers += [
            AsyncRateLimitErrorRetryHandler(max_retry_count=1),
            ServerErrorRetry(max_retry_count=1),
        ]
    return AsyncWebClient(
        token=rt.env.slack_bot_token,
        base_url=rt.env.slack_api_url or DEFAULT_API,
        retry_handlers=handlers,
        timeout=int(max(rt.config.server.request_timeout_seconds, 1)),
    )


async def probe(rt: Runtime) -> str:
    """`tokencoach check`: who the bot token is."""
    resp = await web_client(rt).auth_test()
    return f"workspace {resp.get('team')!r} as {resp.get('user')!r} ({resp.get('user_id')})"
