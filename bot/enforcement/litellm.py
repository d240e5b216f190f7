"""A LiteLLM proxy's per-user budgets: every person's cap, raised by active grants.

Endpoints and fields from the proxy's source (BerriAI/litellm,
litellm/proxy/management_endpoints/internal_user_endpoints.py):
``POST /user/update {"user_id", "max_budget", "budget_duration"}`` (``budget_duration``
"30s" / "30m" / "30h" / "30d" / "1mo": the budget resets at the end of each duration;
unset, it never resets), ``GET /user/list?page=&page_size=`` (at most 100 a page) ->
``{"users": [{user_id, user_email, max_budget, spend, budget_duration, ...}], "total",
"page", "page_size", "total_pages"}``, auth ``Authorization: Bearer <master key>``.

The target is absolute (cap + active grants), so writing it twice is harmless: a crash
between the call and its record cannot raise anyone twice. With ``push_caps`` every
mapped person gets their cap and ``budget_duration: 1mo``; without it only grant holders
are touched (raised while a grant is active, put back to their cap after), as the old
``sandbox.gateway`` did.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.directory import resolve_cap
from bot.enforcement import ops
from bot.enforcement.http import VendorError, VendorHTTP
from bot.enforcement.ops import Call, Outcome, dry_run, handles
from bot.enforcement.store import drop_unseen, emails_to_people, save_limit
from bot.money import to_cents_str, to_micros
from bot.runtime import Runtime
from bot.store.tables import EnforcedLimit, Person, SandboxGrant, Team, VendorOp

VENDOR = "litellm"
BUDGET_DURATION = "1mo"  # tokencoach's caps are monthly
NO_RESET = "never"  # period stored for a user whose budget never resets
PAGE_SIZE = 100  # /user/list allows 1..100


def client(rt: Runtime, *, attempts: int = 1) -> VendorHTTP:
    cfg = rt.config.enforcement.litellm
    key = rt.env.secret(cfg.key_env)
    if not key:
        raise VendorError(f"{VENDOR}: {cfg.key_env} is not set (the proxy's master key)")
    return VendorHTTP(vendor=VENDOR, base_url=cfg.base_url, secret=key, key_env=cfg.key_env,
                      headers={"Authorization": f"Bearer {key}"}, attempts=attempts)


def _mapped_ids(rt: Runtime) -> dict[str, str]:
    """email -> LiteLLM user id, from sources.litellm.mappings.users (id -> email)."""
    src = rt.config.sources.litellm
    users = src.mappings.users if src else {}
    return {email.strip().lower(): uid for uid, email in users.items()}


async def targets(s: AsyncSession, rt: Runtime, person_ids: set[int] | None = None
                  ) -> dict[int, int]:
    """Each active person's budget: their monthly cap plus their active grants (micros)."""
    now = rt.now()
    default = to_micros(rt.config.policy.default_cap_usd)
    team_caps = dict((await s.execute(select(Team.id, Team.cap_micros))).all())
    q = select(Person.id, Person.cap_micros, Person.team_id).where(Person.active)
    g = select(SandboxGrant.person_id, func.sum(SandboxGrant.amount_micros)).where(
        SandboxGrant.status == "active", SandboxGrant.starts_at <= now,
        SandboxGrant.ends_at > now).group_by(SandboxGrant.person_id)
    if person_ids is not None:
        q = q.where(Person.id.in_(person_ids))
        g = g.where(SandboxGrant.person_id.in_(person_ids))
    grants = {pid: int(total or 0) for pid, total in (await s.execute(g)).all()}
    return {
        pid: resolve_cap(cap, team_caps.get(team_id) if team_id else None, default)
        + grants.get(pid, 0)
        for pid, cap, team_id in (await s.execute(q)).all()
    }


async def user_id_for(s: AsyncSession, rt: Runtime, person: Person) -> str:
    """The person's LiteLLM user: mapped in app.yaml, else found by the last read, else
    their email (the id the old gateway sync used)."""
    mapped = _mapped_ids(rt).get(person.email.lower())
    if mapped:
        return mapped
    seen = await s.scalar(select(EnforcedLimit.vendor_user_id).where(
        EnforcedLimit.vendor == VENDOR, EnforcedLimit.person_id == person.id))
    return seen or person.email


def _body(user_id: str, budget_micros: int, push_caps: bool) -> tuple[str, dict[str, Any]]:
    """The /user/update body as exact JSON text (no float round trip), and for the audit."""
    amount = to_cents_str(budget_micros)
    text = f'{{"user_id": {json.dumps(user_id)}, "max_budget": {amount}'
    shown: dict[str, Any] = {"user_id": user_id, "max_budget": amount}
    if push_caps:
        text += f', "budget_duration": "{BUDGET_DURATION}"'
        shown["budget_duration"] = BUDGET_DURATION
    return text + "}", shown


