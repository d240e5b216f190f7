"""Requests signed exactly as Slack signs them: v0:{timestamp}:{body}, HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import aiohttp

SECRET = "test-signing-secret-0123456789"
TOKEN = "xoxb-test-token"


def signature(body: str, timestamp: int, secret: str = SECRET) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(body: str, *, timestamp: int | None = None, secret: str = SECRET,
                   content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": signature(body, ts, secret),
            "Content-Type": content_type}


class SlackClient:
    """Posts what Slack would post to /slack/events, signed."""

    def __init__(self, http: aiohttp.ClientSession, base: str, fake_base: str):
        self.http = http
        self.url = f"{base}/slack/events"
        self.fake_base = fake_base

    async def post(self, body: str, *, headers: dict[str, str] | None = None,
                   content_type: str = "application/x-www-form-urlencoded"
                   ) -> tuple[int, str]:
        hdrs = headers if headers is not None else signed_headers(body, content_type=content_type)
        async with self.http.post(self.url, data=body.encode(), headers=hdrs) as resp:
            return resp.status, await resp.text()

    def command_body(self, user_id: str, text: str, *, channel_id: str | None = None,
                     trigger_id: str | None = None) -> str:
        return urlencode({
            "token": "verification-token", "team_id": "T0ACME", "team_domain": "acme",
            "channel_id": channel_id or "D" + user_id[1:], "channel_name": "directmessage",
            "user_id": user_id, "user_name": user_id.lower(), "command": "/tokens",
            "text": text, "api_app_id": "A0TOKENS", "is_enterprise_install": "false",
            "response_url": f"{self.fake_base}/response/{uuid.uuid4().hex}",
            "trigger_id": trigger_id or f"{uuid.uuid4().int % 10**11}.1.{uuid.uuid4().hex[:8]}",
        })

    async def command(self, user_id: str, text: str = "", **kw: Any) -> tuple[int, Any]:
        status, body = await self.post(self.command_body(user_id, text, **kw))
        try:
            return status, json.loads(body) if body else {}
        except json.JSONDecodeError:
            return status, body

    async def interact(self, payload: dict[str, Any]) -> tuple[int, Any]:
        status, body = await self.post(urlencode({"payload": json.dumps(payload)}))
        try:
            return status, json.loads(body) if body else {}
        except json.JSONDecodeError:
            return status, body

    def block_action(self, user_id: str, action_id: str, value: str, *, channel: str,
                     message_ts: str, ephemeral: bool = False,
                     action_ts: str | None = None) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(),
                     "team_id": "T0ACME"},
            "api_app_id": "A0TOKENS", "token": "verification-token",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                          "is_ephemeral": ephemeral},
            "trigger_id": f"{uuid.uuid4().int % 10**11}.1.{uuid.uuid4().hex[:8]}",
            "team": {"id": "T0ACME", "domain": "acme"},
            "channel": {"id": channel, "name": "directmessage"},
            "response_url": f"{self.fake_base}/response/{uuid.uuid4().hex}",
            "actions": [{"action_id": action_id, "block_id": "b1", "value": value,
                         "type": "button", "text": {"type": "plain_text", "text": "Button"},
                         "action_ts": action_ts or f"{time.time():.6f}"}],
        }

    def view_submission(self, user_id: str, view: dict[str, Any],
                        values: dict[str, str]) -> dict[str, Any]:
        state = {name: {"value": {"type": "plain_text_input", "value": value}}
                 for name, value in values.items()}
        return {
            "type": "view_submission",
            "team": {"id": "T0ACME", "domain": "acme"},
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(),
                     "team_id": "T0ACME"},
            "api_app_id": "A0TOKENS", "token": "verification-token",
            "trigger_id": f"{uuid.uuid4().int % 10**11}.1.x",
            "view": {**view, "id": view.get("id") or f"V{uuid.uuid4().hex[:8]}",
                     "state": {"values": state}, "hash": f"{time.time():.6f}.abc"},
            "response_urls": [],
        }


def block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text a Block Kit payload shows (for assertions and injection checks)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str) and node.get("type") in (
                    "mrkdwn", "plain_text"):
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return out


def field_value(blocks: list[dict[str, Any]], label: str) -> str | None:
    """The value of a section field rendered as '*Label*\\nvalue'."""
    for block in blocks:
        for f in block.get("fields") or []:
            head, _, value = f["text"].partition("\n")
            if head.strip("*") == label:
                return value
    return None
