"""Claude Enterprise Spend Limits API (Admin API): the calls tokencoach makes, parsed.

Shapes, headers and semantics from the official docs, summarized with examples in
docs/vendors/claude-enterprise-spend-limits.md:
https://platform.claude.com/docs/en/manage-claude/spend-limits-api and
https://support.claude.com/en/articles/15330651-claude-enterprise-admin-api-reference-guide

Amounts are decimal strings in minor units of the org's billing currency (cents for
USD); ``null`` amount on an effective row means unlimited. Spend may carry fractional
cents (up to three places). Scope types and periods are open sets: unknown values are
kept as text, never an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from bot.enforcement.http import VendorError, VendorHTTP
from bot.runtime import Runtime

VENDOR = "claude_enterprise"
API_VERSION = "2023-06-01"
MONTHLY = "monthly"  # the only period the API has today
MICROS_PER_CENT = 10_000

# Where the identifier of each documented scope type lives.
_SCOPE_ID = {
    "user": "user_id",
    "seat_tier": "seat_tier",
    "rbac_group": "rbac_group_id",
    "organization_service": "service",
    "workspace": "workspace_id",
}


class PayloadError(VendorError):
    """A response did not have the documented shape."""


def minor_to_micros(value: Any, where: str) -> int:
    """ "31402.5" (cents, up to three decimals) -> 314025000 micro-dollars, exactly."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise PayloadError(f"{VENDOR}: {where}: expected a decimal string, got {value!r}")
    try:
        cents = Decimal(str(value).strip())
    except InvalidOperation:
        raise PayloadError(f"{VENDOR}: {where}: {value!r} is not a number") from None
    if not cents.is_finite() or cents < 0:
        raise PayloadError(f"{VENDOR}: {where}: {value!r} is not a non-negative amount")
    return int((cents * MICROS_PER_CENT).to_integral_value(rounding=ROUND_HALF_EVEN))


def micros_to_minor(micros: int) -> str:
    """Micro-dollars -> an integer decimal string of cents (half-even at the cent)."""
    cents = (Decimal(micros) / MICROS_PER_CENT).to_integral_value(rounding=ROUND_HALF_EVEN)
    return str(int(cents))


def to_whole_cents(micros: int) -> int:
    """The amount the API can hold: whole cents, as micro-dollars."""
    return int(micros_to_minor(micros)) * MICROS_PER_CENT


@dataclass(frozen=True)
class Actor:
    kind: str  # user_actor | scoped_api_key_actor | ...
    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    key_id: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "scoped_api_key_actor":
            return f"API key {self.key_id}" if self.key_id else "an API key"
        return self.email or self.name or self.user_id or "someone"


@dataclass(frozen=True)
class SpendSummary:
    """One member's effective limit for one period (a row of /spend_limits/effective)."""

    user_id: str
    actor: Actor
    amount_micros: int | None  # None: unlimited
    currency: str
    period: str
    spent_micros: int
    source_type: str | None
    source_detail: str | None
    spend_limit_id: str | None

    @property
    def is_override(self) -> bool:
        return self.source_type == "user"


@dataclass(frozen=True)
class SpendLimit:
    id: str
    amount_micros: int | None
    period: str
    user_id: str | None
    currency: str


@dataclass(frozen=True)
class IncreaseRequest:
    id: str
    actor: Actor
    period: str | None
    status: str  # pending | approved | denied
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: Actor | None
    summary: SpendSummary | None
    spend_limit: SpendLimit | None = None


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{VENDOR}: {where}: expected an object, got {type(value).__name__}")
    return value


def _text(d: dict[str, Any], name: str, where: str, *, required: bool = False) -> str | None:
    value = d.get(name)
    if value is None:
        if required:
            raise PayloadError(f"{VENDOR}: {where}.{name}: missing")
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{VENDOR}: {where}.{name}: expected a string, got {value!r}")
    return value


