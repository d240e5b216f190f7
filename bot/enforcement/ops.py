"""The durable queue of writes to vendors' limits ("vendor ops").

Like the outbox: an op is written in the transaction that causes it (a grant starts, an
approver clicks Approve), claimed by one sender (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, under a claim lock so that one person's ops never run at once), retried
with backoff, and idempotent: ``op_key`` is stable, and every handler converges the
vendor on the state the database asks for after reading what the vendor has now, so a
crash between the vendor call and its record never writes twice. An op that keeps
failing is reported to admins through the outbox and stays in the table, never dropped.

Every write (and, in dry-run, every write that would have been made) gets an audit row
naming who caused it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.enforcement.http import VendorError
from bot.reply import Context, Reply, Text, literal
from bot.runtime import Runtime
from bot.store.locks import xact_lock
from bot.store.results import affected
from bot.store.tables import Person, VendorOp

log = logging.getLogger("tokencoach.enforcement.ops")

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 10
BASE_BACKOFF = 10.0  # seconds; doubles per attempt, capped: ~85 minutes over 10 attempts
MAX_BACKOFF = 3600.0
VENDOR_NAMES = {"claude_enterprise": "Claude Enterprise", "litellm": "LiteLLM"}


@dataclass
class Call:
    """A write made to a vendor (or, in dry-run, one that would have been made)."""

    method: str
    path: str
    body: Any = None
    before: Any = None  # the vendor state the call replaced, as read
    after: Any = None
    # Found already applied: an earlier attempt made it and crashed before recording it.
    already_applied: bool = False

    def detail(self) -> dict[str, Any]:
        out = {"method": self.method, "path": self.path, "body": self.body,
               "before": self.before, "after": self.after}
        if self.already_applied:
            out["already_applied"] = True
        return out


Record = Callable[[AsyncSession], Awaitable[None]]


@dataclass
class Outcome:
    status: str = "done"  # done | dry_run | skipped
    result: dict[str, Any] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    record: Record | None = None  # domain state saved in the op's finishing transaction


Handler = Callable[[Runtime, VendorOp], Awaitable[Outcome]]
HANDLERS: dict[tuple[str, str], Handler] = {}


def handles(vendor: str, kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[(vendor, kind)] = fn
        return fn

    return register


def _load_handlers() -> None:
    from bot.enforcement import litellm, overrides, requests  # noqa: F401 (they register)


def vendor_config(rt: Runtime, vendor: str) -> Any:
    return getattr(rt.config.enforcement, vendor)


def dry_run(rt: Runtime, vendor: str) -> bool:
    return bool(vendor_config(rt, vendor).dry_run)


async def enqueue(
    s: AsyncSession,
    rt: Runtime,
    *,
    vendor: str,
    kind: str,
    key: str,
    payload: dict[str, Any],
    actor: str,
    actor_id: int | None = None,
    person_id: int | None = None,
    subject: str | None = None,
) -> bool:
    """Queue a write in the caller's transaction; the same ``key`` twice adds nothing."""
    now = rt.now()
    stmt = rt.db.insert(VendorOp).values(
        op_key=key[:255], vendor=vendor, kind=kind, person_id=person_id, subject=subject,
        payload=payload, actor=actor[:128], actor_id=actor_id, status="pending", attempts=0,
        next_attempt_at=now, created_at=now,
    ).on_conflict_do_nothing(index_elements=["op_key"])
    return bool(affected(await s.execute(stmt)))


async def people_in_queue(s: AsyncSession, vendor: str) -> set[int]:
    """People with a write to ``vendor`` still to run: a new one would repeat it."""
    rows = (await s.scalars(select(VendorOp.person_id).where(
        VendorOp.vendor == vendor, VendorOp.status.in_(("pending", "running")),
        VendorOp.person_id.is_not(None)))).all()
    return {pid for pid in rows if pid is not None}


