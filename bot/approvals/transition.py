"""How every sandbox state change happens: one conditional UPDATE (``… WHERE id = ? AND
status = 'pending' AND stage = ? …``) whose row count says whether this caller won, and its
audit row, in the caller's transaction (with the grant and the outgoing messages it writes
next). So a double click, a retried request, two replicas or two approvers racing, and a
timer firing beside a decision, produce exactly one transition.

Used by ``flow.decide``, ``flow.cancel``, ``flow.reroute``, ``flow.close_orphan`` and the
timers (``bot.approvals.timers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.runtime import Runtime
from bot.store.results import affected
from bot.store.tables import SandboxGrant, SandboxRequest

SUBJECTS: dict[type[Any], str] = {SandboxRequest: "sandbox_request", SandboxGrant: "sandbox_grant"}


@dataclass(frozen=True)
class Audit:
    action: str
    actor: str  # who, as the audit log names them ("slack", "scheduler", …)
    actor_id: int | None = None
    detail: dict[str, Any] | None = None


async def transition(
    s: AsyncSession,
    rt: Runtime,
    model: type[SandboxRequest] | type[SandboxGrant],
    row_id: int,
    *,
    when: Sequence[Any],
    to: dict[str, Any],
    audit_as: Audit | None = None,
) -> bool:
    """Set ``to`` on row ``row_id`` if it still matches ``when``; True if this caller won.

    The audit entry is written only by the winner (``audit_as``; None when the caller's
    entry needs what the transition creates, e.g. the grant's id)."""
    won = await s.execute(
        update(model)
        .where(model.id == row_id, *when)
        .values(**to)
        .execution_options(synchronize_session=False)
    )
    if affected(won) != 1:
        return False
    if audit_as is not None:
        await audit.record(
            s,
            at=rt.now(),
            action=audit_as.action,
            actor=audit_as.actor,
            actor_id=audit_as.actor_id,
            subject=f"{SUBJECTS[model]}:{row_id}",
            detail=audit_as.detail,
        )
    return True


def pending_at(req: SandboxRequest) -> tuple[Any, ...]:
    """``req`` is still pending at the stage and with the approver it was read with."""
    return (
        SandboxRequest.status == "pending",
        SandboxRequest.stage == req.stage,
        SandboxRequest.current_approver_id == req.current_approver_id,
    )