def _time(d: dict[str, Any], name: str, where: str) -> datetime | None:
    value = _text(d, name, where)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise PayloadError(f"{VENDOR}: {where}.{name}: {value!r} is not RFC 3339") from None


def _amount(d: dict[str, Any], name: str, where: str) -> int | None:
    value = d.get(name)
    return None if value is None else minor_to_micros(value, f"{where}.{name}")


def parse_scope(value: Any, where: str) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    scope = _obj(value, where)
    kind = _text(scope, "type", where, required=True)
    ident_field = _SCOPE_ID.get(kind or "")
    detail = scope.get(ident_field) if ident_field else None
    return kind, str(detail) if detail is not None else None


def parse_actor(value: Any, where: str) -> Actor:
    a = _obj(value, where)
    return Actor(
        kind=_text(a, "type", where) or "unknown",
        user_id=_text(a, "user_id", where),
        email=(_text(a, "email_address", where) or "").lower() or None,
        name=_text(a, "name", where),
        key_id=_text(a, "scoped_api_key_id", where),
    )


def parse_summary(value: Any, where: str) -> SpendSummary:
    row = _obj(value, where)
    actor = parse_actor(row.get("actor") or {"type": "user_actor"}, f"{where}.actor")
    scope_type, scope_id = parse_scope(row.get("scope"), f"{where}.scope")
    user_id = actor.user_id or (scope_id if scope_type == "user" else None)
    if not user_id:
        raise PayloadError(f"{VENDOR}: {where}: no member user_id (actor or scope)")
    source_type, source_detail = parse_scope(row.get("source"), f"{where}.source")
    return SpendSummary(
        user_id=user_id,
        actor=actor,
        amount_micros=_amount(row, "amount", where),
        currency=_text(row, "currency", where) or "USD",
        period=_text(row, "period", where) or MONTHLY,
        spent_micros=_amount(row, "period_to_date_spend", where) or 0,
        source_type=source_type,
        source_detail=source_detail,
        spend_limit_id=_text(row, "spend_limit_id", where),
    )


def parse_limit(value: Any, where: str) -> SpendLimit:
    row = _obj(value, where)
    scope_type, scope_id = parse_scope(row.get("scope"), f"{where}.scope")
    return SpendLimit(
        id=_text(row, "id", where, required=True) or "",
        amount_micros=_amount(row, "amount", where),
        period=_text(row, "period", where) or MONTHLY,
        user_id=scope_id if scope_type == "user" else None,
        currency=_text(row, "currency", where) or "USD",
    )


def parse_request(value: Any, where: str) -> IncreaseRequest:
    row = _obj(value, where)
    created = _time(row, "created_at", where)
    if created is None:
        raise PayloadError(f"{VENDOR}: {where}.created_at: missing")
    summary = row.get("spend_summary")
    resolved_by = row.get("resolved_by")
    limit = row.get("spend_limit")
    return IncreaseRequest(
        id=_text(row, "id", where, required=True) or "",
        actor=parse_actor(row.get("actor"), f"{where}.actor"),
        period=_text(row, "period", where),
        status=_text(row, "status", where, required=True) or "",
        created_at=created,
        resolved_at=_time(row, "resolved_at", where),
        resolved_by=parse_actor(resolved_by, f"{where}.resolved_by") if resolved_by else None,
        summary=parse_summary(summary, f"{where}.spend_summary") if summary else None,
        spend_limit=parse_limit(limit, f"{where}.spend_limit") if limit else None,
    )


def _brackets(name: str, values: Sequence[str] | None) -> list[tuple[str, str | int]]:
    """List parameters in the documented bracket notation: ``user_ids[]=a&user_ids[]=b``."""
    return [(f"{name}[]", v) for v in values or ()]


