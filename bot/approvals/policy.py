"""Checking a request against the sandbox policy, and routing it to approvers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config.models import SandboxConfig
from bot.directory import PersonView, person_by_email, person_by_id
from bot.money import fmt_usd, to_micros
from bot.store.tables import Person, SandboxGrant, SandboxRequest

MAX_PURPOSE = 500
MAX_OUTCOME = 500


class RequestInvalid(ValueError):
    """What to change, in words for the requester; ``field`` names the form field."""

    def __init__(self, message: str, field: str = "amount"):
        super().__init__(message)
        self.field = field


def parse_amount(text: str, cfg: SandboxConfig) -> int:
    raw = (text or "").strip().replace(",", "").lstrip("$").removesuffix("USD").strip()
    if not raw:
        raise RequestInvalid("Give an amount in dollars, like `300`.")
    if not re.fullmatch(r"\d+(\.\d{1,2})?", raw):
        if re.fullmatch(r"\d+\.\d{3,}", raw):
            raise RequestInvalid(
                f"`{raw[:20]}` has more than 2 decimals; use dollars and "
                "cents, like `300` or `249.50`."
            )
        raise RequestInvalid(f"`{raw[:20]}` isn't an amount; use dollars, like `300` or `249.50`.")
    try:
        amount = Decimal(raw)
    except InvalidOperation:
        raise RequestInvalid("Give an amount in dollars, like `300`.") from None
    if amount <= 0:
        raise RequestInvalid("The amount must be more than $0.")
    limit = cfg.per_request_max_usd
    if amount > limit:
        raise RequestInvalid(
            f"One request can be at most {fmt_usd(to_micros(limit))}; ask for "
            "that much or less (you can ask again after it ends)."
        )
    return to_micros(amount)


def check_purpose(text: str, cfg: SandboxConfig) -> str:
    purpose = " ".join((text or "").split())
    if len(purpose.split()) < cfg.min_purpose_words:
        raise RequestInvalid(
            f"Say what the experiment is, in at least {cfg.min_purpose_words} words — for "
            "example “Build an agent that triages bug reports”.",
            field="purpose",
        )
    if len(purpose) > MAX_PURPOSE:
        raise RequestInvalid(f"Keep the purpose under {MAX_PURPOSE} characters.", field="purpose")
    return purpose


def check_duration(text: str | None, cfg: SandboxConfig) -> int:
    if text is None or not str(text).strip():
        return cfg.default_duration_days
    raw = str(text).strip().lower().removesuffix("days").removesuffix("d").strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) \
            or not 1 <= int(raw) <= cfg.max_duration_days:
        raise RequestInvalid(
            f"Duration is a number of days from 1 to {cfg.max_duration_days}.", field="duration"
        )
    return int(raw)


def check_outcome(text: str | None) -> str | None:
    outcome = " ".join((text or "").split())
    if len(outcome) > MAX_OUTCOME:
        raise RequestInvalid(
            f"Keep the expected outcome under {MAX_OUTCOME} characters.", field="expected_outcome"
        )
    return outcome or None


async def pool_used(s: AsyncSession, period: str) -> int:
    """Granted this period plus still-pending requests (they may be granted)."""
    granted = await s.scalar(
        select(func.coalesce(func.sum(SandboxGrant.amount_micros), 0)).where(
            SandboxGrant.period == period
        )
    )
    pending = await s.scalar(
        select(func.coalesce(func.sum(SandboxRequest.amount_micros), 0)).where(
            SandboxRequest.period == period, SandboxRequest.status == "pending"
        )
    )
    return int(granted or 0) + int(pending or 0)


async def _available(s: AsyncSession, person_id: int | None) -> PersonView | None:
    if person_id is None:
        return None
    person = await person_by_id(s, person_id)
    return person if person and not person.out_of_office else None


@dataclass(frozen=True)
class Route:
    stages: list[int]  # approver person ids, in order
    notes: list[str]


async def route(s: AsyncSession, requester: PersonView, amount: int, cfg: SandboxConfig) -> Route:
    """Manager first (or the fallback when missing or out); a second stage above the
    threshold. Nobody ever approves their own request."""
    notes: list[str] = []
    first = await _available(s, requester.manager_id)
    if first is None:
        fallback = (
            await person_by_email(s, cfg.fallback_approver) if cfg.fallback_approver else None
        )
        if fallback and fallback.id != requester.id and not fallback.out_of_office:
            notes.append("your manager is unavailable, so it goes to the fallback approver")
            first = fallback
    stages = [first.id] if first and first.id != requester.id else []
    if amount > to_micros(cfg.second_approver_threshold_usd) and cfg.second_approver:
        second = await person_by_email(s, cfg.second_approver)
        if second and second.id != requester.id and second.id not in stages:
            stages.append(second.id)
    if not stages:
        raise RequestInvalid(
            "There's no approver for you in the directory (no manager and no "
            "fallback approver). Ask an admin to set one."
        )
    return Route(stages, notes)


async def escalation_target(
    s: AsyncSession,
    current_approver_id: int,
    requester_id: int,
    cfg: SandboxConfig,
    already: list[int],
) -> int | None:
    """Who a request escalates to: the approver's manager, else the fallback approver."""
    approver = await s.get(Person, current_approver_id)
    candidates: list[int | None] = [approver.manager_id if approver else None]
    if cfg.fallback_approver:
        candidates.append(
            await s.scalar(select(Person.id).where(Person.email == cfg.fallback_approver))
        )
    for cand in candidates:
        if cand and cand != requester_id and cand != current_approver_id and cand not in already:
            person = await _available(s, cand)
            if person:
                return person.id
    return None


def snapshot(cfg: SandboxConfig) -> dict[str, Any]:
    """The policy in force, stored on the request so later config edits don't change it."""
    return cfg.model_dump(mode="json", exclude={"gateway"})
