"""Driving the Teams endpoint as Teams does: Bot Framework activities as JSON over HTTP to
/api/messages, with a loopback fake connector as their ``serviceUrl``.

Activity shapes follow msteams-docs (/work/research/chat.md §7). No botbuilder import
here: the tests speak the protocol only, so the SDK can be swapped underneath them.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema

from bot.runtime import Runtime
from tests.fakes.teams import BOT_ID, TENANT, FakeConnector, TeamsUser
from tests.helpers.server import serving

BOT_NAME = "tokencoach"
TEAM_ID = "19:platform-team-general@thread.tacv2"
CHANNEL_ID = "19:platform-ai-spend@thread.tacv2"
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
_VALIDATOR: jsonschema.Draft6Validator | None = None


def card_validator() -> jsonschema.Draft6Validator:
    global _VALIDATOR
    if _VALIDATOR is None:
        schema = json.loads((SCHEMAS / "adaptive-card-1.5.json").read_text(encoding="utf-8"))
        _VALIDATOR = jsonschema.Draft6Validator(schema)
    return _VALIDATOR


def card_errors(card: dict[str, Any]) -> list[str]:
    """Schema violations of an Adaptive Card (Teams' ``msteams`` key is not in the schema)."""
    body = {k: v for k, v in card.items() if k != "msteams"}
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}"
              for e in card_validator().iter_errors(body)]
    if card.get("version") != "1.5":
        errors.append(f"version {card.get('version')!r}, expected 1.5")
    return errors


def walk(node: Any) -> list[dict[str, Any]]:
    """Every object in a card, depth first."""
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        out.append(node)
        for value in node.values():
            out += walk(value)
    elif isinstance(node, list):
        for value in node:
            out += walk(value)
    return out


def card_text(card: dict[str, Any] | None) -> str:
    """The text a card shows (TextRuns, TextBlocks, facts), joined with spaces."""
    parts: list[str] = []
    for node in walk(card or {}):
        if node.get("type") == "RichTextBlock":
            parts.append("".join(r.get("text", "") for r in node.get("inlines") or []))
        elif node.get("type") == "TextBlock":
            parts.append(node.get("text", ""))
        elif node.get("type") == "FactSet":
            parts += [f"{f['title']}: {f['value']}" for f in node.get("facts") or []]
    return " ".join(parts).replace("\u200b", "")


def fact(card: dict[str, Any] | None, title: str) -> str | None:
    for node in walk(card or {}):
        if node.get("type") == "FactSet":
            for f in node["facts"]:
                if f["title"] == title:
                    return str(f["value"])
    return None