class ClaudeSpendLimits:
    """The eight documented endpoints, on a ``VendorHTTP``."""

    def __init__(self, http: VendorHTTP):
        self.http = http

    async def effective(
        self, *, user_ids: Sequence[str] | None = None, periods: Sequence[str] | None = None,
        page_size: int = 1000,
    ) -> AsyncIterator[list[SpendSummary]]:
        params = [("limit", page_size), *_brackets("user_ids", user_ids),
                  *_brackets("period", periods)]
        n = 0
        async for page in self.http.cursor_pages("/v1/organizations/spend_limits/effective",
                                                 params):
            yield [parse_summary(row, f"effective.data[{n + i}]") for i, row in enumerate(page)]
            n += len(page)

    async def member(self, user_id: str, period: str = MONTHLY) -> SpendSummary | None:
        async for page in self.effective(user_ids=[user_id], periods=[period], page_size=1):
            for row in page:
                if row.user_id == user_id and row.period == period:
                    return row
        return None

    async def get_limit(self, spend_limit_id: str) -> SpendLimit:
        body = await self.http.call("GET", f"/v1/organizations/spend_limits/{spend_limit_id}")
        return parse_limit(body, "spend_limit")

    def set_body(self, user_id: str, amount_micros: int | None, period: str) -> dict[str, Any]:
        amount = None if amount_micros is None else micros_to_minor(amount_micros)
        return {"scope": {"type": "user", "user_id": user_id}, "amount": amount,
                "period": period}

    async def set_limit(self, user_id: str, amount_micros: int | None,
                        period: str = MONTHLY) -> SpendLimit:
        body = await self.http.call("POST", "/v1/organizations/spend_limits",
                                    body=self.set_body(user_id, amount_micros, period))
        return parse_limit(body, "spend_limit")

    async def delete_limit(self, spend_limit_id: str) -> None:
        await self.http.call("DELETE", f"/v1/organizations/spend_limits/{spend_limit_id}")

    async def increase_requests(
        self, *, statuses: Sequence[str] | None = ("pending",), page_size: int = 100,
    ) -> AsyncIterator[list[IncreaseRequest]]:
        params = [("limit", page_size), *_brackets("status", statuses)]
        async for page in self.http.cursor_pages(
                "/v1/organizations/spend_limit_increase_requests", params):
            yield [parse_request(row, f"increase_requests.data[{i}]")
                   for i, row in enumerate(page)]

    async def get_request(self, request_id: str) -> IncreaseRequest:
        body = await self.http.call(
            "GET", f"/v1/organizations/spend_limit_increase_requests/{request_id}")
        return parse_request(body, "increase_request")

    async def approve(self, request_id: str, amount_micros: int, period: str | None,
                      *, suppress_notification: bool = False) -> IncreaseRequest:
        body: dict[str, Any] = {"amount": micros_to_minor(amount_micros),
                                "suppress_notification": suppress_notification}
        if period:
            body["period"] = period
        answer = await self.http.call(
            "POST", f"/v1/organizations/spend_limit_increase_requests/{request_id}/approve",
            body=body)
        return parse_request(answer, "increase_request")

    async def deny(self, request_id: str, *, suppress_notification: bool = False
                   ) -> IncreaseRequest:
        answer = await self.http.call(
            "POST", f"/v1/organizations/spend_limit_increase_requests/{request_id}/deny",
            body={"suppress_notification": suppress_notification})
        return parse_request(answer, "increase_request")


def client(rt: Runtime, *, attempts: int = 1) -> VendorHTTP:
    """An HTTP client for the configured org (raises a permanent VendorError without a key)."""
    cfg = rt.config.enforcement.claude_enterprise
    key = rt.env.secret(cfg.key_env)
    if not key:
        raise VendorError(f"{VENDOR}: {cfg.key_env} is not set (an Admin API key with the "
                          "read:spend_limits and write:spend_limits scopes)")
    return VendorHTTP(
        vendor=VENDOR, base_url=cfg.base_url, secret=key, key_env=cfg.key_env,
        headers={"x-api-key": key, "anthropic-version": API_VERSION}, attempts=attempts,
    )
