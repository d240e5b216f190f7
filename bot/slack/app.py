"""The Bolt app: /tokens, buttons, modal submissions and App Home, all through the
platform-neutral handlers. Signature verification stays on (bad, missing or stale → 401).
"""

from __future__ import annotations

import logging
import re
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.reply import ActionResult, Form, Reply, simple
from bot.runtime import Runtime
from bot.slack import render, views
from bot.slack.client import web_client
from bot.slack.people import resolve
from bot.store import UNAVAILABLE
from bot.store.dedupe import first_time
from handlers import handle_action, handle_command
from handlers.balance import balance_reply
from handlers.context import Actor, Ctx
from handlers.router import UNAVAILABLE_REPLY

log = logging.getLogger("tokencoach.slack")


def dedupe_key(body: dict[str, Any]) -> str | None:
    """What identifies one delivery of a state-changing request.

    Modal submissions are not listed: Slack does not retry them, and a corrected
    resubmission after a validation error carries the same view id and hash.
    """
    kind = body.get("type")
    if kind == "event_callback" and body.get("event_id"):
        return f"slack:event:{body['event_id']}"
    if kind == "block_actions" and body.get("actions"):
        action = body["actions"][0]
        return f"slack:action:{body.get('user', {}).get('id')}:{action.get('action_ts')}"
    if body.get("command") and (body.get("text") or "").strip().lower().startswith("sandbox"):
        # Only requests that create something need it; read-only commands stay write-free.
        return f"slack:command:{body.get('trigger_id')}"
    return None


