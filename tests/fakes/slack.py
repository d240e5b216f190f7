"""A loopback fake of the Slack Web API (and response_url endpoints), recording calls.

Shapes follow Slack's documented responses (docs.slack.dev/reference/methods/...).
Arguments are read from the query string and the body (JSON or form), as slack_sdk sends
them both ways. Failures can be scripted per method: 429 with Retry-After, 500, or an
`{"ok": false, "error": ...}` answer, before acting (``fail``) or after acting
(``fail_after_acting``: Slack posted the message, then its answer was a 5xx). User objects
follow users.info's documented shape (docs.slack.dev/reference/methods/users.info:
``team_id``, ``deleted``, ``is_restricted``, ``is_ultra_restricted``, ``is_bot``,
``enterprise_user``); ``accounts`` overrides those fields per user.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web


@dataclass
class Call:
    method: str
    args: dict[str, Any]


@dataclass
class FakeSlack:
    users: dict[str, str] = field(default_factory=dict)  # user id -> email
    dnd: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)  # response_url posts
    history: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    uploads: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(list))
    delays: dict[str, float] = field(default_factory=dict)  # method -> seconds, after acting
    after_acting: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)  # user id -> overrides
    base_url: str = ""
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))

    # --- scripting -------------------------------------------------------------------

    def fail(self, method: str, *answers: str | int, retry_after: int = 0) -> None:
        """Queue failures for ``method``: 429, 500, or an error name like 'channel_not_found'."""
        for answer in answers:
            if answer == 429:
                self.failures[method].append(
                    (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}))
            elif isinstance(answer, int):
                self.failures[method].append((answer, {"ok": False, "error": "internal_error"}, {}))
            else:
                self.failures[method].append((200, {"ok": False, "error": answer}, {}))

    def fail_after_acting(self, method: str, *statuses: int) -> None:
        """Queue answers given after ``method`` has acted (e.g. posted): 500, 503..."""
        self.after_acting[method].extend(statuses)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [c.args for c in self.calls if c.method == method]

    def messages(self, channel: str | None = None) -> list[dict[str, Any]]:
        if channel is not None:
            return list(self.history[channel])
        return [m for msgs in self.history.values() for m in msgs]

    def user_id(self, email: str) -> str:
        return next(uid for uid, e in self.users.items() if e == email)

    def dm_channel(self, email: str) -> str:
        return "D" + self.user_id(email)[1:]

    # --- the server --------------------------------------------------------------------

    async def _args(self, request: web.Request) -> dict[str, Any]:
        args: dict[str, Any] = dict(request.query)
        body = await request.read()
        if body:
            ctype = request.headers.get("Content-Type", "")
            if "json" in ctype:
                args.update(json.loads(body))
            else:
                args.update(dict(parse_qsl(body.decode())))
        for key in ("blocks", "metadata", "view", "files"):
            if isinstance(args.get(key), str):
                try:
                    args[key] = json.loads(args[key])
                except json.JSONDecodeError:
                    pass
        return args

    def _ok(self, **data: Any) -> web.Response:
        return web.json_response({"ok": True, **data})

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.headers.get("Authorization", "") != "Bearer xoxb-test-token":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        args = await self._args(request)
        self.calls.append(Call(method, args))
        if self.failures.get(method):
            status, body, headers = self.failures[method].pop(0)
            return web.json_response(body, status=status, headers=headers)
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        response = await handler(args)
        if self.after_acting.get(method):
            status = self.after_acting[method].pop(0)
            return web.json_response({"ok": False, "error": "internal_error"}, status=status)
        if self.delays.get(method):
            # Slack acted, but the answer is slow: the caller may time out or die waiting.
            await asyncio.sleep(self.delays[method])
        return response

    async def m_auth_test(self, args: dict[str, Any]) -> web.Response:
        return self._ok(url="https://acme.slack.com/", team="Acme", user="tokencoach",
                        team_id="T0ACME", user_id="UBOT", bot_id="BBOT")

    def account(self, uid: str) -> dict[str, Any]:
        return {"id": uid, "team_id": "T0ACME", "name": uid.lower(), "deleted": False,
                "tz": "America/New_York", "is_bot": False, "is_restricted": False,
                "is_ultra_restricted": False,
                "profile": {"email": self.users[uid], "real_name": uid},
                **self.accounts.get(uid, {})}

    async def m_users_info(self, args: dict[str, Any]) -> web.Response:
        uid = args.get("user", "")
        if uid not in self.users:
            return web.json_response({"ok": False, "error": "user_not_found"})
        return self._ok(user=self.account(uid))

    async def m_users_lookupByEmail(self, args: dict[str, Any]) -> web.Response:
        email = args.get("email", "")
        for uid, known in self.users.items():
            if known == email:
                return self._ok(user=self.account(uid))
        return web.json_response({"ok": False, "error": "users_not_found"})

    async def m_conversations_open(self, args: dict[str, Any]) -> web.Response:
        user = str(args.get("users", "")).split(",")[0]
        return self._ok(channel={"id": "D" + user[1:]})

    async def m_chat_postMessage(self, args: dict[str, Any]) -> web.Response:
        channel = str(args["channel"])
        if channel.startswith("U"):
            channel = "D" + channel[1:]
        if channel.startswith("CGONE"):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        ts = f"1700000000.{next(self._ts):06d}"
        message = {"type": "message", "ts": ts, "text": args.get("text", ""),
                   "blocks": args.get("blocks", []), "bot_id": "BBOT"}
        if args.get("metadata"):
            message["metadata"] = args["metadata"]
        self.history[channel].append(message)
        return self._ok(channel=channel, ts=ts, message=message)

    async def m_chat_update(self, args: dict[str, Any]) -> web.Response:
        for message in self.history[str(args["channel"])]:
            if message["ts"] == args["ts"]:
                message.update(text=args.get("text", ""), blocks=args.get("blocks", []),
                               edited=True)
                return self._ok(channel=args["channel"], ts=args["ts"], text=args.get("text"))
        return web.json_response({"ok": False, "error": "message_not_found"})

    async def m_chat_postEphemeral(self, args: dict[str, Any]) -> web.Response:
        return self._ok(message_ts=f"1700000000.{next(self._ts):06d}")

    async def m_views_open(self, args: dict[str, Any]) -> web.Response:
        return self._ok(view={"id": f"V{next(self._ts)}", **(args.get("view") or {})})

    async def m_views_publish(self, args: dict[str, Any]) -> web.Response:
        return self._ok(view={"id": f"V{next(self._ts)}", **(args.get("view") or {})})

    async def m_dnd_info(self, args: dict[str, Any]) -> web.Response:
        return self._ok(**self.dnd.get(args.get("user", ""), {"dnd_enabled": False,
                                                              "next_dnd_start_ts": 1,
                                                              "next_dnd_end_ts": 1}))

    async def m_conversations_history(self, args: dict[str, Any]) -> web.Response:
        oldest = float(args.get("oldest") or 0)
        msgs = [m for m in self.history[str(args["channel"])] if float(m["ts"]) >= oldest
                or True]
        return self._ok(messages=list(reversed(msgs)), has_more=False,
                        response_metadata={"next_cursor": ""})

    async def m_files_getUploadURLExternal(self, args: dict[str, Any]) -> web.Response:
        file_id = f"F{next(self._ts):06d}"
        return self._ok(upload_url=f"{self.base_url}/upload/{file_id}", file_id=file_id)

    async def m_files_completeUploadExternal(self, args: dict[str, Any]) -> web.Response:
        files = args.get("files") or []
        return self._ok(files=[{"id": f["id"], "title": f.get("title")} for f in files])

    async def upload(self, request: web.Request) -> web.Response:
        self.uploads[request.match_info["file_id"]] = await request.read()
        return web.Response(text=f"OK - {len(self.uploads[request.match_info['file_id']])}")

    async def response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.Response(text="ok")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self.api)
        app.router.add_post("/upload/{file_id}", self.upload)
        app.router.add_post("/response/{token}", self.response_url)
        return app
