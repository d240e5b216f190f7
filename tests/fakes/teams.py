"""A loopback fake of the Bot Connector service (an activity's ``serviceUrl``), recording
everything the bot sends.

Routes and shapes follow the Bot Connector REST reference and the msteams-docs pages
(/work/research/chat.md §8): send ``POST /v3/conversations/{id}/activities``, reply
``POST …/activities/{replyToId}``, update ``PUT …/activities/{activityId}``, create a 1:1
``POST /v3/conversations`` (answers ``{"id": "a:…"}``), roster ``GET
/v3/conversations/{id}/members/{userId}`` (a TeamsChannelAccount). Errors use the
documented body ``{"error": {"code", "message"}}``; failures can be scripted per
operation: 429 with Retry-After, 5xx, 403 ``ConversationBlockedByUser``, 404
``ConversationNotFound``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BOT_ID = "28:c9e8c047-2a74-40a2-b28a-b162d5f5327c"
ERROR_CODES = {400: "BadArgument", 401: "BotNotRegistered", 403: "ConversationBlockedByUser",
               404: "ConversationNotFound", 413: "MessageSizeTooBig", 429: "Throttled",
               500: "ServiceError", 502: "BadGateway", 503: "ServiceUnavailable"}


@dataclass(frozen=True)
class TeamsUser:
    """A Teams user as the connector knows them: per-bot id, AAD object id, roster email."""

    email: str
    name: str

    @property
    def id(self) -> str:
        return "29:1" + uuid.uuid5(uuid.NAMESPACE_URL, f"teams:{self.email}").hex

    @property
    def aad(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, self.email))

    def account(self) -> dict[str, Any]:
        """A TeamsChannelAccount, as GET members answers."""
        given, _, surname = self.name.partition(" ")
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad, "email": self.email,
                "userPrincipalName": self.email, "givenName": given, "surname": surname,
                "tenantId": TENANT, "userRole": "user"}


@dataclass
class Call:
    op: str  # send | reply | update | create | member
    method: str
    path: str
    body: Any
    authorization: str | None


@dataclass
class Posted:
    """A message the bot posted, as it now stands (updates replace ``activity``)."""

    conversation: str
    id: str
    activity: dict[str, Any]
    reply_to: str | None = None
    edits: int = 0

    @property
    def card(self) -> dict[str, Any] | None:
        for att in self.activity.get("attachments") or []:
            if att.get("contentType") == "application/vnd.microsoft.card.adaptive":
                return att.get("content")
        return None


@dataclass
class FakeConnector:
    users: dict[str, TeamsUser] = field(default_factory=dict)  # teams user id -> user
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, list[Posted]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, list[tuple[int, str | None, dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(list))
    base_url: str = ""
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # --- scripting and reading -------------------------------------------------------

    def add(self, *users: TeamsUser) -> None:
        for user in users:
            self.users[user.id] = user

    def fail(self, op: str, *statuses: int, code: str | None = None,
             retry_after: int | None = None) -> None:
        """Answer the next ``op`` calls (send/reply/update/create/member) with errors."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        for status in statuses:
            self.failures[op].append((status, code, headers))

    def calls_to(self, op: str) -> list[Call]:
        return [c for c in self.calls if c.op == op]

    def personal_id(self, user: TeamsUser) -> str:
        """The 1:1 conversation id this fake gives ``user`` (stable, like Teams')."""
        return "a:1" + uuid.uuid5(uuid.NAMESPACE_OID, user.id).hex

    def in_conversation(self, conversation: str) -> list[Posted]:
        return list(self.messages[conversation])

    def all_posted(self) -> list[Posted]:
        return [m for msgs in self.messages.values() for m in msgs]

    def cards(self) -> list[dict[str, Any]]:
        """Every Adaptive Card the bot sent or updated, in order (for schema checks)."""
        out = []
        for call in self.calls:
            if call.op in ("send", "reply", "update") and isinstance(call.body, dict):
                for att in call.body.get("attachments") or []:
                    if att.get("contentType") == "application/vnd.microsoft.card.adaptive":
                        out.append(att["content"])
        return out

    # --- the server --------------------------------------------------------------------

    def _error(self, status: int, code: str | None, headers: dict[str, str]) -> web.Response:
        code = code or ERROR_CODES.get(status, "ServiceError")
        return web.json_response({"error": {"code": code, "message": f"fake {code}"}},
                                 status=status, headers=headers)

    async def _record(self, request: web.Request, op: str) -> tuple[Any, web.Response | None]:
        raw = await request.read()
        body = json.loads(raw) if raw else None
        self.calls.append(Call(op, request.method, request.path, body,
                               request.headers.get("Authorization")))
        if self.failures.get(op):
            return body, self._error(*self.failures[op].pop(0))
        return body, None

    async def create(self, request: web.Request) -> web.Response:
        body, failed = await self._record(request, "create")
        if failed:
            return failed
        members = body.get("members") or []
        tenant = ((body.get("channelData") or {}).get("tenant") or {}).get("id")
        if body.get("isGroup") or len(members) != 1 or not tenant:
            return self._error(400, "BadArgument", {})
        user = self.users.get(members[0].get("id", ""))
        if user is None:
            return self._error(404, "MemberNotFoundInConversation", {})
        return web.json_response({"id": self.personal_id(user)})

    async def send(self, request: web.Request) -> web.Response:
        reply_to = request.match_info.get("reply_to")
        body, failed = await self._record(request, "reply" if reply_to else "send")
        if failed:
            return failed
        conversation = request.match_info["conversation"]
        posted = Posted(conversation=conversation, id=f"1{next(self._ids):011d}",
                        activity=body, reply_to=reply_to)
        self.messages[conversation].append(posted)
        return web.json_response({"id": posted.id})

    async def update(self, request: web.Request) -> web.Response:
        body, failed = await self._record(request, "update")
        if failed:
            return failed
        conversation, activity_id = request.match_info["conversation"], request.match_info["id"]
        for posted in self.messages.get(conversation, []):
            if posted.id == activity_id:
                posted.activity = body
                posted.edits += 1
                return web.json_response({"id": activity_id})
        return self._error(404, "ActivityNotFound", {})

    async def member(self, request: web.Request) -> web.Response:
        _, failed = await self._record(request, "member")
        if failed:
            return failed
        user = self.users.get(request.match_info["user"])
        if user is None:
            return self._error(404, "MemberNotFoundInConversation", {})
        return web.json_response(user.account())

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/conversations", self.create)
        app.router.add_post("/v3/conversations/{conversation}/activities", self.send)
        app.router.add_post("/v3/conversations/{conversation}/activities/{reply_to}", self.send)
        app.router.add_put("/v3/conversations/{conversation}/activities/{id}", self.update)
        app.router.add_get("/v3/conversations/{conversation}/members/{user}", self.member)
        return app
