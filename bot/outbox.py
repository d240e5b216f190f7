"""Durable outgoing messages.

Every proactive message is written to the ``outbox`` table in the same transaction as
the change that causes it; the sender delivers it with retries. A crash between the
state change and the send loses nothing. A row that was being sent when its sender died
is "uncertain": before sending it again we ask the platform whether it arrived (where
the platform can tell), so a resend does not post twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, event, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.reply import Context, Reply, Text
from bot.runtime import Runtime
from bot.store.database import insert_for
from bot.store.results import affected
from bot.store.tables import OutboxMessage, Person, Team
from bot.timeutil import as_utc

log = logging.getLogger("tokencoach.outbox")

LEASE = timedelta(minutes=2)
MAX_ATTEMPTS = 12
BASE_BACKOFF = 5.0  # seconds; doubles per attempt, capped
MAX_BACKOFF = 3600.0


class DeliveryError(Exception):
    pass


class RetryLater(DeliveryError):
    """A transient failure (429, 5xx, timeout). ``retry_after`` in seconds if known.

    ``uncertain``: the platform may have accepted the message before the failure (a
    timeout or a dropped connection after sending), so the retry first looks for it.
    """

    def __init__(
        self,
        reason: str,
        retry_after: float | None = None,
        *,
        uncertain: bool = False,
        counts: bool = True,
    ):
        super().__init__(reason)
        self.retry_after = retry_after
        self.uncertain = uncertain
        self.counts = counts  # False: a deliberate wait (Do Not Disturb), not a failure


class Undeliverable(DeliveryError):
    """A permanent failure (channel_not_found, 403): reported to admins, not retried."""


class Unreachable(DeliveryError):
    """The target is not on this platform (no id, no conversation): not an error."""


class Deliverer(Protocol):
    name: str

    async def send(self, msg: OutboxMessage, reply: Reply) -> dict[str, Any]: ...

    async def update(self, msg: OutboxMessage, ref: dict[str, Any], reply: Reply) -> None: ...

    async def find_sent(self, msg: OutboxMessage) -> dict[str, Any] | None: ...

    async def close(self) -> None: ...


def delivery_platforms(rt: Runtime) -> list[str]:
    """Platforms every proactive message goes to, decided by configuration, so any
    process (serve, worker, CLI) enqueues the same rows."""
    names = []
    if rt.env.slack_enabled:
        names.append("slack")
    if rt.env.teams_enabled:
        names.append("teams")
    if not names or rt.env.source.get("TOKENCOACH_PLAYGROUND") == "1":
        names.append("playground")
    return names


def _insert(s: AsyncSession) -> Any:
    return insert_for(s.get_bind().dialect.name, OutboxMessage)


async def enqueue(
    s: AsyncSession,
    rt: Runtime,
    *,
    kind: str,
    target_type: str,
    target_id: int,
    reply: Reply,
    key: str,
    deliver_after: datetime | None = None,
) -> int:
    """Queue ``reply`` for a person's DM or a team's channel on every platform.

    ``key`` makes the message idempotent: enqueueing the same key twice adds nothing.
    Returns how many rows were added.
    """
    now = rt.now()
    rows = [
        dict(
            dedupe_key=f"{key}@{platform}",
            platform=platform,
            kind=kind,
            target_type=target_type,
            target_id=target_id,
            payload=reply.to_json(),
            status="pending",
            attempts=0,
            next_attempt_at=max(deliver_after or now, now),
            created_at=now,
        )
        for platform in delivery_platforms(rt)
    ]
    added = 0
    for row in rows:
        stmt = _insert(s).values(**row).on_conflict_do_nothing(index_elements=["dedupe_key"])
        added += affected(await s.execute(stmt))
    if added:
        _wake_after_commit(s, rt)
    return added


def _wake_after_commit(s: AsyncSession, rt: Runtime) -> None:
    """Wake the sender once the rows are visible: waking it inside the transaction finds
    nothing committed yet and it sleeps its idle second."""
    wake = rt.outbox_wakeup
    if wake is None or s.sync_session.info.get("outbox_wake"):
        return
    s.sync_session.info["outbox_wake"] = True

    def after_commit(session: Any) -> None:
        session.info.pop("outbox_wake", None)
        wake()

    event.listen(s.sync_session, "after_commit", after_commit, once=True)


async def enqueue_update(
    s: AsyncSession, rt: Runtime, *, original_key: str, key: str, reply: Reply
) -> int:
    """Replace, in place, every platform copy of the message queued under ``original_key``.

    If a copy has not gone out yet, its payload is simply replaced.
    """
    originals = (
        await s.scalars(
            select(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"{original_key}@%"))
        )
    ).all()
    now = rt.now()
    added = 0
    for orig in originals:
        if orig.dedupe_key != f"{original_key}@{orig.platform}":
            continue
        if orig.status == "pending" and orig.attempts == 0:
            orig.payload = reply.to_json()
            continue
        if orig.status in ("failed", "unreachable"):
            continue
        stmt = (
            _insert(s)
            .values(
                dedupe_key=f"{key}@{orig.platform}",
                platform=orig.platform,
                kind="update",
                target_type=orig.target_type,
                target_id=orig.target_id,
                payload=reply.to_json(),
                update_of_id=orig.id,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["dedupe_key"])
        )
        added += affected(await s.execute(stmt))
    if added:
        _wake_after_commit(s, rt)
    return added


REOPEN_WITHIN = timedelta(days=7)


async def reopen_unreachable(
    s: AsyncSession, rt: Runtime, *, platform: str, target_type: str, target_id: int
) -> int:
    """Someone just became reachable (installed the app, wrote to the bot): recent
    messages that could not reach them go out after all, instead of staying lost."""
    result = await s.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.platform == platform,
            OutboxMessage.status == "unreachable",
            OutboxMessage.target_type == target_type,
            OutboxMessage.target_id == target_id,
            OutboxMessage.created_at >= rt.now() - REOPEN_WITHIN,
        )
        .values(status="pending", next_attempt_at=rt.now(), last_error=None)
    )
    if affected(result):
        _wake_after_commit(s, rt)
    return int(affected(result) or 0)


def backoff(attempts: int) -> float:
    return min(BASE_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


@dataclass
class DeliveryStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unreachable: int = 0
    recovered: int = 0
    waiting: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed + self.unreachable + self.waiting


async def _claim_batch(rt: Runtime, limit: int) -> list[tuple[OutboxMessage, bool]]:
    """Atomically take up to ``limit`` due rows. Returns (row, was_uncertain)."""
    now = rt.now()
    platforms = list(rt.platforms)
    if not platforms:
        return []
    due = and_(
        OutboxMessage.platform.in_(platforms),
        or_(
            and_(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now),
            and_(OutboxMessage.status == "sending", OutboxMessage.lease_until < now),
        ),
    )
    async with rt.db.session() as s:
        pick = (
            select(OutboxMessage.id, OutboxMessage.status)
            .where(due)
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if not rt.db.is_sqlite:
            pick = pick.with_for_update(skip_locked=True)
        picked = (await s.execute(pick)).all()
        if not picked:
            return []
        ids = [row.id for row in picked]
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(status="sending", lease_until=now + LEASE, attempts=OutboxMessage.attempts + 1)
        )
        rows = (
            await s.scalars(
                select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
            )
        ).all()
        # A row whose sender died mid-send, or whose last try may have got through.
        was_sending = {row.id for row in picked if row.status == "sending"}
        return [
            (row, row.id in was_sending or bool((row.ref or {}).get("uncertain"))) for row in rows
        ]


async def _finish(rt: Runtime, msg_id: int, **values: Any) -> None:
    async with rt.db.session() as s:
        await s.execute(update(OutboxMessage).where(OutboxMessage.id == msg_id).values(**values))


async def _deliver_one(
    rt: Runtime, msg: OutboxMessage, uncertain: bool, stats: DeliveryStats
) -> None:
    platform = rt.platforms[msg.platform]
    now = rt.now()
    reply = Reply.from_json(msg.payload)
    try:
        if msg.update_of_id is not None:
            async with rt.db.reader() as s:
                orig = await s.get(OutboxMessage, msg.update_of_id)
                newer = await s.scalar(
                    select(OutboxMessage.id)
                    .where(
                        OutboxMessage.update_of_id == msg.update_of_id,
                        OutboxMessage.id > msg.id,
                        OutboxMessage.status == "sent",
                    )
                    .limit(1)
                )
            if newer is not None:
                # A later state of this message already went out (this one was retried):
                # sending it now would put an older card back.
                await _finish(rt, msg.id, status="skipped", last_error="superseded")
                return
            if orig is None or orig.status in ("failed", "unreachable"):
                await _finish(rt, msg.id, status="skipped", last_error="original not delivered")
                return
            if orig.status != "sent" or not orig.ref:
                # The original is still on its way; try again shortly.
                await _finish(
                    rt,
                    msg.id,
                    status="pending",
                    attempts=msg.attempts - 1,
                    next_attempt_at=now + timedelta(seconds=2),
                )
                stats.waiting += 1
                return
            await platform.update(msg, orig.ref, reply)
            ref: dict[str, Any] = dict(orig.ref)
        else:
            found = await platform.find_sent(msg) if uncertain else None
            if found is not None:
                stats.recovered += 1
                ref = found
            else:
                ref = await platform.send(msg, reply)
    except RetryLater as exc:
        if exc.counts and msg.attempts >= MAX_ATTEMPTS:
            await _fail(rt, msg, f"gave up after {msg.attempts} attempts: {exc}")
            stats.failed += 1
            return
        delay = max(exc.retry_after or 0.0, backoff(msg.attempts))
        await _finish(
            rt,
            msg.id,
            status="pending",
            last_error=str(exc)[:2000],
            next_attempt_at=now + timedelta(seconds=delay),
            ref={"uncertain": True} if exc.uncertain or uncertain else None,
            attempts=msg.attempts if exc.counts else msg.attempts - 1,
        )
        metrics.OUTBOX_DELIVERIES.labels(msg.platform, "retry").inc()
        stats.retried += 1
        return
    except Unreachable as exc:
        await _finish(rt, msg.id, status="unreachable", last_error=str(exc)[:2000])
        metrics.OUTBOX_DELIVERIES.labels(msg.platform, "unreachable").inc()
        stats.unreachable += 1
        await _report_if_unreachable_everywhere(rt, msg)
        return
    except Undeliverable as exc:
        await _fail(rt, msg, str(exc))
        stats.failed += 1
        return
    except Exception as exc:  # an unexpected bug must not lose the message: retry it
        log.exception("outbox delivery crashed", extra={"outbox_id": msg.id})
        await _finish(
            rt,
            msg.id,
            status="pending",
            last_error=repr(exc)[:2000],
            next_attempt_at=now + timedelta(seconds=backoff(msg.attempts)),
        )
        stats.retried += 1
        stats.errors.append(repr(exc))
        return
    await _finish(rt, msg.id, status="sent", ref=ref, sent_at=rt.now(), last_error=None)
    metrics.OUTBOX_DELIVERIES.labels(msg.platform, "sent").inc()
    stats.sent += 1


async def _fail(rt: Runtime, msg: OutboxMessage, reason: str) -> None:
    await _finish(rt, msg.id, status="failed", last_error=reason[:2000])
    metrics.OUTBOX_DELIVERIES.labels(msg.platform, "failed").inc()
    log.warning(
        "outbox message failed",
        extra={"outbox_id": msg.id, "platform": msg.platform, "kind": msg.kind, "reason": reason},
    )
    if msg.kind != "admin_alert":
        await _alert_admins(rt, msg, reason)


async def _report_if_unreachable_everywhere(rt: Runtime, msg: OutboxMessage) -> None:
    base = msg.dedupe_key.rsplit("@", 1)[0]
    async with rt.db.reader() as s:
        statuses = (
            await s.scalars(
                select(OutboxMessage.status).where(OutboxMessage.dedupe_key.like(f"{base}@%"))
            )
        ).all()
    if statuses and all(st == "unreachable" for st in statuses) and msg.kind != "admin_alert":
        await _alert_admins(rt, msg, msg.last_error or "not reachable on any platform")


async def _alert_admins(rt: Runtime, msg: OutboxMessage, reason: str) -> None:
    async with rt.db.session() as s:
        target = await _describe_target(s, msg)
        admin_ids = (await s.scalars(select(Person.id).where(Person.is_admin, Person.active))).all()
        reply = Reply(
            text=f"A tokencoach message could not be delivered to {target}",
            blocks=[
                Text(
                    text=f"**A {msg.kind.replace('_', ' ')} message could not be delivered** "
                    f"to {target} on {msg.platform.title()}."
                ),
                Context(text=f"Reason: {reason[:300]}  ·  outbox #{msg.id}"),
            ],
        )
        for admin_id in admin_ids:
            await enqueue(
                s,
                rt,
                kind="admin_alert",
                target_type="person",
                target_id=admin_id,
                reply=reply,
                key=f"outbox-failed:{msg.id}:{admin_id}",
            )


async def _describe_target(s: AsyncSession, msg: OutboxMessage) -> str:
    if msg.target_type == "person":
        person = await s.get(Person, msg.target_id)
        return person.email if person else f"person #{msg.target_id}"
    team = await s.get(Team, msg.target_id)
    return f"the {team.name} channel" if team else f"team #{msg.target_id}"


async def deliver_due(rt: Runtime, *, limit: int = 50, concurrency: int = 8) -> DeliveryStats:
    """Deliver what is due now. Updates wait for their originals (ordering by id)."""
    stats = DeliveryStats()
    batch = await _claim_batch(rt, limit)
    if not batch:
        return stats
    gate = asyncio.Semaphore(concurrency)
    originals = [b for b in batch if b[0].update_of_id is None]
    # Of several updates to the same message in one batch, only the newest goes out.
    newest: dict[int, int] = {}
    for msg, _ in batch:
        if msg.update_of_id is not None:
            newest[msg.update_of_id] = max(newest.get(msg.update_of_id, 0), msg.id)
    updates = []
    for item in batch:
        msg = item[0]
        if msg.update_of_id is None:
            continue
        if msg.id == newest[msg.update_of_id]:
            updates.append(item)
        else:
            await _finish(rt, msg.id, status="skipped", last_error="superseded")

    async def one(item: tuple[OutboxMessage, bool]) -> None:
        async with gate:
            await _deliver_one(rt, item[0], item[1], stats)

    await asyncio.gather(*(one(b) for b in originals))
    await asyncio.gather(*(one(b) for b in updates))
    return stats


async def drain(rt: Runtime, *, max_rounds: int = 100) -> DeliveryStats:
    """Deliver until nothing is due (CLI runs and tests)."""
    total = DeliveryStats()
    for _ in range(max_rounds):
        stats = await deliver_due(rt)
        for name in ("sent", "retried", "failed", "unreachable", "recovered", "waiting"):
            setattr(total, name, getattr(total, name) + getattr(stats, name))
        total.errors += stats.errors
        if stats.sent + stats.failed + stats.unreachable + stats.waiting == 0:
            break
        if stats.waiting and not (stats.sent or stats.failed or stats.unreachable):
            await asyncio.sleep(0.05)
    return total


async def refresh_gauges(rt: Runtime) -> None:
    async with rt.db.reader() as s:
        rows = await s.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        counts = dict(rows.all())
        oldest = await s.scalar(
            select(func.min(OutboxMessage.created_at)).where(
                OutboxMessage.status.in_(("pending", "sending"))
            )
        )
    for status in ("pending", "sending", "sent", "failed", "unreachable", "skipped"):
        metrics.OUTBOX_DEPTH.labels(status).set(counts.get(status, 0))
    if oldest is not None:
        metrics.OUTBOX_OLDEST_SECONDS.set(max((rt.now() - as_utc(oldest)).total_seconds(), 0))
    else:
        metrics.OUTBOX_OLDEST_SECONDS.set(0)


class OutboxSender:
    """Background delivery loop: drains due messages, sleeps until woken or a second passes."""

    def __init__(self, rt: Runtime, *, idle_seconds: float = 1.0):
        self.rt = rt
        self.idle_seconds = idle_seconds
        self._wake = asyncio.Event()
        self._stopped = False
        rt.outbox_wakeup = self.wake

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopped:
            try:
                stats = await deliver_due(self.rt)
            except Exception:  # the database may be down: keep going, it will come back
                log.exception("outbox sender round failed")
                stats = DeliveryStats()
                await asyncio.sleep(self.idle_seconds)
            if stats.handled == 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.idle_seconds)
                except TimeoutError:
                    pass
                self._wake.clear()
