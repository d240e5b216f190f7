"""Loopback fake of the Cursor Admin API.

Built from https://docs.cursor.com/account/teams/admin-api (Get Team Members, Get Daily
Usage Data, Get Usage Events Data): HTTP Basic auth with the API key as the user name;
``GET /teams/members`` -> ``{teamMembers: [{name, email, role}]}``;
``POST /teams/daily-usage-data`` ``{startDate, endDate}`` (epoch ms, at most 90 days) ->
``{data: [{date (ms), isActive, ..., composerRequests, chatRequests, agentRequests,
cmdkUsages, ..., email}], period}``; ``POST /teams/filtered-usage-events``
``{startDate?, endDate?, userId?, page (1-based, default 1), pageSize (default 10),
email?}`` -> ``{totalUsageEventsCount, pagination: {numPages, currentPage, pageSize,
hasNextPage, hasPreviousPage}, usageEvents: [{timestamp (ms as a string), model, kind,
maxMode, requestsCosts, isTokenBasedCall, tokenUsage?: {inputTokens, outputTokens,
cacheWriteTokens, cacheReadTokens, totalCents}, isFreeBugbot, userEmail}], period}``.

Events are served newest first; ``tokenUsage`` is left out of events that are not
token-based, as in the documented example.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.fakes.providers import FakeProvider, bad_request, json_response

# The documented example's first two events (kinds as the English page writes them).
DOC_EVENTS = [
    {"timestamp": "1750979225854", "model": "claude-4-opus", "kind": "Usage-based",
     "maxMode": True, "requestsCosts": 5, "isTokenBasedCall": True,
     "tokenUsage": {"inputTokens": 126, "outputTokens": 450, "cacheWriteTokens": 6112,
                    "cacheReadTokens": 11964, "totalCents": Decimal("20.18232")},
     "isFreeBugbot": False, "userEmail": "developer@company.com"},
    {"timestamp": "1750979173824", "model": "claude-4-opus", "kind": "Usage-based",
     "maxMode": True, "requestsCosts": 10, "isTokenBasedCall": True,
     "tokenUsage": {"inputTokens": 5805, "outputTokens": 311, "cacheWriteTokens": 11964,
                    "cacheReadTokens": 0, "totalCents": Decimal("40.16699999999999")},
     "isFreeBugbot": False, "userEmail": "developer@company.com"},
]


class FakeCursor(FakeProvider):
    def __init__(self, key: str = "key_" + "a" * 64):
        super().__init__(key)
        self.members: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []  # as documented
        self.daily: list[dict[str, Any]] = []  # daily usage rows as documented
        # Called with the page number before an events page is answered (a live team
        # keeps working while a pull reads).
        self.before_events_page: Callable[[int], None] | None = None

    def authorized(self, request: web.Request) -> web.Response | None:
        expected = "Basic " + base64.b64encode(f"{self.key}:".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return json_response({"error": "Unauthorized", "message": "Invalid API key"},
                                 status=401)
        return None

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/teams/members", self.team_members),
                web.post("/teams/daily-usage-data", self.daily_usage),
                web.post("/teams/filtered-usage-events", self.usage_events)]

    def forever_body(self, request: web.Request, n: int) -> Any:
        return {"totalUsageEventsCount": 10**6, "usageEvents": [],
                "pagination": {"numPages": 10**5, "currentPage": n, "pageSize": 10,
                               "hasNextPage": True, "hasPreviousPage": n > 1}}

    async def team_members(self, request: web.Request) -> web.Response:
        return json_response({"teamMembers": self.members})

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any] | web.Response:
        try:
            body = await request.json()
        except ValueError:
            return bad_request("body must be JSON")
        return body if isinstance(body, dict) else bad_request("body must be an object")

    async def daily_usage(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        start, end = body.get("startDate"), body.get("endDate")
        if not isinstance(start, int) or not isinstance(end, int):
            return bad_request("startDate and endDate (epoch ms) are required")
        if end - start > 90 * 86_400_000:
            return bad_request("Date range cannot exceed 90 days")
        rows = [r for r in self.daily if start <= r["date"] <= end]
        return json_response({"data": rows, "period": {"startDate": start, "endDate": end}})

    async def usage_events(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        page, size = body.get("page", 1), body.get("pageSize", 10)
        if not isinstance(page, int) or page < 1 or not isinstance(size, int) or size < 1:
            return bad_request("page and pageSize must be positive integers")
        if self.before_events_page is not None:
            self.before_events_page(page)
        start, end = body.get("startDate"), body.get("endDate")
        rows = [e for e in self.events
                if (start is None or int(e["timestamp"]) >= start)
                and (end is None or int(e["timestamp"]) <= end)
                and (body.get("email") is None or e["userEmail"] == body["email"])]
        rows.sort(key=lambda e: -int(e["timestamp"]))  # newest first
        chunk = rows[(page - 1) * size : page * size]
        pages = max(-(-len(rows) // size), 1)
        return json_response({
            "totalUsageEventsCount": len(rows),
            "pagination": {"numPages": pages, "currentPage": page, "pageSize": size,
                           "hasNextPage": page < pages, "hasPreviousPage": page > 1},
            "usageEvents": chunk,
            "period": {"startDate": start, "endDate": end}})
