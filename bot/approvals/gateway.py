"""Optional gateway sync: while a grant is active, raise the person's budget in a LiteLLM
proxy (POST /user/update with max_budget); restore it when the grant ends.

Runs from the approvals job, so a failed call is simply retried on the next run; the
``gateway_synced_at`` / ``gateway_restored_at`` stamps make each step happen once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from sqlalchemy import func, select, update

from bot.directory import person_by_id
from bot.ledger import cap_for
from bot.money import to_cents_str
from bot.runtime import Runtime
from bot.store.tables import SandboxGrant

log = logging.getLogger("tokencoach.gateway")


async def _budget_for(rt: Runtime, person_id: int) -> tuple[str, str] | None:
    """(LiteLLM user id, max_budget as an exact decimal string) for a person."""
    async with rt.db.reader() as s:
        person = await person_by_id(s, person_id)
        if person is None:
            return None
        extra = await s.scalar(
            select(func.coalesce(func.sum(SandboxGrant.amount_micros), 0)).where(
                SandboxGrant.person_id == person_id,
                SandboxGrant.status == "active",
                SandboxGrant.ends_at > rt.now(),
            )
        )
        cap = await cap_for(rt, person, within=s)
    users = rt.config.sources.litellm.mappings.users if rt.config.sources.litellm else {}
    user_id = next(
        (uid for uid, email in users.items() if email.lower() == person.email), person.email
    )
    return user_id, to_cents_str(cap + int(extra or 0))


async def _post(rt: Runtime, client: httpx.AsyncClient, user_id: str, budget: str) -> None:
    # max_budget is written as an exact JSON number (no float round-trip).
    body = f'{{"user_id": {json.dumps(user_id)}, "max_budget": {budget}}}'
    resp = await client.post(
        "/user/update", content=body, headers={"Content-Type": "application/json"}
    )
    resp.raise_for_status()


async def sync_grants(rt: Runtime) -> dict[str, Any]:
    gw = rt.config.sandbox.gateway
    if not gw.enabled:
        return {}
    key = rt.env.secret(gw.key_env)
    if not key:
        log.warning("gateway sync enabled but %s is not set", gw.key_env)
        return {"gateway_errors": 1}
    now = rt.now()
    async with rt.db.reader() as s:
        to_raise = (
            await s.scalars(
                select(SandboxGrant).where(
                    SandboxGrant.status == "active", SandboxGrant.gateway_synced_at.is_(None)
                )
            )
        ).all()
        to_restore = (
            await s.scalars(
                select(SandboxGrant).where(
                    SandboxGrant.status == "ended",
                    SandboxGrant.gateway_synced_at.is_not(None),
                    SandboxGrant.gateway_restored_at.is_(None),
                )
            )
        ).all()
    counts = {"gateway_synced": 0, "gateway_restored": 0, "gateway_errors": 0}
    async with httpx.AsyncClient(
        base_url=gw.base_url, timeout=15, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        for grant, column, label in [
            (g, "gateway_synced_at", "gateway_synced") for g in to_raise
        ] + [(g, "gateway_restored_at", "gateway_restored") for g in to_restore]:
            target = await _budget_for(rt, grant.person_id)
            if target is None:
                continue
            try:
                await _post(rt, client, *target)
            except httpx.HTTPError as exc:
                log.warning(
                    "gateway budget update failed", extra={"grant": grant.id, "error": repr(exc)}
                )
                counts["gateway_errors"] += 1
                continue
            async with rt.db.session() as s:
                await s.execute(
                    update(SandboxGrant).where(SandboxGrant.id == grant.id).values({column: now})
                )
            counts[label] += 1
    return counts
