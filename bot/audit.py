"""The append-only audit log: every state change, refusal, unauthorized click and grant."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.runtime import Runtime
from bot.store.tables import AuditEntry, Person
from bot.timeutil import as_utc


async def record(
    s: AsyncSession,
    *,
    at: datetime,
    action: str,
    actor: str,
    actor_id: int | None = None,
    subject: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry in the caller's transaction (it commits or rolls back with it)."""
    s.add(
        AuditEntry(
            at=at,
            actor_id=actor_id,
            actor=actor[:128],
            action=action,
            subject=subject,
            detail=detail,
        )
    )


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor: str
    action: str
    subject: str | None
    detail: dict[str, Any] | None

    @property
    def detail_text(self) -> str:
        return json.dumps(self.detail, ensure_ascii=False, sort_keys=True) if self.detail else ""


async def read_audit(
    rt: Runtime, *, person: str | None = None, since: datetime | None = None, limit: int = 200
) -> list[AuditRow]:
    async with rt.db.reader() as s:
        q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if since:
            q = q.where(AuditEntry.at >= since)
        if person:
            pid = await s.scalar(select(Person.id).where(Person.email == person.lower()))
            if pid is None:
                return []
            # Entries by the person, or about one of their sandbox requests.
            from bot.store.tables import SandboxRequest

            req_ids = (
                await s.scalars(select(SandboxRequest.id).where(SandboxRequest.person_id == pid))
            ).all()
            subjects = [f"sandbox_request:{i}" for i in req_ids]
            q = q.where(or_(AuditEntry.actor_id == pid, AuditEntry.subject.in_(subjects)))
        rows = (await s.scalars(q)).all()
    return [AuditRow(as_utc(r.at), r.actor, r.action, r.subject, r.detail) for r in rows]
