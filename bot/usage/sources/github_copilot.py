"""GitHub Copilot: per-user usage and spend from GitHub's billing REST API.

Spec: github/rest-api-description (``descriptions/api.github.com/api.github.com.json``, as
published in @octokit/openapi): operations ``billing/get-github-billing-ai-credit-usage-
report-org`` and ``billing/get-github-billing-premium-request-usage-report-org``,
``copilot/list-copilot-seats``. Pages:
https://docs.github.com/rest/billing/usage#get-billing-ai-credit-usage-report-for-an-organization
https://docs.github.com/rest/copilot/copilot-user-management#list-all-copilot-seat-assignments-for-an-organization

- ``GET /organizations/{org}/settings/billing/ai_credit/usage`` (or ``premium_request``,
  ``sources.github_copilot.usage_report``) with ``year``, ``month``, ``day`` and ``user``:
  one UTC day of one user's usage items (product, sku, model, unitType, pricePerUnit,
  gross/discount/net quantity and amount). The report has no per-user split unless asked
  for one user, so each seat holder is asked for; the org's own total for the day is read
  too and whatever no seat holder accounts for (a seat removed since) is stored
  unattributed, so the day adds up to what GitHub bills.
- ``GET /orgs/{org}/copilot/billing/seats`` (``page``, ``per_page``): who holds a seat. A
  seat's ``assignee.email``, when GitHub shows one, becomes a discovered identity; else a
  login maps to a person through ``sources.github_copilot.mappings.users``.

Money: ``netAmount`` (billed after included allowances; ``cost: gross`` for
``grossAmount``) in dollars, read as Decimal. Category: a coding-agent SKU or model is the
agent product ``copilot_coding_agent`` (agentic); everything else is ``copilot``, which
``categories.heuristics.product_categories`` makes coding (the report does not tell chat
from completions).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote

from bot.config.models import GitHubCopilotSource
from bot.money import to_micros
from bot.usage.record import RawUsage, record_key
from bot.usage.sources.base import Discovered, WindowData
from bot.usage.sources.http import (
    ApiConnector,
    Page,
    PayloadError,
    amount,
    arr,
    count,
    obj,
    occurred,
    text,
)

SOURCE = "github_copilot"
DAY = timedelta(days=1)
SEATS_PAGE = 100  # per_page maximum
AMOUNTS = {"net": "netAmount", "gross": "grossAmount"}
QUANTITIES = {"net": "netQuantity", "gross": "grossQuantity"}


class CopilotConnector(ApiConnector):
    name = SOURCE
    bucket = DAY
    # A window is read user by user from today's seat list: a seat removed since would be
    # missing from a re-pull, so stored rows are only ever replaced, never removed.
    replaces_window = False

    def __init__(self, cfg: GitHubCopilotSource, key: str):
        super().__init__(cfg, key)
        self.cfg: GitHubCopilotSource = cfg
        org = quote(cfg.org, safe="")
        self.report = f"/organizations/{org}/settings/billing/{cfg.usage_report}/usage"
        self.seats_path = f"/orgs/{org}/copilot/billing/seats"
        self._seats: list[tuple[str, str | None]] | None = None

    def auth_headers(self, key: str) -> dict[str, str]:
        assert isinstance(self.cfg, GitHubCopilotSource)
        return {"Authorization": f"Bearer {key}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": self.cfg.api_version}

    async def probe(self, now: datetime) -> str:
        day = (now.astimezone(UTC) - DAY).date()
        await self.client.get(self.report, _day_params(day), lambda p: _items(p, "response"))
        return (f"{self.cfg.usage_report} usage report for {self.cfg.org} answered; token in "
                f"{self.cfg.key_env} accepted")

    async def seats(self) -> list[tuple[str, str | None]]:
        """(login, email or None) of every seat holder, read once per pull."""
        if self._seats is None:
            seats: dict[str, str | None] = {}
            params: list[tuple[str, str | int]] = [("per_page", SEATS_PAGE)]
            async for page in self.client.pages(self.seats_path, params, _seats_page,
                                                first_page=1):
                seats.update(page)  # (login, email) pairs
            self._seats = sorted(seats.items())
        return self._seats

    async def discover(self) -> list[Discovered]:
        return [Discovered(f"{SOURCE}:users", login, email)
                for login, email in await self.seats() if email]

    async def fetch_window(self, start: datetime, end: datetime) -> WindowData:
        day = start.date()  # windows are whole UTC days (bucket = 1 day)
        at = occurred(datetime.combine(day, datetime.min.time(), UTC), "1d")
        data = WindowData()
        attributed: dict[tuple[str, ...], Decimal] = {}
        for login, _ in await self.seats():
            items = await self.client.get(self.report, [*_day_params(day), ("user", login)],
                                          lambda p: _items(p, "response"))
            for item in items:
                line = _line(item)
                money = item[AMOUNTS[self.cfg.cost]]
                attributed[line] = attributed.get(line, Decimal(0)) + money
                data.add(self._record(day, at, login, line, money, item))
        org_items = await self.client.get(self.report, _day_params(day),
                                          lambda p: _items(p, "response"))
        for item in org_items:
            line = _line(item)
            rest = item[AMOUNTS[self.cfg.cost]] - attributed.get(line, Decimal(0))
            # Always written, zero included, so a remainder that went away is replaced.
            data.add(self._record(day, at, None, line, max(rest, Decimal(0)), item,
                                  quantity=False))
        if data.records:
            data.saw(SOURCE, datetime.combine(day, datetime.min.time(), UTC) + DAY)
        return data

    def _record(self, day: date, at: datetime, login: str | None, line: tuple[str, ...],
                money: Decimal, item: dict[str, Any], *, quantity: bool = True) -> RawUsage:
        product, sku, model, unit = line
        agent = "coding agent" in f"{sku} {model} {product}".lower()
        requests = 0
        if quantity and unit.lower() == "requests":
            requests = int(item[QUANTITIES[self.cfg.cost]].to_integral_value(ROUND_HALF_UP))
        return RawUsage(
            key=record_key(SOURCE, day.isoformat(), login or "(unattributed)", *line),
            source=SOURCE,
            occurred_at=at,
            provider="github",
            model=model[:128] or "unknown",
            requests=requests,
            cost_micros=to_micros(money),
            user=login,
            user_kind=f"{SOURCE}:users",  # login -> person: mappings.users or discovered
            product="copilot_coding_agent" if agent else "copilot",
        )


def _day_params(day: date) -> list[tuple[str, str | int]]:
    return [("year", day.year), ("month", day.month), ("day", day.day)]


def _line(item: dict[str, Any]) -> tuple[str, ...]:
    return (item["product"], item["sku"], item["model"], item["unitType"])


# Response: {"timePeriod": {"year": 2025, "month"?, "day"?}, "organization": "GitHub",
#  "user"?, "usageItems": [{"product": "Copilot", "sku": "Copilot AI Credits", "model":
#  "GPT-5", "unitType": "credits", "pricePerUnit": 0.01, "grossQuantity": 100,
#  "grossAmount": 1, "discountQuantity": 0, "discountAmount": 0, "netQuantity": 100,
#  "netAmount": 1}]} — every usageItems field required; amounts are JSON numbers (dollars).
NUMBERS = ("pricePerUnit", "grossQuantity", "grossAmount", "discountQuantity",
           "discountAmount", "netQuantity", "netAmount")


def _items(payload: Any, where: str) -> list[dict[str, Any]]:
    body = obj(payload, where)
    obj(body.get("timePeriod"), f"{where}.timePeriod")
    out = []
    for i, entry in enumerate(arr(body.get("usageItems"), f"{where}.usageItems")):
        at = f"{where}.usageItems[{i}]"
        item = obj(entry, at)
        parsed: dict[str, Any] = {
            name: text(item, name, at, required=True) or ""
            for name in ("product", "sku", "unitType")}
        parsed["model"] = text(item, "model", at) or ""
        for name in NUMBERS:
            if item.get(name) is None:
                raise PayloadError(f"{at}.{name}: missing")
            parsed[name] = amount(item[name], f"{at}.{name}")
        out.append(parsed)
    return out


def _seats_page(payload: Any) -> Page[tuple[str, str | None]]:
    """{"total_seats": 2, "seats": [{"assignee": {"login", "email"?, ...}, ...}]}."""
    body = obj(payload, "response")
    total = count(body, "total_seats", "response", required=True)
    seats = arr(body.get("seats"), "response.seats")
    page: list[tuple[str, str | None]] = []
    for i, seat in enumerate(seats):
        where = f"response.seats[{i}]"
        assignee = obj(obj(seat, where).get("assignee"), f"{where}.assignee")
        if assignee.get("type") not in (None, "User"):
            continue  # a team or organization assignee carries no person
        login = text(assignee, "login", f"{where}.assignee", required=True) or ""
        email = text(assignee, "email", f"{where}.assignee")
        page.append((login, email if email and "@" in email else None))
    # Numbered pages: more while this page was full.
    return Page(page, more=len(seats) == SEATS_PAGE and total > SEATS_PAGE)
