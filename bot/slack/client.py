"""Slack Web API clients: SLACK_API_URL for tests and proxies, slack_sdk retry handlers."""

from __future__ import annotations

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.runtime import Runtime

DEFAULT_API = "https://slack.com/api/"


def web_client(rt: Runtime, *, interactive: bool = True) -> AsyncWebClient:
    """Interactive calls (views.open within a 3 s trigger) retry briefly in-process;
    delivery retries connection errors only and leaves 429/5xx to the durable outbox,
    which reschedules with Retry-After instead of holding a sender busy."""
    handlers: list[AsyncRetryHandler] = [AsyncConnectionErrorRetryHandler(max_retry_count=2)]
    if interactive:
        handlers += [
            AsyncRateLimitErrorRetryHandler(max_retry_count=1),
            AsyncServerErrorRetryHandler(max_retry_count=1),
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
