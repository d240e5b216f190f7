"""Reading incoming Bot Framework activities and building outgoing ones."""

from __future__ import annotations

import html
import re
from typing import Any

from botbuilder.core import InvokeResponse
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationAccount
from msrest.serialization import Model

from bot.teams.refs import Where
from bot.teams.render import CARD_TYPE

MESSAGE_TYPE = "application/vnd.microsoft.activity.message"
ERROR_TYPE = "application/vnd.microsoft.error"
_AT = re.compile(r"</?at[^>]*>", re.I)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def tenant_of(a: Activity) -> str | None:
    # botbuilder maps tenant_id to "tenantID", so Teams' conversation.tenantId lands in
    # additional_properties; channelData.tenant.id is the reliable place.
    tenant = as_dict(as_dict(a.channel_data).get("tenant")).get("id")
    conv = a.conversation
    return tenant or (conv.additional_properties or {}).get("tenantId") or conv.tenant_id


def where_of(a: Activity) -> Where:
    data = as_dict(a.channel_data)
    channel = as_dict(data.get("channel")).get("id")
    team = as_dict(data.get("team")).get("id")
    kind = a.conversation.conversation_type or ("channel" if channel else "personal")
    return Where(service_url=a.service_url or "", tenant_id=tenant_of(a),
                 bot_id=a.recipient.id, bot_name=a.recipient.name,
                 conversation_id=a.conversation.id, conversation_type=kind,
                 channel_id=channel, team_id=team)


def command_text(a: Activity) -> str:
    """The words after the bot's @mention: the mention removed by its entity text (never
    as a regex), other <at> tags unwrapped, HTML entities (&nbsp;) decoded."""
    text = a.text or ""
    for entity in a.entities or []:
        if (entity.type or "").lower() != "mention":
            continue
        props = entity.additional_properties or {}
        if as_dict(props.get("mentioned")).get("id") == a.recipient.id and props.get("text"):
            text = text.replace(props["text"], " ")
    text = html.unescape(_AT.sub("", text)).replace("\xa0", " ")
    return " ".join(text.split())


def outgoing(payload: dict[str, Any], where: Where, user: ChannelAccount | None,
             conversation_id: str | None = None) -> Activity:
    """A message activity for ``payload`` (render.message JSON) into a conversation."""
    activity = Activity.deserialize(payload)
    conv_id = conversation_id or where.conversation_id
    activity.conversation = ConversationAccount(
        id=conv_id, conversation_type="personal" if conversation_id else where.conversation_type,
        tenant_id=where.tenant_id)
    activity.from_property = ChannelAccount(id=where.bot_id, name=where.bot_name)
    activity.recipient = user
    activity.service_url = where.service_url
    activity.channel_id = "msteams"
    if where.tenant_id:
        activity.channel_data = {"tenant": {"id": where.tenant_id}}
    return activity


def text_message(text: str) -> dict[str, Any]:
    return {"type": "message", "text": text, "textFormat": "plain"}


class InvokeBody(Model):
    """``{"statusCode", "type", "value"}``. Like botbuilder's AdaptiveCardInvokeResponse,
    but ``value`` may also be a string (the message type), which that model can't hold."""

    _attribute_map = {  # noqa: RUF012 (msrest reads it per instance)
        "status_code": {"key": "statusCode", "type": "int"},
        "type": {"key": "type", "type": "str"},
        "value": {"key": "value", "type": "object"}}

    def __init__(self, *, status_code: int, type: str, value: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.status_code, self.type, self.value = status_code, type, value


def invoke_response(kind: str, value: Any, status: int = 200) -> Activity:
    """The reply to an ``adaptiveCard/action`` invoke. The body is passed as a model, not
    a dict: CloudAdapter serializes it once more, and a dict there is the SDK's HTTP 500."""
    body = InvokeBody(status_code=status, type=kind, value=value)
    return Activity(type=ActivityTypes.invoke_response,
                    value=InvokeResponse(status=200, body=body))


def card_response(card: dict[str, Any]) -> Activity:
    return invoke_response(CARD_TYPE, card)


def message_response(text: str) -> Activity:
    return invoke_response(MESSAGE_TYPE, text)


def error_response(status: int, code: str, message: str) -> Activity:
    return invoke_response(ERROR_TYPE, {"code": code, "message": message}, status)