def backoff(attempts: int) -> float:
    return min(BASE_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


def enabled_vendors(rt: Runtime) -> list[str]:
    return [v for v in VENDOR_NAMES if vendor_config(rt, v).enabled]


async def _claim(rt: Runtime, limit: int) -> list[VendorOp]:
    """Take up to ``limit`` due ops, at most one per (vendor, person) at a time."""
    vendors = enabled_vendors(rt)
    if not vendors:
        return []
    now = rt.now()
    async with rt.db.session() as s:
        # Serializes claimers (a short transaction), so "is this person's op running?"
        # is answered against committed claims, not a racing one.
        await xact_lock(s, "vendor-ops-claim")
        busy = {
            (row.vendor, row.person_id)
            for row in (await s.execute(
                select(VendorOp.vendor, VendorOp.person_id).where(
                    VendorOp.status == "running", VendorOp.lease_until >= now,
                    VendorOp.person_id.is_not(None)))).all()
        }
        pick = (
            select(VendorOp.id, VendorOp.vendor, VendorOp.person_id)
            .where(
                VendorOp.vendor.in_(vendors),
                or_(
                    and_(VendorOp.status == "pending", VendorOp.next_attempt_at <= now),
                    and_(VendorOp.status == "running", VendorOp.lease_until < now),
                ),
            )
            .order_by(VendorOp.id)
            .limit(limit * 4)
        )
        if not rt.db.is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        ids = []
        for row in (await s.execute(pick)).all():
            key = (row.vendor, row.person_id)
            if row.person_id is not None and key in busy:
                continue
            busy.add(key)
            ids.append(row.id)
            if len(ids) == limit:
                break
        if not ids:
            return []
        await s.execute(
            update(VendorOp)
            .where(VendorOp.id.in_(ids))
            .values(status="running", lease_until=now + LEASE, attempts=VendorOp.attempts + 1)
        )
        return list((await s.scalars(
            select(VendorOp).where(VendorOp.id.in_(ids)).order_by(VendorOp.id))).all())


async def _finish(s: AsyncSession, op: VendorOp, **values: Any) -> None:
    await s.execute(update(VendorOp).where(VendorOp.id == op.id).values(**values))


async def _succeed(rt: Runtime, op: VendorOp, outcome: Outcome) -> None:
    """Record the outcome, its domain state and its audit rows in one transaction."""
    now = rt.now()
    calls = outcome.calls
    async with rt.db.session() as s:
        if outcome.record is not None:
            await outcome.record(s)
        for call in calls:
            detail = {"vendor": op.vendor, "op": op.id, "op_key": op.op_key, **call.detail()}
            await audit.record(
                s, at=now, actor=op.actor, actor_id=op.actor_id, subject=op.subject,
                action="enforcement.dry_run" if outcome.status == "dry_run"
                else "enforcement.write", detail=detail)
        await _finish(s, op, status=outcome.status, result=outcome.result, finished_at=now,
                      lease_until=None, last_error=None)
    if outcome.status == "dry_run":
        for call in calls:
            log.info("dry run: would call the vendor", extra={
                "vendor": op.vendor, "op_key": op.op_key, "call": call.detail()})


async def _retry_or_fail(rt: Runtime, op: VendorOp, error: str, *, transient: bool,
                         retry_after: float | None = None) -> str:
    now = rt.now()
    if transient and op.attempts < MAX_ATTEMPTS:
        delay = max(retry_after or 0.0, backoff(op.attempts))
        async with rt.db.session() as s:
            await _finish(s, op, status="pending", last_error=error[:2000], lease_until=None,
                          next_attempt_at=now + timedelta(seconds=delay))
        return "retried"
    reason = error if not transient else f"gave up after {op.attempts} attempts: {error}"
    async with rt.db.session() as s:
        await _finish(s, op, status="failed", last_error=reason[:2000], lease_until=None,
                      finished_at=now)
        await audit.record(
            s, at=now, actor=op.actor, actor_id=op.actor_id, subject=op.subject,
            action="enforcement.write_failed",
            detail={"vendor": op.vendor, "op": op.id, "op_key": op.op_key, "kind": op.kind,
                    "payload": op.payload, "error": reason[:500]})
        await _alert_admins(s, rt, op, reason)
    log.warning("vendor op failed", extra={"vendor": op.vendor, "op_key": op.op_key,
                                          "reason": reason})
    return "failed"


async def _alert_admins(s: AsyncSession, rt: Runtime, op: VendorOp, reason: str) -> None:
    from bot.outbox import enqueue as enqueue_message

    who = ""
    if op.person_id is not None:
        person = await s.get(Person, op.person_id)
        who = f" for {person.email}" if person else f" for person #{op.person_id}"
    vendor = VENDOR_NAMES.get(op.vendor, op.vendor)
    reply = Reply(
        text=f"A {vendor} limit change{who} could not be made",
        blocks=[
            Text(text=f"**A {vendor} limit change{literal(who)} could not be made** "
                      f"({literal(op.kind)}, asked by {literal(op.actor)})."),
            Context(text=f"Reason: {literal(reason[:300])}  ·  vendor op #{op.id}  ·  "
                         "`tokencoach limits retry " + str(op.id) + "` once it is fixed"),
        ],
    )
    admin_ids = (await s.scalars(select(Person.id).where(Person.is_admin, Person.active))).all()
    for admin_id in admin_ids:
        await enqueue_message(s, rt, kind="admin_alert", target_type="person",
                              target_id=admin_id, reply=reply,
                              key=f"vendor-op-failed:{op.id}:{op.attempts}:{admin_id}")


async def _run_one(rt: Runtime, op: VendorOp) -> str:
    handler = HANDLERS.get((op.vendor, op.kind))
    if handler is None:
        return await _retry_or_fail(rt, op, f"no handler for {op.vendor}/{op.kind}",
                                    transient=False)
    try:
        outcome = await handler(rt, op)
    except VendorError as exc:
        return await _retry_or_fail(rt, op, str(exc), transient=exc.transient,
                                    retry_after=exc.retry_after)
    except Exception as exc:  # a bug or a database blip must not lose the op: retry it
        log.exception("vendor op crashed", extra={"op_key": op.op_key})
        return await _retry_or_fail(rt, op, repr(exc), transient=True)
    await _succeed(rt, op, outcome)
    return outcome.status


@dataclass
class OpStats:
    done: int = 0
    dry_run: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def handled(self) -> int:
        return self.done + self.dry_run + self.skipped + self.retried + self.failed

    def add(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in vars(self).items() if v}


async def run_due(rt: Runtime, *, limit: int = 4) -> OpStats:
    """Run what is due now, a few people's ops at once: Claude Enterprise allows an
    organization 60 requests a minute across these endpoints, and every claimed op must
    finish well within its lease (a few calls of at most 30 s each)."""
    _load_handlers()
    stats = OpStats()
    batch = await _claim(rt, limit)
    results = await asyncio.gather(*(_run_one(rt, op) for op in batch))
    for status in results:
        stats.add(status)
    return stats


async def drain(rt: Runtime, *, max_rounds: int = 50) -> OpStats:
    """Run until nothing is due (CLI runs, jobs and tests)."""
    total = OpStats()
    for _ in range(max_rounds):
        stats = await run_due(rt)
        for name, value in vars(stats).items():
            setattr(total, name, getattr(total, name) + value)
        if stats.handled == 0:
            break
    return total


async def retry(rt: Runtime, op_id: int) -> bool:
    """Put a failed op back in the queue (after the cause is fixed)."""
    async with rt.db.session() as s:
        done = await s.execute(
            update(VendorOp).where(VendorOp.id == op_id, VendorOp.status == "failed")
            .values(status="pending", attempts=0, next_attempt_at=rt.now(), finished_at=None))
        return bool(affected(done))


class VendorOpsSender:
    """Background loop beside the outbox sender: runs due ops, idles a second between."""

    def __init__(self, rt: Runtime, *, idle_seconds: float = 1.0):
        self.rt = rt
        self.idle_seconds = idle_seconds
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                handled = (await run_due(self.rt)).handled
            except Exception:  # the database may be down: keep going, it will come back
                log.exception("vendor ops round failed")
                handled = 0
            if handled == 0:
                try:
                    await asyncio.wait_for(self._stopped.wait(), timeout=self.idle_seconds)
                except TimeoutError:
                    pass
