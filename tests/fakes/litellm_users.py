"""A loopback LiteLLM proxy's user management: ``/user/list`` and ``/user/update``.

Shapes from the proxy's source, BerriAI/litellm
litellm/proxy/management_endpoints/internal_user_endpoints.py:

- ``GET /user/list?page=&page_size=`` (page >= 1, 1 <= page_size <= 100; newest first)
  -> ``{"users": [LiteLLM_UserTable rows + key_count], "total", "page", "page_size",
  "total_pages"}``; rows carry ``user_id``, ``user_email``, ``max_budget`` (a float),
  ``spend``, ``budget_duration``, ``budget_reset_at``.
- ``POST /user/update`` ``{"user_id", "max_budget", "budget_duration", ...}``: only the
  fields sent change (``max_budget`` whenever it is sent); answers the updated row as
  ``{"user_id", "data": {...}}`` (prisma ``update_data``); a missing user is an error.
- Errors are ProxyException bodies ``{"error": {"message", "type", "param", "code"}}``;
  auth is ``Authorization: Bearer <master key>``.

Budgets are kept as the exact JSON number text the client sent (no float), so a test
sees exactly what tokencoach wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.fakes.providers import dumps


@dataclass
class FakeLiteLLMUsers:
    key: str = "sk-litellm-master"
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    updates: list[str] = field(default_factory=list)  # raw /user/update bodies
    fail_updates: int = 0  # answer the next N updates with 500
    fail_status: int = 500

    def add_user(self, user_id: str, email: str | None, max_budget: str | None = None,
                 spend: str = "0", budget_duration: str | None = None) -> None:
        self.users[user_id] = {
            "user_id": user_id, "user_email": email, "user_alias": None,
            "user_role": "internal_user", "teams": [], "models": [],
            "max_budget": Decimal(max_budget) if max_budget is not None else None,
            "spend": Decimal(spend), "budget_duration": budget_duration,
            "budget_reset_at": None, "metadata": {}, "key_count": 0}

    def budget(self, user_id: str) -> Decimal | None:
        value = self.users[user_id]["max_budget"]
        return None if value is None else Decimal(value)

    @staticmethod
    def error(status: int, message: str) -> web.Response:
        body = {"error": {"message": message, "type": "auth_error" if status == 401 else
                          "internal_server_error", "param": "None", "code": str(status)}}
        return web.json_response(body, status=status)

    def app(self) -> web.Application:
        @web.middleware
        async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.headers.get("Authorization") != f"Bearer {self.key}":
                return self.error(401, "Authentication Error, Invalid proxy server token "
                                       "passed.")
            return await handler(request)

        app = web.Application(middlewares=[auth])
        app.add_routes([web.get("/user/list", self.user_list),
                        web.post("/user/update", self.user_update)])
        return app

    async def user_list(self, request: web.Request) -> web.Response:
        try:
            page = int(request.query.get("page", "1"))
            size = int(request.query.get("page_size", "25"))
        except ValueError:
            return web.json_response({"detail": "page and page_size must be integers"},
                                     status=422)
        if page < 1 or not 1 <= size <= 100:
            return web.json_response({"detail": "page >= 1 and 1 <= page_size <= 100"},
                                     status=422)
        rows = list(self.users.values())
        total = len(rows)
        chunk = rows[(page - 1) * size: page * size]
        return web.Response(text=dumps({
            "users": chunk, "total": total, "page": page, "page_size": size,
            "total_pages": -(-total // size)}), content_type="application/json")

    async def user_update(self, request: web.Request) -> web.Response:
        raw = await request.text()
        if self.fail_updates:
            self.fail_updates -= 1
            return self.error(self.fail_status, "injected failure")
        self.updates.append(raw)
        body = json.loads(raw, parse_float=Decimal)
        user = self.users.get(str(body.get("user_id")))
        if user is None:
            return self.error(400, "Failed to update user")
        for name in ("max_budget", "budget_duration"):
            if name in body:
                user[name] = body[name]
        return web.Response(text=dumps({"user_id": user["user_id"], "data": user}),
                            content_type="application/json")