def buttons(card: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Top-level button title -> action (Execute, OpenUrl, ShowCard)."""
    out = {}
    for node in walk(card or {}):
        if node.get("type") == "ActionSet":
            for action in node["actions"]:
                out.setdefault(action["title"], action)
    return out


@dataclass
class Sent:
    status: int
    body: Any


@dataclass
class TeamsClient:
    http: aiohttp.ClientSession
    url: str
    service_url: str
    invoke_cards: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def _id(self) -> str:
        return f"{1700000000000 + next(self._ids)}"

    def _base(self, user: TeamsUser, conversation: dict[str, Any],
              channel_data: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return {"id": self._id(), "timestamp": now, "localTimestamp": now,
                "serviceUrl": self.service_url, "channelId": "msteams",
                "from": {"id": user.id, "name": user.name, "aadObjectId": user.aad},
                "conversation": conversation,
                "recipient": {"id": BOT_ID, "name": BOT_NAME},
                "channelData": channel_data, "locale": "en-US"}

    def personal(self, user: TeamsUser, fake: FakeConnector) -> dict[str, Any]:
        return {"conversationType": "personal", "id": fake.personal_id(user), "tenantId": TENANT}

    @staticmethod
    def channel(thread: str | None = None) -> dict[str, Any]:
        conv_id = f"{CHANNEL_ID};messageid={thread}" if thread else CHANNEL_ID
        return {"conversationType": "channel", "id": conv_id, "isGroup": True,
                "tenantId": TENANT}

    @staticmethod
    def channel_data(channel: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"tenant": {"id": TENANT}}
        if channel:
            data.update(teamsChannelId=CHANNEL_ID, teamsTeamId=TEAM_ID,
                        channel={"id": CHANNEL_ID}, team={"id": TEAM_ID, "name": "Platform"})
        return data

    def message(self, user: TeamsUser, text: str, fake: FakeConnector, *,
                in_channel: bool = False) -> dict[str, Any]:
        if in_channel:
            activity = self._base(user, self.channel(), self.channel_data(True))
            activity["conversation"]["id"] = f"{CHANNEL_ID};messageid={activity['id']}"
            mention = f"<at>{BOT_NAME}</at>"
            activity.update(text=f"{mention}&nbsp;{text}", entities=[
                {"type": "mention", "text": mention, "mentioned": {"id": BOT_ID,
                                                                   "name": BOT_NAME}}])
        else:
            activity = self._base(user, self.personal(user, fake), self.channel_data(False))
            activity.update(text=text, entities=[{"type": "clientInfo", "locale": "en-US",
                                                  "country": "US", "platform": "Web",
                                                  "timezone": "America/New_York"}])
        activity.update(type="message", textFormat="plain")
        return activity

    def execute(self, user: TeamsUser, action: dict[str, Any], conversation: dict[str, Any],
                reply_to: str, inputs: dict[str, Any] | None = None,
                in_channel: bool = False) -> dict[str, Any]:
        """The invoke Teams sends for a click on ``action`` (an Action.Execute)."""
        assert action["type"] == "Action.Execute", action
        activity = self._base(user, conversation, self.channel_data(in_channel))
        data = {**(action.get("data") or {}), **(inputs or {})}
        activity.update(type="invoke", name="adaptiveCard/action", replyToId=reply_to,
                        value={"action": {"type": "Action.Execute", "id": str(uuid.uuid4()),
                                          "verb": action["verb"], "data": data},
                               "trigger": "manual"})
        return activity

    def submit(self, user: TeamsUser, action: dict[str, Any], conversation: dict[str, Any],
               reply_to: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """The message Teams sends for the Action.Submit fallback of ``action``."""
        fallback = action["fallback"]
        assert fallback["type"] == "Action.Submit", fallback
        activity = self._base(user, conversation, self.channel_data(False))
        activity.update(type="message", replyToId=reply_to,
                        value={**fallback["data"], **(inputs or {})})
        return activity

    def install_personal(self, user: TeamsUser, fake: FakeConnector) -> dict[str, Any]:
        activity = self._base(user, self.personal(user, fake), self.channel_data(False))
        activity.update(type="conversationUpdate", membersAdded=[{"id": BOT_ID}])
        return activity

    def install_team(self, user: TeamsUser, members: list[TeamsUser] | None = None,
                     ) -> dict[str, Any]:
        conversation = {"conversationType": "channel", "id": TEAM_ID, "isGroup": True,
                        "tenantId": TENANT}
        data = {"tenant": {"id": TENANT}, "eventType": "teamMemberAdded",
                "team": {"id": TEAM_ID, "name": "Platform"}}
        activity = self._base(user, conversation, data)
        added = [{"id": BOT_ID}] + [{"id": m.id, "aadObjectId": m.aad} for m in members or []]
        activity.update(type="conversationUpdate", membersAdded=added)
        return activity

    async def post(self, activity: dict[str, Any], *,
                   headers: dict[str, str] | None = None) -> Sent:
        hdrs = {"Content-Type": "application/json"} if headers is None else headers
        async with self.http.post(self.url, data=json.dumps(activity), headers=hdrs) as resp:
            raw = await resp.text()
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw
        if isinstance(body, dict) and body.get("type") == "application/vnd.microsoft.card.adaptive":
            self.invoke_cards.append(body["value"])
        return Sent(resp.status, body)


@dataclass
class TeamsHarness:
    rt: Runtime
    fake: FakeConnector
    client: TeamsClient
    users: dict[str, TeamsUser]

    def user(self, email: str) -> TeamsUser:
        return self.users[email]

    def dm(self, email: str) -> list[Any]:
        """What the bot posted in this person's 1:1 chat (oldest first)."""
        return self.fake.in_conversation(self.fake.personal_id(self.users[email]))

    async def say(self, email: str, text: str, *, in_channel: bool = False) -> Sent:
        return await self.client.post(self.client.message(self.user(email), text, self.fake,
                                                          in_channel=in_channel))

    async def click(self, email: str, posted: Any, title: str,
                    inputs: dict[str, Any] | None = None) -> Sent:
        """Click ``title`` on a card the bot posted in ``email``'s 1:1 chat."""
        action = buttons(posted.card)[title]
        user = self.user(email)
        return await self.client.post(self.client.execute(
            user, action, self.client.personal(user, self.fake), posted.id, inputs))

    async def deliver(self) -> Any:
        from bot.outbox import drain

        return await drain(self.rt)

    def emitted_cards(self) -> list[dict[str, Any]]:
        return self.fake.cards() + self.client.invoke_cards

    def assert_cards_valid(self) -> None:
        cards = self.emitted_cards()
        problems = {i: card_errors(c) for i, c in enumerate(cards)}
        assert not any(problems.values()), {i: p for i, p in problems.items() if p}


@asynccontextmanager
async def teams_harness(make_runtime: Callable[..., Any], **runtime_args: Any,
                        ) -> AsyncIterator[TeamsHarness]:
    """The real server with Teams in emulator (anonymous) mode, and a fake connector.
    On a clean exit every card the bot emitted is checked against the AC 1.5 schema."""
    from bot.server import build_app

    fake = FakeConnector()
    async with serving(fake.app()) as service_url:
        fake.base_url = service_url
        runtime_args.setdefault("teams_emulator", True)
        rt = await make_runtime(**runtime_args)
        users = {p.email: TeamsUser(p.email, p.name) for p in rt.config.directory.people}
        fake.add(*users.values())
        app = build_app(rt, background=False)
        async with serving(app) as base, aiohttp.ClientSession() as http:
            harness = TeamsHarness(rt, fake, TeamsClient(http, f"{base}/api/messages",
                                                         service_url), users)
            yield harness
            harness.assert_cards_valid()
