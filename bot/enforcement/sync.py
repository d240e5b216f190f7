"""Reading Claude Enterprise: every member's effective limit and spend, the pending
increase requests, and the drift between tokencoach's overrides and what is there.

A failed read leaves the last stored rows in place (with their ``as_of``), so what is
shown is stale, never wrong about its age.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from bot import audit
from bot.enforcement import claude, ops
from bot.enforcement.claude import VENDOR, ClaudeSpendLimits
from bot.enforcement.http import VendorError
from bot.enforcement.overrides import adopt_new_limit
from bot.enforcement.store import drop_unseen, emails_to_people, save_request, save_summary
from bot.runtime import Runtime
from bot.store.tables import EnforcedLimit, VendorIncreaseRequest, VendorOverride

log = logging.getLogger("tokencoach.enforcement.sync")


async def sync_claude(rt: Runtime) -> dict[str, int]:
    cfg = rt.config.enforcement.claude_enterprise
    if not cfg.enabled:
        return {}
    now = rt.now()
    counts = {"members": 0, "mapped": 0, "unmapped": 0, "other_currency": 0}
    async with claude.client(rt, attempts=4) as http:
        api = ClaudeSpendLimits(http)
        rows = [row async for page in api.effective() for row in page]
        requests = [req async for page in api.increase_requests() for req in page] if (
            cfg.route_increase_requests) else []
        async with rt.db.session() as s:
            people = await emails_to_people(s)
            for row in rows:
                if row.currency != "USD":  # tokencoach shows USD; never mislabel money
                    counts["other_currency"] += 1
                    continue
                person_id = people.get(row.actor.email or "")
                counts["members"] += 1
                counts["mapped" if person_id else "unmapped"] += 1
                await save_summary(s, rt, row, person_id, as_of=now)
            await drop_unseen(s, VENDOR, {(r.user_id, r.period) for r in rows})
            for req in requests:
                await save_request(s, rt, req, people.get(req.actor.email or ""))
        counts["requests_pending"] = len(requests)
        if cfg.route_increase_requests:
            counts["requests_decided"] = await _refresh_vanished(rt, api, {r.id for r in requests})
    counts["drift"] = await reconcile_claude(rt)
    return counts


async def _refresh_vanished(rt: Runtime, api: ClaudeSpendLimits, pending: set[str]) -> int:
    """Requests stored as pending that the list no longer shows were decided (in the
    console, by another admin, or by us) or withdrawn: read each one to know which."""
    async with rt.db.reader() as s:
        stored = set((await s.scalars(select(VendorIncreaseRequest.request_id).where(
            VendorIncreaseRequest.vendor == VENDOR,
            VendorIncreaseRequest.status == "pending"))).all())
    changed = 0
    for request_id in sorted(stored - pending):
        try:
            req = await api.get_request(request_id)
        except VendorError as exc:
            if exc.status != 404:
                raise
            async with rt.db.session() as s:
                row = await s.get(VendorIncreaseRequest, (VENDOR, request_id))
                if row is not None:
                    row.status, row.as_of = "gone", rt.now()
            changed += 1
            continue
        async with rt.db.session() as s:
            row = await s.get(VendorIncreaseRequest, (VENDOR, request_id))
            await save_request(s, rt, req, row.person_id if row else None)
            if req.status == "approved" and req.actor.user_id:
                await _adopt_console_approval(s, rt, req)
        changed += 1
    return changed


async def _adopt_console_approval(s: Any, rt: Runtime, req: Any) -> None:
    """Approved elsewhere (the console) while tokencoach holds the member's grant
    override: the limit just read is their new own limit, not drift."""
    seen = await s.scalar(select(EnforcedLimit).where(
        EnforcedLimit.vendor == VENDOR, EnforcedLimit.vendor_user_id == req.actor.user_id,
        EnforcedLimit.period == (req.period or claude.MONTHLY)))
    if seen is None or seen.inherited_from != "user":
        return
    who = req.resolved_by.label if req.resolved_by else "the console"
    await adopt_new_limit(s, rt, user_id=req.actor.user_id, period=seen.period,
                          amount_micros=seen.amount_micros, spend_limit_id=seen.spend_limit_id,
                          reason=f"approved:{req.id}", actor=f"{who} (in Claude)")


async def reconcile_claude(rt: Runtime) -> int:
    """Overrides tokencoach holds that the vendor no longer shows (someone edited the
    limit in the console): audit the drift and queue the write that repairs it."""
    drift = 0
    stamp = rt.now().strftime("%Y-%m-%dT%H:%M")
    async with rt.db.session() as s:
        held = (await s.scalars(select(VendorOverride).where(
            VendorOverride.vendor == VENDOR, VendorOverride.state == "active",
            VendorOverride.target_micros.is_not(None)))).all()
        queued = await ops.people_in_queue(s, VENDOR)
        for ov in held:
            if ov.person_id in queued:
                continue  # a write for them is on its way; judge after it
            seen = await s.scalar(select(EnforcedLimit).where(
                EnforcedLimit.vendor == VENDOR, EnforcedLimit.vendor_user_id == ov.vendor_user_id,
                EnforcedLimit.period == ov.period))
            if seen is None:
                continue  # not listed (left the org): nothing to repair
            if seen.inherited_from == "user" and seen.amount_micros == ov.target_micros:
                continue
            drift += 1
            found: dict[str, Any] = {"amount_micros": seen.amount_micros,
                                     "source": seen.inherited_from}
            await audit.record(
                s, at=rt.now(), action="enforcement.drift_detected", actor="scheduler",
                subject=f"person:{ov.person_id}",
                detail={"vendor": VENDOR, "user_id": ov.vendor_user_id, "period": ov.period,
                        "expected_micros": ov.target_micros, "found": found})
            await ops.enqueue(
                s, rt, vendor=VENDOR, kind="override",
                key=f"reconcile:{VENDOR}:{ov.person_id}:{ov.period}:{stamp}",
                payload={"period": ov.period, "reason": "drift"}, actor="scheduler (reconcile)",
                person_id=ov.person_id, subject=f"person:{ov.person_id}")
    if drift:
        log.warning("limits drifted from tokencoach's overrides", extra={"count": drift})
    return drift
