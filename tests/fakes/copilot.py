"""Loopback fake of GitHub's billing usage report and Copilot seat API.

Built from github/rest-api-description as published in @octokit/openapi 23.0.2
(generated/api.github.com.json): operations
``billing/get-github-billing-ai-credit-usage-report-org``
(GET /organizations/{org}/settings/billing/ai_credit/usage),
``billing/get-github-billing-premium-request-usage-report-org``
(GET /organizations/{org}/settings/billing/premium_request/usage) — query ``year``,
``month``, ``day``, ``user``, ``model``, ``product``; response ``{timePeriod, organization,
user?, usageItems: [{product, sku, model, unitType, pricePerUnit, grossQuantity,
grossAmount, discountQuantity, discountAmount, netQuantity, netAmount}]}`` — and
``copilot/list-copilot-seats`` (GET /orgs/{org}/copilot/billing/seats, ``page``,
``per_page`` default 50 max 100; ``{total_seats, seats: [{assignee: simple-user, ...}]}``).
Docs: https://docs.github.com/rest/billing/usage and
https://docs.github.com/rest/copilot/copilot-user-management

Usage is held per (day, login, product, sku, model, unitType) with quantities and amounts
as Decimal (JSON numbers written exactly). The org-wide report (no ``user``) sums every
login's items, including logins that hold no seat any more.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.fakes.providers import FakeProvider, _int_param, bad_request, json_response

# The spec's own example item (AI credits), served by tests verbatim.
AI_CREDIT_EXAMPLE = {"product": "Copilot", "sku": "Copilot AI Credits", "model": "GPT-5",
                     "unitType": "credits", "pricePerUnit": Decimal("0.01"),
                     "grossQuantity": 100, "grossAmount": 1, "discountQuantity": 0,
                     "discountAmount": 0, "netQuantity": 100, "netAmount": 1}
AMOUNTS = ("grossQuantity", "grossAmount", "discountQuantity", "discountAmount",
           "netQuantity", "netAmount")


def usage_item(product: str, sku: str, model: str, unit: str, price: str, gross: str,
               discount: str = "0") -> dict[str, Any]:
    """An item whose amounts follow the documented rule: amount = quantity x price."""
    p, g, d = Decimal(price), Decimal(gross), Decimal(discount)
    return {"product": product, "sku": sku, "model": model, "unitType": unit,
            "pricePerUnit": p, "grossQuantity": g, "grossAmount": g * p,
            "discountQuantity": d, "discountAmount": d * p, "netQuantity": g - d,
            "netAmount": (g - d) * p}


class FakeGitHub(FakeProvider):
    def __init__(self, key: str = "ghp_test_token", org: str = "acme"):
        super().__init__(key)
        self.org = org
        # login -> email shown on the seat (None: GitHub shows none)
        self.seats: dict[str, str | None] = {}
        # (day, login) -> usage items
        self.usage: dict[tuple[date, str], list[dict[str, Any]]] = defaultdict(list)

    def authorized(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return json_response({"message": "Bad credentials",
                                  "documentation_url": "https://docs.github.com/rest",
                                  "status": "401"}, status=401)
        if request.headers.get("X-GitHub-Api-Version") not in ("2022-11-28", "2026-03-10"):
            return bad_request("unsupported X-GitHub-Api-Version")
        return None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/organizations/{org}/settings/billing/{report}/usage", self.report),
            web.get("/orgs/{org}/copilot/billing/seats", self.list_seats),
        ]

    def forever_body(self, request: web.Request, n: int) -> Any:
        return {"total_seats": 10**6, "seats": [self._seat(f"user{n}-{i}", None)
                                                 for i in range(100)]}

    def _org(self, request: web.Request) -> web.Response | None:
        if request.match_info["org"].lower() != self.org:
            return json_response({"message": "Not Found"}, status=404)
        return None

    async def report(self, request: web.Request) -> web.Response:
        denied = self._org(request)
        if denied is not None:
            return denied
        if request.match_info["report"] not in ("ai_credit", "premium_request"):
            return json_response({"message": "Not Found"}, status=404)
        year, month, day = (_int_param(request, n) for n in ("year", "month", "day"))
        if year is None or month is None or day is None:
            return bad_request("this fake answers single days: year, month and day")
        when = date(year, month, day)
        login = request.query.get("user")
        items: list[dict[str, Any]] = []
        for (d, who), rows in self.usage.items():
            if d == when and (login is None or who.lower() == login.lower()):
                items.extend(rows)
        merged: dict[tuple[str, ...], dict[str, Any]] = {}
        for item in items:  # the org report adds every user's items of one line up
            line = (item["product"], item["sku"], item["model"], item["unitType"])
            if line in merged:
                for name in AMOUNTS:
                    merged[line][name] += item[name]
            else:
                merged[line] = dict(item)
        body: dict[str, Any] = {"timePeriod": {"year": year, "month": month, "day": day},
                                "organization": self.org, "usageItems": list(merged.values())}
        if login is not None:
            body["user"] = login
        return json_response(body)

    @staticmethod
    def _seat(login: str, email: str | None) -> dict[str, Any]:
        assignee = {"login": login, "id": abs(hash(login)) % 10**6, "node_id": "MDQ6VXNlcjE=",
                    "avatar_url": f"https://github.com/images/{login}.gif",
                    "gravatar_id": "", "url": f"https://api.github.com/users/{login}",
                    "html_url": f"https://github.com/{login}", "type": "User",
                    "site_admin": False}
        if email is not None:
            assignee["email"] = email
        return {"created_at": "2021-08-03T18:00:00-06:00",
                "updated_at": "2021-09-23T15:00:00-06:00", "pending_cancellation_date": None,
                "last_activity_at": "2021-10-14T00:53:32-06:00",
                "last_activity_editor": "vscode/1.77.3/copilot/1.86.82",
                "last_authenticated_at": "2021-10-14T00:53:32-06:00", "plan_type": "business",
                "assignee": assignee}

    async def list_seats(self, request: web.Request) -> web.Response:
        denied = self._org(request)
        if denied is not None:
            return denied
        page = _int_param(request, "page") or 1
        per_page = _int_param(request, "per_page") or 50
        if page < 1 or not 1 <= per_page <= 100:
            return bad_request("per_page must be between 1 and 100")
        seats = sorted(self.seats.items())
        chunk = seats[(page - 1) * per_page : page * per_page]
        return json_response({"total_seats": len(seats),
                              "seats": [self._seat(login, email) for login, email in chunk]})
