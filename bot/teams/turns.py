"""What the bot does with each Teams activity, through the platform-neutral handlers.

- message: a command (`tokens`, `tokens sandbox 300 …`, slash and @mention optional), or
  an Action.Submit fallback (``value`` with a ``verb``);
- invoke ``adaptiveCard/action``: a button or form (Action.Execute); the invoke response
  carries the card that replaces the clicked one;
- conversationUpdate / installationUpdate: install and uninstall, new team members.

Every turn refreshes the stored conversation references. In a channel or group chat,
private answers go to the asker's 1:1 chat and the channel is told so: personal figures
never appear where others can read them.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

from botbuilder.core import Bot, TurnContext
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount

from bot import links
from bot.reply import ActionResult, Form, Reply
from bot.runtime import Runtime
from bot.store.dedupe import first_time
from bot.teams import activities, images, refs, render
from bot.teams.connector import Connector, ConnectorError
from bot.teams.people import People
from bot.teams.refs import Where
from handlers import handle_action, handle_command
from handlers.context import Actor, Ctx
from handlers.router import normalize

log = logging.getLogger("tokencoach.teams")
PRIVATE_NOTE = "I sent you the answer in a private chat with me."
NO_PRIVATE = ("I couldn't message you privately. Open a chat with tokencoach and ask there: "
              "your figures are only for you.")


@dataclass
class Shown:
    """How an ActionResult is shown: a card in place of the clicked one, and private notes."""

    in_place: tuple[dict[str, Any], str] | None = None
    notes: list[tuple[dict[str, Any], str]] = field(default_factory=list)


class TeamsBot(Bot):
    def __init__(self, rt: Runtime):
        self.rt = rt
        self.people = People(rt)

    # --- dispatch --------------------------------------------------------------------

    async def on_turn(self, context: TurnContext) -> None:
        kind = context.activity.type
        if kind == ActivityTypes.message:
            await self.on_message(context)
        elif kind == ActivityTypes.invoke:
            await self.on_invoke(context)
        elif kind == ActivityTypes.conversation_update:
            await self.on_conversation_update(context)
        elif kind == ActivityTypes.installation_update:
            await self.on_installation_update(context)

    # --- who and where -----------------------------------------------------------------

    @staticmethod
    def connector(context: TurnContext) -> Connector:
        return Connector(context.turn_state[context.adapter.BOT_CONNECTOR_CLIENT_KEY])

    async def _roster(self, context: TurnContext, user_id: str) -> dict[str, Any] | None:
        try:
            return await self.connector(context).member(context.activity.conversation.id,
                                                        user_id)
        except ConnectorError as exc:
            log.info("roster lookup failed", extra={"status": exc.status, "code": exc.code})
            return None

    async def _resolve(self, context: TurnContext, where: Where, user: ChannelAccount) -> Actor:
        aad = user.aad_object_id or (user.additional_properties or {}).get("aadObjectId")
        person = await self.people.resolve(user.id, aad,
                                           lambda uid: self._roster(context, uid))
        await refs.remember_user(self.rt, where, user_id=user.id, aad=aad, name=user.name,
                                 person_id=person.id if person else None)
        return Actor(person=person, platform="teams", platform_user_id=user.id,
                     in_channel=not where.personal)

    async def actor(self, context: TurnContext) -> tuple[Actor, Where]:
        where = activities.where_of(context.activity)
        if where.channel_id or where.team_id:
            await refs.remember_channel(self.rt, where)
        return await self._resolve(context, where, context.activity.from_property), where

    async def first_time(self, context: TurnContext) -> bool:
        """Record this delivery; False if Teams is retrying one we already handled."""
        a = context.activity
        digest = hashlib.sha256(f"{a.conversation.id}|{a.id}".encode()).hexdigest()[:40]
        return await first_time(self.rt, f"teams:activity:{digest}")

    # --- sending -----------------------------------------------------------------------

    async def _say(self, context: TurnContext, payload: dict[str, Any], where: Where,
                   *, in_turn: bool) -> None:
        """Into the conversation the activity came from."""
        if in_turn:
            await context.send_activity(Activity.deserialize(payload))
            return
        activity = activities.outgoing(payload, where, context.activity.from_property)
        await self.connector(context).send(where.conversation_id, activity)

    async def _private(self, context: TurnContext, payload: dict[str, Any],
                       where: Where) -> bool:
        """Into the asker's 1:1 chat, opening it if needed. False if Teams refuses."""
        user = context.activity.from_property
        ref = await refs.for_user(self.rt, user.id)
        conversation = ((ref.reference if ref else {}).get("conversation") or {}).get("id")
        connector = self.connector(context)
        try:
            if not conversation:
                conversation = await connector.create_personal(
                    bot_id=where.bot_id, user_id=user.id, tenant_id=where.tenant_id)
                if ref is not None:
                    await refs.set_conversation(self.rt, ref.id, conversation)
            await connector.send(conversation, activities.outgoing(
                payload, where, ChannelAccount(id=user.id), conversation_id=conversation))
        except ConnectorError as exc:
            log.warning("private reply failed", extra={"status": exc.status, "code": exc.code})
            if exc.gone and ref is not None:
                await refs.retire(self.rt, ref.id, f"{exc.status} {exc.code}")
            return False
        return True

    async def answer(self, context: TurnContext, where: Where, actor: Actor,
                     payload: dict[str, Any], summary: str, *, private: bool,
                     in_turn: bool = True) -> None:
        message = render.message(payload, summary)
        if private and actor.in_channel:
            sent = await self._private(context, message, where)
            note = activities.text_message(PRIVATE_NOTE if sent else NO_PRIVATE)
            await self._say(context, note, where, in_turn=in_turn)
        else:
            await self._say(context, message, where, in_turn=in_turn)

    async def _card(self, reply: Reply,
                    person_id: int | None = None) -> tuple[dict[str, Any], str]:
        # Tutorial buttons become tracked links for the person who will see them.
        reply = links.tracked(self.rt, reply, person_id)
        return render.reply_card(reply, await images.sources(self.rt, reply)), reply.text

    # --- messages ----------------------------------------------------------------------

    async def on_message(self, context: TurnContext) -> None:
        a = context.activity
        actor, where = await self.actor(context)
        if isinstance(a.value, dict) and a.value.get("verb"):
            await self.on_submit(context, actor, where, a.value)
            return
        text = activities.command_text(a)
        words = normalize(text)
        if words and words[0].lower() == "sandbox" and not await self.first_time(context):
            return  # a retried delivery of a request that creates something
        result = await handle_command(Ctx(self.rt, actor), text)
        if isinstance(result, Form):
            await self.answer(context, where, actor, render.form_card(result), result.title,
                              private=True)
            return
        card, summary = await self._card(result, actor.person.id if actor.person else None)
        await self.answer(context, where, actor, card, summary,
                          private=result.visibility == "private")

    # --- buttons and forms ---------------------------------------------------------------

    async def run_action(self, actor: Actor, verb: str, data: dict[str, Any]
                         ) -> tuple[ActionResult, Form | None, dict[str, str]]:
        values = render.form_values(data)
        value = data.get("value")
        result = await handle_action(Ctx(self.rt, actor), verb,
                                     value if isinstance(value, str) else "", values)
        return result, render.form_of(data), values

    async def shown(self, result: ActionResult, origin: Form | None, values: dict[str, str],
                    actor: Actor) -> Shown:
        """Decide what replaces the clicked card. In a channel only a real update does
        (everyone sees that card); forms, errors and notes go to the clicker alone."""
        parts: list[tuple[str, tuple[dict[str, Any], str]]] = []
        if result.errors and origin is not None:
            card = render.form_card(origin, values=values, errors=result.errors)
            parts.append(("form", (card, origin.title)))
        elif result.errors:
            text = "\n".join(result.errors.values())
            parts.append(("note", (render.text_card(text), text)))
        if result.form is not None:
            parts.append(("form", (render.form_card(result.form), result.form.title)))
        if result.reply is not None:
            # A submitted form gives way to its answer; a plain click keeps its card.
            parts.append(("answer" if origin is not None else "note",
                          await self._card(result.reply)))
        out = Shown()
        if result.update is not None:
            out.in_place = await self._card(result.update)
        elif not actor.in_channel:
            pick = next((i for i, (kind, _) in enumerate(parts) if kind != "note"), None)
            if pick is not None:
                out.in_place = parts.pop(pick)[1]
        out.notes = [shown for _, shown in parts]
        return out

    async def on_invoke(self, context: TurnContext) -> None:
        a = context.activity
        if a.name != "adaptiveCard/action":
            return  # no invoke response: the adapter answers 501
        act = activities.as_dict(activities.as_dict(a.value).get("action"))
        if act.get("type") != "Action.Execute" or not act.get("verb"):
            await context.send_activity(activities.error_response(
                400, "BadRequest", "expected an Action.Execute with a verb"))
            return
        data = activities.as_dict(act.get("data"))
        actor, where = await self.actor(context)
        if not await self.first_time(context):
            await context.send_activity(activities.message_response("Already done."))
            return
        result, origin, values = await self.run_action(actor, str(act["verb"]), data)
        shown = await self.shown(result, origin, values, actor)
        for card, summary in shown.notes:
            await self.answer(context, where, actor, card, summary, private=True, in_turn=False)
        if shown.in_place is not None:
            await context.send_activity(activities.card_response(shown.in_place[0]))
        else:
            toast = result.reply.text if result.reply else "Done."
            await context.send_activity(activities.message_response(render.plain(toast)))

    async def on_submit(self, context: TurnContext, actor: Actor, where: Where,
                        data: dict[str, Any]) -> None:
        """The Action.Submit fallback: same actions; the card is updated with a PUT."""
        if not await self.first_time(context):
            return
        result, origin, values = await self.run_action(actor, str(data["verb"]), data)
        shown = await self.shown(result, origin, values, actor)
        a = context.activity
        if shown.in_place is not None:
            card, summary = shown.in_place
            message = render.message(card, summary)
            if a.reply_to_id:
                activity = activities.outgoing(message, where, a.from_property)
                activity.id = a.reply_to_id
                await context.update_activity(activity)
            else:
                shown.notes.insert(0, shown.in_place)
        for card, summary in shown.notes:
            await self.answer(context, where, actor, card, summary, private=True)

    # --- install, uninstall, members -----------------------------------------------------

    async def on_conversation_update(self, context: TurnContext) -> None:
        a = context.activity
        where = activities.where_of(a)
        bot_id = a.recipient.id
        added = a.members_added or []
        if any(m.id == bot_id for m in a.members_removed or []):
            n = await refs.retire_conversation(self.rt, where.conversation_id, where.team_id,
                                               "the bot was removed")
            log.info("Teams app removed", extra={"references_retired": n})
            return
        if any(m.id == bot_id for m in added):
            await self.installed(context, where)
        for member in added:
            if member.id != bot_id:
                await self._resolve(context, where, member)

    async def installed(self, context: TurnContext, where: Where) -> None:
        if where.personal:
            actor = await self._resolve(context, where, context.activity.from_property)
            welcome = await handle_command(Ctx(self.rt, actor), "help")
            if isinstance(welcome, Reply):
                card, summary = await self._card(welcome)
                await context.send_activity(Activity.deserialize(render.message(card, summary)))
            return
        if not (where.channel_id or where.team_id):
            return  # a group chat: nothing to remember beyond the people who speak
        team_id = await refs.remember_channel(self.rt, where)
        channel = where.channel_id or where.team_id
        if team_id is not None:
            text = "Hi! I'll post this team's weekly AI spend digest here."
        else:
            text = ("Hi! To get a team's weekly AI spend digest in this channel, an admin "
                    f"sets `channel: {{teams: \"{channel}\"}}` for it in app.yaml.")
        # A new post in the channel, not a reply to the (invisible) install event.
        await self._say(context, render.message(render.text_card(text), text), where,
                        in_turn=False)

    async def on_installation_update(self, context: TurnContext) -> None:
        a = context.activity
        if (a.action or "").startswith("remove"):
            where = activities.where_of(a)
            await refs.retire_conversation(self.rt, where.conversation_id, where.team_id,
                                           "the app was uninstalled")