@handles(VENDOR, "budget")
async def converge_budget(rt: Runtime, op: VendorOp) -> Outcome:
    push_caps = rt.config.enforcement.litellm.push_caps
    async with rt.db.reader() as s:
        person = await s.get(Person, op.person_id) if op.person_id else None
        if person is None or not person.active:
            return Outcome("skipped", {"reason": "no such person"})
        target = (await targets(s, rt, {person.id}))[person.id]
        user_id = await user_id_for(s, rt, person)
        before = await s.scalar(select(EnforcedLimit.amount_micros).where(
            EnforcedLimit.vendor == VENDOR, EnforcedLimit.vendor_user_id == user_id))
    text, shown = _body(user_id, target, push_caps)
    call = Call("POST", "/user/update", shown,
                before={"max_budget": to_cents_str(before) if before is not None else None})
    result = {"user_id": user_id, "max_budget_micros": target}
    if dry_run(rt, VENDOR):
        return Outcome("dry_run", result, [call])
    async with client(rt) as http:
        await http.call("POST", "/user/update", body=text)

    async def record(s: AsyncSession) -> None:
        values: dict[str, Any] = {"amount_micros": target, "as_of": rt.now()}
        if push_caps:
            values["period"] = BUDGET_DURATION
        await s.execute(update(EnforcedLimit).where(
            EnforcedLimit.vendor == VENDOR, EnforcedLimit.vendor_user_id == user_id
        ).values(**values))

    return Outcome("done", result, [call], record)


def _money(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return to_micros(Decimal(str(value)))
    except ArithmeticError:
        return None


def _period(user: dict[str, Any]) -> str:
    return str(user.get("budget_duration") or NO_RESET)[:16]


async def read_users(rt: Runtime) -> dict[str, int]:
    """Every LiteLLM user's max_budget and spend, stored as enforced limits."""
    now = rt.now()
    users: list[dict[str, Any]] = []
    async with client(rt, attempts=4) as http:
        page = 1
        while True:
            body = await http.call("GET", "/user/list",
                                   params=[("page", page), ("page_size", PAGE_SIZE)])
            if not isinstance(body, dict) or not isinstance(body.get("users"), list):
                raise VendorError(f"{VENDOR}: GET /user/list answered an unexpected shape")
            users += [u for u in body["users"] if isinstance(u, dict) and u.get("user_id")]
            if page >= int(body.get("total_pages") or 1) or not body["users"]:
                break
            page += 1
    mapped = {uid: email for email, uid in _mapped_ids(rt).items()}
    counts = {"litellm_users": len(users), "litellm_mapped": 0}
    async with rt.db.session() as s:
        people = await emails_to_people(s)
        for u in users:
            uid = str(u["user_id"])
            email = (mapped.get(uid) or u.get("user_email") or uid or "").strip().lower()
            person_id = people.get(email)
            counts["litellm_mapped"] += person_id is not None
            await save_limit(
                s, rt, vendor=VENDOR, user_id=uid, period=_period(u), person_id=person_id,
                email=email or None, amount_micros=_money(u.get("max_budget")),
                spent_micros=_money(u.get("spend")) or 0, inherited_from="user", as_of=now)
        await drop_unseen(s, VENDOR, {(str(u["user_id"]), _period(u)) for u in users})
    return counts


async def push_caps(rt: Runtime, stamp: str | None = None) -> dict[str, int]:
    """Read every LiteLLM user, then queue a write for each person whose budget is not
    what it should be (their cap with ``push_caps``, and anyone's active grants): this is
    also the reconciliation that repairs an edit made in the proxy's UI."""
    cfg = rt.config.enforcement.litellm
    if not cfg.enabled:
        return {}
    counts = await read_users(rt)
    stamp = stamp or rt.now().strftime("%Y-%m-%dT%H:%M")
    queued = missing = 0
    async with rt.db.session() as s:
        holders = set((await s.scalars(select(SandboxGrant.person_id).where(
            SandboxGrant.status == "active", SandboxGrant.ends_at > rt.now()))).all())
        want = await targets(s, rt, None if cfg.push_caps else holders)
        queued_already = await ops.people_in_queue(s, VENDOR)
        rows: dict[int, list[EnforcedLimit]] = defaultdict(list)
        for row in (await s.scalars(select(EnforcedLimit).where(
                EnforcedLimit.vendor == VENDOR, EnforcedLimit.person_id.is_not(None)))).all():
            rows[row.person_id or 0].append(row)
        for person_id, target in want.items():
            if person_id in queued_already:
                continue
            have = rows.get(person_id)
            if not have:
                if person_id not in holders:  # no LiteLLM user: nothing to cap
                    missing += 1
                    continue
            elif all(r.amount_micros == target and (
                    not cfg.push_caps or r.period == BUDGET_DURATION) for r in have):
                continue
            queued += await ops.enqueue(
                s, rt, vendor=VENDOR, kind="budget", key=f"litellm:budget:{person_id}:{stamp}",
                payload={"reason": "caps" if cfg.push_caps else "grants"},
                actor="scheduler (litellm budgets)", person_id=person_id,
                subject=f"person:{person_id}")
    return {**counts, "litellm_queued": queued, "litellm_without_user": missing}