class WithoutPayload(logging.Filter):
    """Bolt puts request payloads in some of its messages ("Unhandled request ({...})",
    a middleware's skipped request, an invalid signature's body): keep the sentence,
    drop the payload. No request body may reach the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        cut = min((i for i in (text.find("("), text.find("{")) if i >= 0), default=-1)
        if cut >= 0:
            record.msg, record.args = text[:cut].rstrip() + " [payload omitted]", None
        return True


def bolt_logger() -> logging.Logger:
    """The logger Bolt and its middleware copy their level and filters from: warnings and
    up (Bolt's info and debug lines carry bodies), without payloads."""
    logger = logging.getLogger("tokencoach.slack.bolt")
    logger.setLevel(logging.WARNING)
    if not any(isinstance(f, WithoutPayload) for f in logger.filters):
        logger.addFilter(WithoutPayload())
    return logger


def build_bolt(rt: Runtime) -> AsyncApp:
    client = web_client(rt)
    bolt = AsyncApp(
        client=client,
        signing_secret=rt.env.slack_signing_secret,
        process_before_response=True,
        raise_error_for_unhandled_request=False,
        logger=bolt_logger(),
    )

    async def actor_for(
        user_id: str, channel_id: str | None = None, *, lazy: bool = False
    ) -> Actor | None:
        """The asking person; None when the store is unreachable (say so, don't fail).
        ``lazy``: looked up by the router when needed (the balance card finds the person
        in its own statement: one round trip for the commonest command)."""
        if lazy:
            return Actor(
                person=None,
                platform="slack",
                platform_user_id=user_id,
                in_channel=bool(channel_id) and not str(channel_id).startswith("D"),
                lookup=partial(resolve, rt, client, user_id),
            )
        try:
            person = await resolve(rt, client, user_id)
        except UNAVAILABLE as exc:
            log.warning("store unavailable resolving a Slack user", extra={"error": repr(exc)})
            return None
        return Actor(
            person=person,
            platform="slack",
            platform_user_id=user_id,
            in_channel=bool(channel_id) and not str(channel_id).startswith("D"),
        )

    @bolt.middleware
    async def skip_duplicates(req: AsyncBoltRequest, resp: BoltResponse, next: Any) -> Any:
        key = dedupe_key(req.body)
        try:
            seen_before = bool(key) and not await first_time(rt, key or "")
        except UNAVAILABLE:
            seen_before = False  # the listener will answer "try again" on its own
        if seen_before:
            log.info(
                "duplicate Slack delivery ignored",
                extra={"key": key, "retry": req.headers.get("x-slack-retry-num")},
            )
            text = "That request was already handled." if req.body.get("command") else ""
            return BoltResponse(status=200, body=text)
        return await next()

    @bolt.command(re.compile(r"^/.+"))
    async def on_command(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        actor = await actor_for(body["user_id"], body.get("channel_id"), lazy=True)
        if actor is None:
            await ack(response_type="ephemeral", **render.message(UNAVAILABLE_REPLY))
            return
        result = await handle_command(Ctx(rt, actor), body.get("text") or "")
        if isinstance(result, Form):
            key = await views.remember(rt, {"value": result.value})
            await client.views_open(trigger_id=body["trigger_id"], view=render.modal(result, key))
            await ack()
            return
        await ack(response_type="ephemeral", **render.message(result))

    @bolt.action(re.compile(r".*"))
    async def on_action(
        ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any
    ) -> None:
        await ack()
        action = body["actions"][0]
        value = action.get("value") or (action.get("selected_option") or {}).get("value") or ""
        container = body.get("container") or {}
        actor = await actor_for(body["user"]["id"], container.get("channel_id"))
        if actor is None:
            await respond(
                response_type="ephemeral",
                replace_original=False,
                **render.message(UNAVAILABLE_REPLY),
            )
            return
        result = await handle_action(Ctx(rt, actor), action["action_id"], value)
        where = {
            "channel": container.get("channel_id"),
            "ts": container.get("message_ts"),
            "ephemeral": bool(container.get("is_ephemeral")),
        }
        if where["ephemeral"] and body.get("response_url"):
            # An ephemeral message (the requests list) can only be replaced through its
            # response_url, also after a form opened from it is submitted.
            where["response_url"] = body["response_url"]
        await apply_result(rt, client, respond, body, result, where)

    @bolt.view(re.compile(r".*"))
    async def on_view(
        ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        meta = await views.recall(rt, str(view.get("private_metadata") or ""))
        actor = await actor_for(body["user"]["id"])
        if actor is None:
            await ack(
                response_action="errors",
                errors={
                    next(
                        (b["block_id"] for b in view.get("blocks", []) if b.get("block_id")),
                        "value",
                    ): UNAVAILABLE_REPLY.text
                },
            )
            return
        result = await handle_action(
            Ctx(rt, actor),
            view.get("callback_id") or "",
            str(meta.get("value") or ""),
            render.form_values(view),
        )
        if result.errors:
            known = {b.get("block_id") for b in view.get("blocks", [])}
            errors = {
                k if k in known else next(iter(known), k): v for k, v in result.errors.items()
            }
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        where = {
            "channel": meta.get("channel"),
            "ts": meta.get("ts"),
            "ephemeral": bool(meta.get("ephemeral")),
            "response_url": meta.get("response_url"),
        }
        await apply_result(rt, client, None, body, result, where)

    @bolt.event("app_home_opened")
    async def on_home(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") not in (None, "home"):
            return
        actor = await actor_for(event["user"])
        if actor is None:
            return
        if actor.person is None:
            reply = await handle_command(Ctx(rt, actor), "help")
            assert isinstance(reply, Reply)
        else:
            reply = await balance_reply(Ctx(rt, actor), actor.person)
        blocks = render.message(reply)["blocks"]
        await client.views_publish(
            user_id=event["user"], view={"type": "home", "blocks": render.fit(blocks, 100)}
        )

    @bolt.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        return None  # DMs to the bot are not commands on Slack; /tokens is

    @bolt.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack listener failed", extra={"error": repr(error), "type": body.get("type")})

    return bolt


async def apply_result(
    rt: Runtime,
    client: AsyncWebClient,
    respond: Any,
    body: dict[str, Any],
    result: ActionResult,
    where: dict[str, Any],
) -> None:
    """Show the result; if Slack refuses a step (message gone, trigger expired), say so
    privately rather than fail the request."""
    try:
        await _apply(rt, client, respond, body, result, where)
    except SlackApiError as exc:
        log.warning(
            "Slack refused a follow-up call",
            extra={"error": exc.response.get("error"), "user": body["user"]["id"]},
        )
        fallback = (
            result.update
            or result.reply
            or simple("That didn't open in time — please click again.")
        )
        try:
            await client.chat_postEphemeral(
                channel=where.get("channel") or body["user"]["id"],
                user=body["user"]["id"],
                **render.message(fallback),
            )
        except SlackApiError:
            log.warning("Slack refused the fallback message too")


async def _apply(
    rt: Runtime,
    client: AsyncWebClient,
    respond: Any,
    body: dict[str, Any],
    result: ActionResult,
    where: dict[str, Any],
) -> None:
    user_id = body["user"]["id"]
    if result.form is not None:
        key = await views.remember(rt, {"value": result.form.value, **where})
        await client.views_open(trigger_id=body["trigger_id"], view=render.modal(result.form, key))
    if result.update is not None:
        payload = render.message(result.update)
        if where.get("ephemeral") and respond is not None:
            await respond(replace_original=True, **payload)
        elif where.get("ephemeral") and where.get("response_url"):
            sent = await AsyncWebhookClient(where["response_url"]).send(
                replace_original=True, **payload
            )
            if sent.status_code != 200:
                log.warning("Slack refused the response_url", extra={"status": sent.status_code})
                await client.chat_postEphemeral(
                    channel=where.get("channel") or user_id, user=user_id, **payload
                )
        elif where.get("channel") and where.get("ts"):
            await client.chat_update(channel=where["channel"], ts=where["ts"], **payload)
    if result.reply is not None:
        payload = render.message(result.reply)
        if respond is not None:
            await respond(response_type="ephemeral", replace_original=False, **payload)
        elif where.get("channel"):
            await client.chat_postEphemeral(channel=where["channel"], user=user_id, **payload)
        else:
            await client.chat_postMessage(channel=user_id, **payload)
