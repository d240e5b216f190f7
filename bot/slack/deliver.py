"""Outbox delivery to Slack: DMs and team channels, updates in place, charts inline.

Each message carries metadata with its outbox id, so a send left uncertain (a crash, a
timeout, a 5xx answer) is looked up in the conversation (conversations.history) instead of
being posted twice.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.digest.chart import png_for
from bot.outbox import RetryLater, Undeliverable, Unreachable
from bot.reply import Image, Reply
from bot.runtime import Runtime
from bot.slack import render
from bot.slack.client import web_client
from bot.slack.people import slack_id_for
from bot.store.tables import OutboxMessage, Team
from bot.timeutil import as_utc

log = logging.getLogger("tokencoach.slack")
METADATA_EVENT = "tokencoach_outbox"
PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "user_not_found",
    "users_not_found",
    "account_inactive",
    "cannot_dm_bot",
    "invalid_auth",
    "not_authed",
    "missing_scope",
    "msg_too_long",
    "invalid_blocks",
    "no_permission",
    "restricted_action",
    "team_access_not_granted",
    "user_disabled",
    "token_revoked",
    "ekm_access_denied",
}


class SlackDeliverer:
    name = "slack"

    def __init__(self, rt: Runtime):
        self.rt = rt
        self.client = web_client(rt, interactive=False)
        self._dm: dict[str, str] = {}

    async def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return await getattr(self.client, method)(**kwargs)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            if status == 429 or error == "ratelimited":
                after = exc.response.headers.get("Retry-After") or exc.response.headers.get(
                    "retry-after"
                )
                raise RetryLater(
                    f"slack {method}: rate limited",
                    float(after) if after and str(after).isdigit() else None,
                ) from exc
            if status >= 500:
                # Slack may have posted before failing to answer (the probe saw 9 of 10):
                # like a timeout, the retry first looks for the message by its metadata.
                raise RetryLater(f"slack {method}: HTTP {status}",
                                 uncertain=method == "chat_postMessage") from exc
            if error in PERMANENT:
                raise Undeliverable(f"slack {method}: {error}") from exc
            raise RetryLater(f"slack {method}: {error or status}") from exc
        except (TimeoutError, SlackRequestError, aiohttp.ClientError, OSError) as exc:
            # A timeout or dropped connection after sending may still have posted it.
            raise RetryLater(
                f"slack {method}: {type(exc).__name__}: {exc}",
                uncertain=method == "chat_postMessage",
            ) from exc

    async def _channel(self, msg: OutboxMessage) -> str:
        if msg.target_type == "team":
            async with self.rt.db.reader() as s:
                team = await s.get(Team, msg.target_id)
            if team is None or not team.slack_channel_id:
                raise Unreachable(
                    "the team has no Slack channel configured (directory.teams[].channel.slack)"
                )
            return team.slack_channel_id
        user_id = await slack_id_for(self.rt, self.client, msg.target_id)
        if not user_id:
            raise Unreachable("no Slack user with this person's email")
        if user_id not in self._dm:
            opened = await self._call("conversations_open", users=user_id)
            self._dm[user_id] = opened["channel"]["id"]
        return self._dm[user_id]

    async def _dnd_wait(self, msg: OutboxMessage) -> None:
        """Tips and alerts wait out Do Not Disturb (dnd.info), on top of working hours."""
        if msg.kind not in ("nudge", "threshold_alert") or msg.target_type != "person":
            return
        user_id = await slack_id_for(self.rt, self.client, msg.target_id)
        if not user_id:
            return
        try:
            info = await self.client.dnd_info(user=user_id)
        except SlackApiError:
            return  # dnd:read may be missing: working hours still apply
        now = self.rt.now().timestamp()
        start, end = info.get("next_dnd_start_ts") or 0, info.get("next_dnd_end_ts") or 0
        if info.get("dnd_enabled") and start <= now < end:
            raise RetryLater(
                "recipient is in Do Not Disturb", retry_after=end - now + 60, counts=False
            )
        if info.get("snooze_enabled") and info.get("snooze_endtime", 0) > now:
            raise RetryLater(
                "recipient snoozed notifications",
                retry_after=info["snooze_endtime"] - now + 60,
                counts=False,
            )

    async def _upload_charts(self, reply: Reply, msg: OutboxMessage) -> dict[str, str]:
        """Upload each chart privately first; the message then shows it inline. A retry
        only re-uploads (an orphan private file), it never posts twice."""
        files: dict[str, str] = {}
        for block in reply.blocks:
            if isinstance(block, Image) and block.chart_id and not block.url:
                png = await png_for(self.rt, block.chart_id)
                if png is None:
                    continue
                up = await self._call(
                    "files_upload_v2",
                    content=png,
                    filename=f"tokencoach-{msg.id}-{block.chart_id}.png",
                    title=block.title or block.alt,
                    alt_txt=block.alt,
                )
                file_id = (up.get("file") or {}).get("id") or (up.get("files") or [{}])[0].get("id")
                if file_id:
                    files[block.chart_id] = file_id
        return files

    async def send(self, msg: OutboxMessage, reply: Reply) -> dict[str, Any]:
        await self._dnd_wait(msg)
        channel = await self._channel(msg)
        files = await self._upload_charts(reply, msg)
        body = render.message(reply, files)
        posted = await self._call(
            "chat_postMessage",
            channel=channel,
            unfurl_links=False,
            unfurl_media=False,
            metadata={"event_type": METADATA_EVENT, "event_payload": {"outbox_id": msg.id}},
            **body,
        )
        return {"channel": posted["channel"], "ts": posted["ts"], "files": list(files.values())}

    async def update(self, msg: OutboxMessage, ref: dict[str, Any], reply: Reply) -> None:
        await self._call(
            "chat_update", channel=ref["channel"], ts=ref["ts"], **render.message(reply)
        )

    async def find_sent(self, msg: OutboxMessage) -> dict[str, Any] | None:
        try:
            channel = await self._channel(msg)
            history = await self._call(
                "conversations_history",
                channel=channel,
                limit=200,
                include_all_metadata=True,
                oldest=str(as_utc(msg.created_at).timestamp() - 60),
            )
        except (RetryLater, Unreachable, Undeliverable):
            return None
        for m in history.get("messages") or []:
            meta = m.get("metadata") or {}
            if (
                meta.get("event_type") == METADATA_EVENT
                and (meta.get("event_payload") or {}).get("outbox_id") == msg.id
            ):
                return {"channel": channel, "ts": m["ts"], "recovered": True}
        return None

    async def close(self) -> None:
        return None
