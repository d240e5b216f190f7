"""Sandbox grants that bind: raise the vendor's limit while a grant runs, restore after.

``apply_grant`` / ``restore_after_grant`` queue vendor ops in the caller's transaction
(call them where a grant starts and where it ends, is revoked or expires). The ops
converge on the state the database holds when they run, so their order, a repeat, or a
grant that starts while another ends all come out right. ``sync_grants`` (run by the
approvals job) queues whatever a grant start or end did not: the same op keys, so
nothing is queued twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, and_, cast, exists, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.enforcement import claude, litellm, ops
from bot.runtime import Runtime
from bot.store.tables import SandboxGrant, VendorOp

KINDS = {claude.VENDOR: "override", litellm.VENDOR: "budget"}


def grant_vendors(rt: Runtime) -> list[str]:
    """Vendors whose limits follow grants."""
    cfg = rt.config.enforcement
    out = []
    if cfg.claude_enterprise.enabled and cfg.claude_enterprise.write_grants:
        out.append(claude.VENDOR)
    if cfg.litellm.enabled:
        out.append(litellm.VENDOR)
    return out


def _key(grant_id: int, vendor: str, step: str) -> str:
    return f"grant:{grant_id}:{vendor}:{step}"


async def _queue(s: AsyncSession, rt: Runtime, grant: SandboxGrant, step: str, *, actor: str,
                 actor_id: int | None, vendors: list[str] | None = None) -> int:
    vendors = grant_vendors(rt) if vendors is None else vendors
    queued = 0
    for vendor in vendors:
        payload: dict[str, Any] = {"grant_id": grant.id, "step": step}
        if vendor == claude.VENDOR:
            payload["period"] = claude.MONTHLY
        queued += await ops.enqueue(
            s, rt, vendor=vendor, kind=KINDS[vendor], key=_key(grant.id, vendor, step),
            payload=payload, actor=actor, actor_id=actor_id, person_id=grant.person_id,
            subject=f"sandbox_grant:{grant.id}")
    if litellm.VENDOR in vendors:  # the old gateway stamps, kept meaningful
        column = "gateway_synced_at" if step == "apply" else "gateway_restored_at"
        await s.execute(update(SandboxGrant).where(SandboxGrant.id == grant.id)
                        .values({column: rt.now()}))
    return queued


async def apply_grant(s: AsyncSession, rt: Runtime, grant: SandboxGrant, *, actor: str,
                      actor_id: int | None = None) -> int:
    """Raise the grantee's vendor limits by the grant (queued in this transaction)."""
    return await _queue(s, rt, grant, "apply", actor=actor, actor_id=actor_id)


async def restore_after_grant(s: AsyncSession, rt: Runtime, grant: SandboxGrant, *,
                              actor: str, actor_id: int | None = None) -> int:
    """Put the grantee's vendor limits back once the grant no longer counts."""
    return await _queue(s, rt, grant, "restore", actor=actor, actor_id=actor_id)


def _has_op(vendor: str, step: str) -> Any:
    key = literal("grant:") + cast(SandboxGrant.id, String) + literal(f":{vendor}:{step}")
    return exists().where(VendorOp.op_key == key)


async def sync_grants(rt: Runtime) -> dict[str, int]:
    """Queue apply/restore ops for grants that started or ended without them, then run
    what is due (the approvals job calls this)."""
    vendors = grant_vendors(rt)
    if not vendors:
        return {}
    now = rt.now()
    counts = {"limits_raise_queued": 0, "limits_restore_queued": 0}
    async with rt.db.session() as s:
        for vendor in vendors:
            started = (await s.scalars(select(SandboxGrant).where(
                SandboxGrant.status == "active", SandboxGrant.starts_at <= now,
                SandboxGrant.ends_at > now, ~_has_op(vendor, "apply")))).all()
            applied = _has_op(vendor, "apply")
            if vendor == litellm.VENDOR:  # grants raised by the old gateway sync
                applied = or_(applied, and_(SandboxGrant.gateway_synced_at.is_not(None),
                                            SandboxGrant.gateway_restored_at.is_(None)))
            ended = (await s.scalars(select(SandboxGrant).where(
                or_(SandboxGrant.status != "active", SandboxGrant.ends_at <= now),
                applied, ~_has_op(vendor, "restore")))).all()
            for grant in started:
                counts["limits_raise_queued"] += await _queue(
                    s, rt, grant, "apply", actor="scheduler", actor_id=None, vendors=[vendor])
            for grant in ended:
                counts["limits_restore_queued"] += await _queue(
                    s, rt, grant, "restore", actor="scheduler", actor_id=None, vendors=[vendor])
    stats = await ops.drain(rt)
    counts.update({f"vendor_ops_{k}": v for k, v in stats.as_dict().items()})
    return counts
