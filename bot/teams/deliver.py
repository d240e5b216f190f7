"""Outbox delivery to Teams through stored conversation references.

A person's message goes to their 1:1 chat (opened with ``POST /v3/conversations`` and the
tenant id when only their user id is known); a team's digest goes to its channel.
429 and 5xx are retried by the outbox (Retry-After honoured); 403 and "conversation not
found" retire the reference and fail the message, which the outbox reports to admins.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from botbuilder.schema import ChannelAccount
from botframework.connector.auth import AuthenticationConstants, ClaimsIdentity

from bot import links
from bot.outbox import DeliveryError, RetryLater, Undeliverable, Unreachable
from bot.reply import Reply
from bot.runtime import Runtime
from bot.server import is_loopback_url
from bot.store.tables import ConversationRef, OutboxMessage
from bot.teams import activities, images, refs, render
from bot.teams.auth import authentication
from bot.teams.connector import Connector, ConnectorError


class TeamsDeliverer:
    name = "teams"

    def __init__(self, rt: Runtime):
        self.rt = rt
        settings, auth = authentication(rt.env)
        claims = ClaimsIdentity({AuthenticationConstants.AUDIENCE_CLAIM: settings.APP_ID,
                                 AuthenticationConstants.APP_ID_CLAIM: settings.APP_ID}, True)
        self._factory = auth.create_connector_factory(claims)
        self._emulator = settings.anonymous

    async def _connector(self, service_url: str) -> Connector:
        if self._emulator and not is_loopback_url(service_url):
            # Unauthenticated mode never calls out: a stored reference from elsewhere
            # (or a forged one) must not turn the bot into a request relay.
            raise Undeliverable("teams: emulator mode only calls a loopback serviceUrl")
        return Connector(await self._factory.create(service_url, None))

    async def _target(self, msg: OutboxMessage) -> ConversationRef:
        if msg.target_type == "team":
            ref = await refs.for_team(self.rt, msg.target_id)
            if ref is None:
                raise Unreachable("tokencoach is not in this team's Teams channel: add the app "
                                  "to the team, and set directory.teams[].channel.teams")
            return ref
        ref = await refs.for_person(self.rt, msg.target_id)
        if ref is None:
            raise Unreachable("no Teams conversation with this person yet (they have not "
                              "installed or messaged tokencoach in Teams)")
        return ref

    async def _failure(self, exc: ConnectorError, ref_id: int | None) -> DeliveryError:
        if exc.transient:
            return RetryLater(f"teams: {exc}", exc.retry_after)
        if exc.gone and ref_id is not None:
            await refs.retire(self.rt, ref_id, f"{exc.status} {exc.code}")
            return Undeliverable(f"teams: {exc} (conversation reference retired)")
        return Undeliverable(f"teams: {exc}")

    async def send(self, msg: OutboxMessage, reply: Reply) -> dict[str, Any]:
        ref = await self._target(msg)
        where = refs.where_of(ref.reference)
        user = (ref.reference.get("user") or {}).get("id")
        reply = links.tracked(self.rt, reply, msg.target_id if msg.target_type == "person"
                              else None)
        card = render.reply_card(reply, await images.sources(self.rt, reply))
        try:
            connector = await self._connector(where.service_url)
            if not where.conversation_id:  # a person we only know from a channel
                opened = await connector.create_personal(
                    bot_id=where.bot_id, user_id=user or "", tenant_id=where.tenant_id)
                await refs.set_conversation(self.rt, ref.id, opened)
                where = replace(where, conversation_id=opened, conversation_type="personal")
            activity = activities.outgoing(render.message(card, reply.text), where,
                                           ChannelAccount(id=user) if user else None)
            activity_id = await connector.send(where.conversation_id, activity)
        except ConnectorError as exc:
            raise await self._failure(exc, ref.id) from exc
        return {"service_url": where.service_url, "conversation_id": where.conversation_id,
                "conversation_type": where.conversation_type, "activity_id": activity_id,
                "tenant_id": where.tenant_id, "bot_id": where.bot_id, "ref_id": ref.id}

    async def update(self, msg: OutboxMessage, ref: dict[str, Any], reply: Reply) -> None:
        where = refs.where_of({
            "service_url": ref["service_url"], "tenant_id": ref.get("tenant_id"),
            "bot": {"id": ref.get("bot_id", "")},
            "conversation": {"id": ref["conversation_id"],
                             "type": ref.get("conversation_type", "personal")}})
        card = render.reply_card(reply, await images.sources(self.rt, reply))
        activity = activities.outgoing(render.message(card, reply.text), where, None)
        try:
            connector = await self._connector(where.service_url)
            await connector.update(where.conversation_id, ref["activity_id"], activity)
        except ConnectorError as exc:
            raise await self._failure(exc, ref.get("ref_id")) from exc

    async def find_sent(self, msg: OutboxMessage) -> dict[str, Any] | None:
        # Bots can't list a Teams conversation's messages, so a send left uncertain by a
        # crash can't be checked: the outbox sends it again (a rare duplicate, never a loss).
        return None

    async def close(self) -> None:
        return None
