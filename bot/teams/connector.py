"""Bot Connector REST calls (send, reply, update, create a 1:1, roster) with one error type.

botbuilder raises ``ErrorResponseException`` (403/404/429/5xx) and neither retries a 429
nor reads Retry-After; this wrapper turns every failure into ``ConnectorError`` with the
HTTP status, the connector's error code and Retry-After, so callers decide: retry, retire
the conversation, or give up.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
from botbuilder.schema import (
    Activity,
    ChannelAccount,
    ConversationParameters,
    ErrorResponseException,
)
from botframework.connector.aio import ConnectorClient
from msrest.exceptions import ClientRequestError

# Codes that mean "this conversation is gone for us" (msteams-docs, status code responses).
GONE_CODES = {"ConversationBlockedByUser", "BotNotInConversationRoster", "BotDisabledByAdmin",
              "ConversationNotFound", "MessageWritesBlocked"}


class ConnectorError(Exception):
    def __init__(self, status: int | None, code: str, message: str,
                 retry_after: float | None = None):
        super().__init__(f"{status or 'network'} {code}: {message}"[:500])
        self.status, self.code, self.retry_after = status, code, retry_after

    @property
    def transient(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500

    @property
    def gone(self) -> bool:
        """The bot can no longer write to this conversation (blocked, removed, deleted)."""
        return self.status == 403 or self.code in GONE_CODES or (
            self.status == 404 and self.code in ("", "ConversationNotFound", "NotFound"))


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to the outbox's own backoff


def _translate(exc: Exception) -> ConnectorError:
    if isinstance(exc, ErrorResponseException):
        response = exc.response
        status = getattr(response, "status_code", None)
        code, message = "", str(exc)
        error = getattr(getattr(exc, "error", None), "error", None)
        if error is not None:
            code, message = error.code or "", error.message or message
        return ConnectorError(status, code, message,
                              _retry_after(getattr(response, "headers", None)))
    return ConnectorError(None, type(exc).__name__, str(exc))


NETWORK_ERRORS = (ClientRequestError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


@dataclass
class Connector:
    """One connector client (one service URL, one set of credentials)."""

    client: ConnectorClient

    async def _call(self, op: Any, *args: Any) -> Any:
        try:
            return await op(*args)
        except (ErrorResponseException, *NETWORK_ERRORS) as exc:
            raise _translate(exc) from exc

    async def send(self, conversation_id: str, activity: Activity) -> str:
        sent = await self._call(self.client.conversations.send_to_conversation,
                                conversation_id, activity)
        return str(sent.id) if sent and sent.id else ""

    async def reply(self, conversation_id: str, reply_to_id: str, activity: Activity) -> str:
        sent = await self._call(self.client.conversations.reply_to_activity,
                                conversation_id, reply_to_id, activity)
        return str(sent.id) if sent and sent.id else ""

    async def update(self, conversation_id: str, activity_id: str, activity: Activity) -> None:
        activity.id = activity_id
        await self._call(self.client.conversations.update_activity,
                         conversation_id, activity_id, activity)

    async def create_personal(self, *, bot_id: str, user_id: str, tenant_id: str | None) -> str:
        """Open (or find) the 1:1 chat with a user; Teams needs the tenant in channelData."""
        params = ConversationParameters(
            is_group=False, bot=ChannelAccount(id=bot_id), members=[ChannelAccount(id=user_id)],
            tenant_id=tenant_id, channel_data={"tenant": {"id": tenant_id}} if tenant_id else None)
        created = await self._call(self.client.conversations.create_conversation, params)
        if not created or not created.id:
            raise ConnectorError(None, "NoConversationId", "create conversation returned no id")
        return str(created.id)

    async def member(self, conversation_id: str, user_id: str) -> dict[str, Any]:
        """A roster entry (TeamsChannelAccount: email, userPrincipalName, aadObjectId)."""
        found = await self._call(self.client.conversations.get_conversation_member,
                                 conversation_id, user_id)
        return {**found.serialize(), **(found.additional_properties or {})}
