"""Cursor Admin API: per-request usage events with tokens and cost, by member email.

Docs: https://docs.cursor.com/account/teams/admin-api (Get Team Members, Get Daily Usage
Data, Get Usage Events Data, Get Spending Data). HTTP Basic auth with the admin key as the
user name; JSON bodies on POST.

- ``POST /teams/filtered-usage-events`` ``{startDate, endDate (epoch ms), page,
  pageSize}``: events ``{timestamp (ms, a string), model, kind, maxMode, requestsCosts,
  isTokenBasedCall, tokenUsage?: {inputTokens, outputTokens, cacheWriteTokens,
  cacheReadTokens, totalCents}, isFreeBugbot, userEmail}`` with ``totalUsageEventsCount``
  and ``pagination {numPages, currentPage, pageSize, hasNextPage, hasPreviousPage}``.
  Events have no id: the key is every field that tells two apart, and events identical in
  all of them are added. The pages are numbered, so a window is read whole and its event
  count checked against ``totalUsageEventsCount``: an event that slipped between pages
  fails the window (to be read again), it is never skipped or doubled.
- ``POST /teams/daily-usage-data`` ``{startDate, endDate}``: per member and day, the
  requests by mode (agentRequests, composerRequests, chatRequests, cmdkUsages). A member's
  events on a day whose requests were mostly Agent mode are the agent product
  ``cursor_agent`` (agentic); the rest are ``cursor`` (coding). The events themselves do
  not say which mode made them: this split is per person and day.
- ``GET /teams/members``: the one-request probe.

Cost: ``tokenUsage.totalCents`` (cents, Decimal) of token-based calls; an event without
``tokenUsage`` (included in the plan) costs nothing extra and is counted as a request.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.config.models import CursorSource
from bot.money import to_micros
from bot.usage.record import RawUsage, record_key
from bot.usage.sources.base import WindowData
from bot.usage.sources.files import guess_provider
from bot.usage.sources.http import (
    ApiConnector,
    PayloadError,
    amount,
    arr,
    count,
    flag,
    obj,
    text,
)

SOURCE = "cursor"
EVENTS_PATH = "/teams/filtered-usage-events"
DAILY_PATH = "/teams/daily-usage-data"
MEMBERS_PATH = "/teams/members"
PAGE_SIZE = 100
HOUR = timedelta(hours=1)  # the Admin API aggregates hourly


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class CursorConnector(ApiConnector):
    name = SOURCE
    bucket = HOUR
    skipped_what = "event(s)"

    def __init__(self, cfg: CursorSource, key: str):
        super().__init__(cfg, key)
        self.cfg: CursorSource = cfg

    def auth_headers(self, key: str) -> dict[str, str]:
        token = base64.b64encode(f"{key}:".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    async def probe(self, now: datetime) -> str:
        members = await self.client.get(MEMBERS_PATH, [], _members)
        return (f"Admin API answered ({members} team member(s)); key in {self.cfg.key_env} "
                "accepted")

    async def fetch_window(self, start: datetime, end: datetime) -> WindowData:
        agents = await self._agent_days(start, end)
        events: list[Event] = []
        expected: int | None = None
        for number in range(1, self.cfg.max_pages + 1):
            body = {"startDate": ms(start), "endDate": ms(end) - 1, "page": number,
                    "pageSize": PAGE_SIZE}
            page = await self.client.post_json(EVENTS_PATH, body, _events_page)
            if expected is None:
                expected = page.total
            elif page.total != expected:
                raise self.client.fail(EVENTS_PATH, f"changed its event count while it was "
                                       f"read ({expected} -> {page.total}); try again")
            events.extend(page.events)
            if not page.more:
                break
        else:
            raise self.client.fail(EVENTS_PATH, f"still had more pages after "
                                   f"{self.cfg.max_pages} pages; stopped")
        if len(events) != (expected or 0):
            raise self.client.fail(EVENTS_PATH, f"paged {len(events)} events for a total of "
                                   f"{expected} (events moved between pages); try again")
        data = WindowData()
        for event in events:
            if not start <= event.at < end:
                data.skipped["outside the requested window"] += 1
                continue
            agentic = agents.get((event.email, event.at.date()), False)
            data.add(event.record(agentic))
            data.saw(SOURCE, min(event.at.replace(minute=0, second=0, microsecond=0) + HOUR,
                                 end))
        return data

    async def _agent_days(self, start: datetime, end: datetime
                          ) -> dict[tuple[str | None, date], bool]:
        day0 = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        body = {"startDate": ms(day0), "endDate": ms(day0 + timedelta(days=1)) - 1}
        return await self.client.post_json(DAILY_PATH, body, _agent_days)


class Event:
    __slots__ = ("at", "cents", "email", "fields", "tokens")

    def __init__(self, r: dict[str, Any], where: str):
        stamp = r.get("timestamp")
        if isinstance(stamp, bool) or not isinstance(stamp, str | int) or not str(
                stamp).isdigit():
            raise PayloadError(f"{where}.timestamp: expected epoch milliseconds, got "
                               f"{stamp!r}")
        self.at = datetime.fromtimestamp(int(stamp) / 1000, UTC)
        self.email = text(r, "userEmail", where)
        self.fields = (str(stamp), self.email, text(r, "model", where) or "unknown",
                       text(r, "kind", where), flag(r, "maxMode", where),
                       flag(r, "isTokenBasedCall", where), flag(r, "isFreeBugbot", where))
        usage = r.get("tokenUsage")
        if usage is None:
            self.tokens, self.cents = (0, 0, 0, 0), Decimal(0)
        else:
            u = obj(usage, f"{where}.tokenUsage")
            at = f"{where}.tokenUsage"
            self.tokens = (count(u, "inputTokens", at), count(u, "outputTokens", at),
                           count(u, "cacheReadTokens", at), count(u, "cacheWriteTokens", at))
            self.cents = amount(u.get("totalCents", 0), f"{at}.totalCents")

    def record(self, agentic: bool) -> RawUsage:
        model = self.fields[2]
        inp, out, read, write = self.tokens
        return RawUsage(
            key=record_key(SOURCE, *self.fields, *self.tokens),
            source=SOURCE,
            occurred_at=self.at,
            provider=guess_provider(model.rsplit("/", 1)[-1])[:32],
            model=model[:128],
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=read,
            cache_write_tokens=write,
            requests=1,
            cost_micros=to_micros(self.cents / 100),
            user=self.email,
            product="cursor_agent" if agentic else "cursor",
        )


class EventsPage:
    __slots__ = ("events", "more", "total")

    def __init__(self, events: list[Event], total: int, more: bool):
        self.events, self.total, self.more = events, total, more


def _events_page(payload: Any) -> EventsPage:
    body = obj(payload, "response")
    events = [Event(obj(e, f"response.usageEvents[{i}]"), f"response.usageEvents[{i}]")
              for i, e in enumerate(arr(body.get("usageEvents"), "response.usageEvents"))]
    paging = obj(body.get("pagination") or {}, "response.pagination")
    return EventsPage(events, count(body, "totalUsageEventsCount", "response", required=True),
                      flag(paging, "hasNextPage", "response.pagination"))


AGENT_MODES = ("agentRequests",)
OTHER_MODES = ("composerRequests", "chatRequests", "cmdkUsages")


def _agent_days(payload: Any) -> dict[tuple[str | None, date], bool]:
    """(email, day) -> whether most of that member's requests that day were Agent mode."""
    body = obj(payload, "response")
    out: dict[tuple[str | None, date], bool] = {}
    for i, entry in enumerate(arr(body.get("data"), "response.data")):
        where = f"response.data[{i}]"
        row = obj(entry, where)
        stamp = row.get("date")
        if isinstance(stamp, bool) or not isinstance(stamp, int):
            raise PayloadError(f"{where}.date: expected epoch milliseconds, got {stamp!r}")
        day = datetime.fromtimestamp(stamp / 1000, UTC).date()
        agent = sum(count(row, n, where) for n in AGENT_MODES)
        other = sum(count(row, n, where) for n in OTHER_MODES)
        out[(text(row, "email", where), day)] = agent > other
    return out


def _members(payload: Any) -> int:
    body = obj(payload, "response")
    return len(arr(body.get("teamMembers"), "response.teamMembers"))
