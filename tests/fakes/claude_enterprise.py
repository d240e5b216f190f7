"""A loopback Claude Enterprise Admin API: the eight Spend Limits endpoints.

Built from the official documents (summarized with their examples in
docs/vendors/claude-enterprise-spend-limits.md):

- https://platform.claude.com/docs/en/manage-claude/spend-limits-api (guide: hierarchy,
  period, minor-unit amounts, lifecycle, pagination, bracket list parameters)
- https://support.claude.com/en/articles/15330651-claude-enterprise-admin-api-reference-guide
  (error body ``{"type": "error", "error": {"type", "message"}, "request_id"}``, error
  types per status, scopes ``read:spend_limits`` / ``write:spend_limits``, 60 requests
  per minute then 429)
- https://platform.claude.com/docs/en/api/admin/spend_limits (and .../increase_requests):
  the generated schemas (SpendLimit, SpendSummary with ``actor``, SpendLimitIncreaseRequest
  with ``spend_summary`` and, on approve, ``spend_limit``; deny idempotent on denied and
  400 on approved).

What the docs leave open is chosen conservatively and marked "assumed" below.
The fake resolves each member's effective limit the documented way (a per-user override,
else their group, else their seat tier, else the organization default; no amount
anywhere: unlimited), keeps money as exact decimal strings of cents, and pages with
opaque cursors bound to the filters that issued them. Tests inject faults (a status N
times, with Retry-After) and act as an admin in the console (``console_set``,
``console_decide``).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
               500: "api_error", 503: "api_error", 529: "overloaded_error"}
READ, WRITE = "read:spend_limits", "write:spend_limits"
PERIODS = ("monthly",)  # "Currently monthly is the only supported period"
_AMOUNT = re.compile(r"^\d+$")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Member:
    user_id: str
    email: str
    name: str
    seat_tier: str = "enterprise_standard"
    rbac_group: str | None = None
    deleted: bool = False

    def actor(self) -> dict[str, Any]:
        return {"type": "user_actor", "user_id": self.user_id, "name": self.name,
                "email_address": self.email, "deleted": self.deleted}


@dataclass
class Fault:
    method: str
    path: str  # a prefix
    status: int
    times: int | None = 1
    retry_after: str | None = None
    hits: int = 0


@dataclass
class FakeClaudeEnterprise:
    keys: dict[str, set[str]] = field(default_factory=lambda: {
        "sk-ant-admin-rw": {READ, WRITE}, "sk-ant-admin-ro": {READ}})
    members: list[Member] = field(default_factory=list)
    org_amount: str | None = None  # cents; None: no org default
    tier_amounts: dict[str, str | None] = field(default_factory=dict)
    group_amounts: dict[str, str | None] = field(default_factory=dict)
    spend: dict[str, str] = field(default_factory=dict)  # user_id -> cents text
    page_size_cap: int = 1000  # members per page at most (tests force paging)
    # (user_id, period) -> SpendLimit fields; the per-user overrides
    overrides: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    # --- what tests do -----------------------------------------------------------------

    def add_member(self, user_id: str, email: str, name: str, *, seat_tier: str =
                   "enterprise_standard", rbac_group: str | None = None,
                   spend: str = "0") -> Member:
        member = Member(user_id, email, name, seat_tier, rbac_group)
        self.members.append(member)
        self.spend[user_id] = spend
        return member

    def fail(self, method: str, path: str, status: int, *, times: int | None = 1,
             retry_after: str | None = None) -> Fault:
        fault = Fault(method, path, status, times, retry_after)
        self.faults.append(fault)
        return fault

    def writes(self) -> list[tuple[str, str, Any]]:
        return [(m, p, b) for m, p, _, b in self.calls if m in ("POST", "DELETE")]

    def console_set(self, user_id: str, amount: str | None, period: str = "monthly") -> None:
        """An admin edits the member's limit in claude.ai."""
        self._upsert(user_id, amount, period)

    def console_clear(self, user_id: str, period: str = "monthly") -> None:
        self.overrides.pop((user_id, period), None)

    def file_request(self, user_id: str, request_id: str | None = None) -> str:
        """The member clicks "Request more usage" (at most one pending at a time)."""
        rid = request_id or f"slir_{next(self._ids):06d}"
        self.requests[rid] = {"id": rid, "user_id": user_id, "created_at": _now(),
                              "status": "pending", "resolved_at": None, "resolved_by": None,
                              "period": "monthly"}
        return rid

    def console_decide(self, request_id: str, *, approve: bool, by: Member,
                       amount: str | None = None) -> None:
        req = self.requests[request_id]
        if approve:
            self._upsert(req["user_id"], amount, req["period"])
        req.update(status="approved" if approve else "denied", resolved_at=_now(),
                   resolved_by=by.actor())

    def effective_amount(self, user_id: str, period: str = "monthly") -> str | None:
        return self._resolve(self._member(user_id), period)[0]  # type: ignore[arg-type]

    # --- the documented behaviour ------------------------------------------------------

    def _member(self, user_id: str) -> Member | None:
        return next((m for m in self.members if m.user_id == user_id), None)

    def _upsert(self, user_id: str, amount: str | None, period: str) -> dict[str, Any]:
        now = _now()
        row = self.overrides.get((user_id, period))
        if row is None:
            row = {"id": f"spl_{next(self._ids):06d}", "created_at": now}
            self.overrides[(user_id, period)] = row
        row.update(amount=amount, updated_at=now, period=period, user_id=user_id)
        return row

    def _resolve(self, m: Member, period: str) -> tuple[str | None, dict[str, Any], str | None]:
        """(amount, source scope, spend_limit_id) by the documented hierarchy."""
        own = self.overrides.get((m.user_id, period))
        if own is not None:
            return own["amount"], {"type": "user", "user_id": m.user_id}, own["id"]
        if m.rbac_group and self.group_amounts.get(m.rbac_group) is not None:
            return (self.group_amounts[m.rbac_group],
                    {"type": "rbac_group", "rbac_group_id": m.rbac_group},
                    f"spl_group_{m.rbac_group}")
        if self.tier_amounts.get(m.seat_tier) is not None:
            return (self.tier_amounts[m.seat_tier],
                    {"type": "seat_tier", "seat_tier": m.seat_tier}, f"spl_tier_{m.seat_tier}")
        if self.org_amount is not None:
            return self.org_amount, {"type": "organization"}, "spl_org"
        return None, {"type": "organization"}, None

    def summary(self, m: Member, period: str = "monthly") -> dict[str, Any]:
        amount, source, limit_id = self._resolve(m, period)
        return {"scope": {"type": "user", "user_id": m.user_id}, "actor": m.actor(),
                "amount": amount, "currency": "USD", "period": period, "source": source,
                "spend_limit_id": limit_id, "period_to_date_spend": self.spend.get(
                    m.user_id, "0")}

    def _limit(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"type": "spend_limit", "id": row["id"], "created_at": row["created_at"],
                "updated_at": row["updated_at"], "scope": {"type": "user",
                                                           "user_id": row["user_id"]},
                "amount": row["amount"], "currency": "USD", "period": row["period"],
                "is_enabled": True}

    def _request(self, req: dict[str, Any]) -> dict[str, Any]:
        m = self._member(req["user_id"])
        assert m is not None
        pending = req["status"] == "pending"
        return {"type": "spend_limit_increase_request", "id": req["id"],
                "created_at": req["created_at"], "status": req["status"],
                "period": req["period"], "resolved_at": req["resolved_at"],
                "resolved_by": req["resolved_by"], "actor": m.actor(),
                "spend_summary": self.summary(m, req["period"]) if pending else None}

    # --- HTTP ----------------------------------------------------------------------------

    @staticmethod
    def error(status: int, message: str, headers: dict[str, str] | None = None
              ) -> web.Response:
        rid = "req_" + hashlib.sha1(message.encode()).hexdigest()[:20]
        body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                           "message": message}, "request_id": rid}
        return web.json_response(body, status=status,
                                 headers={"request-id": rid, **(headers or {})})

    def app(self) -> web.Application:
        @web.middleware
        async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
            query: dict[str, list[str]] = {}
            for k, v in request.query.items():
                query.setdefault(k, []).append(v)
            body = await request.json() if request.can_read_body else None
            self.calls.append((request.method, request.path, query, body))
            scopes = self.keys.get(request.headers.get("x-api-key", ""))
            if scopes is None:
                return self.error(401, "invalid x-api-key")
            need = READ if request.method == "GET" else WRITE
            if need not in scopes:
                return self.error(403, f"This API key does not have the {need} scope")
            for fault in self.faults:
                if (fault.method == request.method and request.path.startswith(fault.path)
                        and (fault.times is None or fault.hits < fault.times)):
                    fault.hits += 1
                    extra = {"retry-after": fault.retry_after} if fault.retry_after else {}
                    return self.error(fault.status, f"injected {fault.status}", extra)
            return await handler(request)

        app = web.Application(middlewares=[middleware])
        base = "/v1/organizations"
        app.add_routes([
            web.get(f"{base}/spend_limits/effective", self.effective),
            web.get(f"{base}/spend_limits/{{id}}", self.get_limit),
            web.post(f"{base}/spend_limits", self.set_limit),
            web.delete(f"{base}/spend_limits/{{id}}", self.delete_limit),
            web.get(f"{base}/spend_limit_increase_requests", self.list_requests),
            web.get(f"{base}/spend_limit_increase_requests/{{id}}", self.get_request),
            web.post(f"{base}/spend_limit_increase_requests/{{id}}/approve", self.approve),
            web.post(f"{base}/spend_limit_increase_requests/{{id}}/deny", self.deny),
        ])
        return app

    def _page(self, request: web.Request, items: list[Any], filters: list[str]
              ) -> web.Response | tuple[list[Any], str | None]:
        text = request.query.get("limit", "20")
        if not text.isdigit() or not 1 <= int(text) <= 1000:
            return self.error(400, "limit: must be between 1 and 1000")
        size = min(int(text), self.page_size_cap)
        bound = hashlib.sha1(json.dumps(
            [(k, request.query.getall(k, [])) for k in filters]).encode()).hexdigest()[:8]
        offset = 0
        if "page" in request.query:
            try:
                raw = json.loads(base64.urlsafe_b64decode(request.query["page"][5:]))
            except (ValueError, TypeError):
                return self.error(400, "invalid page cursor")
            if raw.get("f") != bound:
                return self.error(400, "cursor does not match current query parameters")
            offset = raw["o"]
        end = offset + size
        cursor = None
        if end < len(items):
            cursor = "page_" + base64.urlsafe_b64encode(
                json.dumps({"o": end, "f": bound}).encode()).decode()
        return items[offset:end], cursor

    async def effective(self, request: web.Request) -> web.Response:
        periods = request.query.getall("period[]", []) or list(PERIODS)
        user_ids = request.query.getall("user_ids[]", [])
        if len(user_ids) > 100:
            return self.error(400, "user_ids: at most 100 entries")
        members = [m for m in self.members if not user_ids or m.user_id in user_ids]
        paged = self._page(request, members, ["period[]", "user_ids[]"])
        if isinstance(paged, web.Response):
            return paged
        page, cursor = paged  # by member: a member's period rows never split across pages
        data = [self.summary(m, p) for m in page for p in periods if p in PERIODS]
        return web.json_response({"data": data, "next_page": cursor})

    async def get_limit(self, request: web.Request) -> web.Response:
        row = next((r for r in self.overrides.values() if r["id"] == request.match_info["id"]),
                   None)
        if row is None:
            return self.error(404, "spend limit not found")
        return web.json_response(self._limit(row))

    async def set_limit(self, request: web.Request) -> web.Response:
        body = await request.json()
        scope = body.get("scope") or {}
        if scope.get("type") != "user":
            return self.error(400, "scope.type: only 'user' limits can be set through "
                                   "the API")
        if self._member(str(scope.get("user_id"))) is None:
            return self.error(404, "user not found")  # assumed: 404 for a non-member
        amount = body.get("amount")
        if amount is not None and (not isinstance(amount, str) or not _AMOUNT.match(amount)):
            return self.error(400, "amount: must be a non-negative integer decimal string")
        period = body.get("period") or "monthly"
        if period not in PERIODS:
            return self.error(400, f"period: unsupported value {period!r}")
        return web.json_response(self._limit(self._upsert(scope["user_id"], amount, period)))

    async def delete_limit(self, request: web.Request) -> web.Response:
        limit_id = request.match_info["id"]
        for key, row in list(self.overrides.items()):
            if row["id"] == limit_id:
                del self.overrides[key]
                return web.json_response({"type": "spend_limit_deleted", "id": limit_id})
        if limit_id.startswith(("spl_tier_", "spl_group_", "spl_org")):
            return self.error(400, "only per-user spend limits can be deleted")
        return self.error(404, "spend limit not found")

    async def list_requests(self, request: web.Request) -> web.Response:
        statuses = request.query.getall("status[]", [])
        actors = request.query.getall("actor_ids[]", [])
        rows = sorted((r for r in self.requests.values()
                       if (not statuses or r["status"] in statuses)
                       and (not actors or r["user_id"] in actors)
                       and self._member(r["user_id"]) is not None),
                      key=lambda r: (r["created_at"], r["id"]), reverse=True)
        paged = self._page(request, rows, ["status[]", "actor_ids[]"])
        if isinstance(paged, web.Response):
            return paged
        page, cursor = paged
        return web.json_response({"data": [self._request(r) for r in page],
                                  "next_page": cursor})

    def _find(self, request: web.Request) -> dict[str, Any] | None:
        req = self.requests.get(request.match_info["id"])
        return req if req is not None and self._member(req["user_id"]) is not None else None

    async def get_request(self, request: web.Request) -> web.Response:
        req = self._find(request)
        if req is None:
            return self.error(404, "spend limit increase request not found")
        return web.json_response(self._request(req))

    async def approve(self, request: web.Request) -> web.Response:
        req = self._find(request)
        if req is None:
            return self.error(404, "spend limit increase request not found")
        body = await request.json()
        amount = body.get("amount")
        if not isinstance(amount, str) or not _AMOUNT.match(amount):
            return self.error(400, "amount: must be a non-negative integer decimal string")
        if req["status"] != "pending":  # assumed: 400 like deny on a decided request
            return self.error(400, f"request is already {req['status']}")
        period = body.get("period") or req["period"]
        limit = self._upsert(req["user_id"], amount, period)
        req.update(status="approved", resolved_at=_now(), resolved_by={
            "type": "scoped_api_key_actor", "scoped_api_key_id": "apikey_01tokencoach"})
        return web.json_response({**self._request(req), "spend_limit": self._limit(limit)})

    async def deny(self, request: web.Request) -> web.Response:
        req = self._find(request)
        if req is None:
            return self.error(404, "spend limit increase request not found")
        if req["status"] == "approved":
            return self.error(400, "request is already approved")
        if req["status"] == "pending":
            req.update(status="denied", resolved_at=_now(), resolved_by={
                "type": "scoped_api_key_actor", "scoped_api_key_id": "apikey_01tokencoach"})
        return web.json_response(self._request(req))


def cents(text: str) -> int:
    """Cents text -> micro-dollars (for test expectations)."""
    return int(Decimal(text) * 10_000)
