"""The append-only audit log: every state change, refusal, unauthorized click and grant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.runtime import Runtime
from bot.store.tables import AuditEntry, Person, SandboxGrant, SandboxRequest
from bot.timeutil import as_utc

# Set while a simulated run ("as if it were", `--at`) works: its rows are marked, so they
# are listed apart from what really happened.
_SIMULATED: ContextVar[bool] = ContextVar("audit_simulated", default=False)


@contextmanager
def simulated_rows(on: bool) -> Iterator[None]:
    token = _SIMULATED.set(on)
    try:
        yield
    finally:
        _SIMULATED.reset(token)


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
            simulated=_SIMULATED.get(),
        )
    )


# Detail keys as people read them, and the keys whose values are person ids.
LABELS = {
    "amount_usd": "amount",
    "stages": "approvers",
    "duration_days": "days",
    "grant_id": "grant",
    "ends_at": "ends",
    "args": "typed",
}
PERSON_KEYS = frozenset({"stages", "approver", "from", "to"})
# Who acted when no person did.
SYSTEM_ACTORS = {"scheduler": "tokencoach (scheduled job)", "demo": "tokencoach (demo seed)"}
PLATFORM_NAMES = {"demo": "the demo seed", "link": "a tracked link"}


@dataclass(frozen=True)
class AuditRow:
    """An entry as people read it: ids resolved to names and emails (the row keeps ids)."""

    at: datetime
    action: str
    who: str  # "Priya Raman <priya.raman@acme.example>", or the bot for scheduled work
    platform: str  # where it was done: slack, teams, playground, cli, scheduler, demo, link
    subject: str  # "request #3 by Tomás Novák <tomas.novak@acme.example>"
    detail: str  # "amount $300 · approvers Priya Raman <priya.raman@acme.example> · days 30"
    simulated: bool
    by_person: bool = True  # False: tokencoach itself (a scheduled job, the demo seed)

    @property
    def by(self) -> str:
        """Who and where: 'Priya Raman <priya.raman@acme.example> via slack'."""
        if not self.by_person:
            return self.who
        return f"{self.who} via {PLATFORM_NAMES.get(self.platform, self.platform)}"


@dataclass(frozen=True)
class AuditLog:
    rows: list[AuditRow]
    other: int  # entries of the other kind (simulated when listing real ones, and back)


class _Names:
    """Person, request and grant ids of a page of entries, resolved in three queries."""

    def __init__(self) -> None:
        self.people: dict[int, tuple[str, str]] = {}
        self.requests: dict[int, int] = {}  # request id -> requester id
        self.grants: dict[int, int] = {}  # grant id -> person id

    async def load(self, s: AsyncSession, entries: list[AuditEntry]) -> None:
        people: set[int] = set()
        requests: set[int] = set()
        grants: set[int] = set()
        for e in entries:
            if e.actor_id:
                people.add(e.actor_id)
            kind, ident = _subject(e.subject)
            {"person": people, "sandbox_request": requests, "sandbox_grant": grants}.get(
                kind, set()
            ).add(ident)
            for key, value in (e.detail or {}).items():
                if key in PERSON_KEYS:
                    people.update(_ids(value))
        if requests:
            rows = await s.execute(
                select(SandboxRequest.id, SandboxRequest.person_id).where(
                    SandboxRequest.id.in_(requests)
                )
            )
            self.requests = {i: pid for i, pid in rows}
        if grants:
            rows = await s.execute(
                select(SandboxGrant.id, SandboxGrant.person_id).where(SandboxGrant.id.in_(grants))
            )
            self.grants = {i: pid for i, pid in rows}
        people |= set(self.requests.values()) | set(self.grants.values())
        if people:
            found = await s.execute(
                select(Person.id, Person.name, Person.email).where(Person.id.in_(people))
            )
            self.people = {pid: (name, email) for pid, name, email in found}

    def person(self, pid: int | None) -> str:
        if pid is None:
            return "nobody"
        found = self.people.get(pid)
        return f"{found[0]} <{found[1]}>" if found else f"person #{pid} (not in the directory)"

    def subject(self, subject: str | None) -> str:
        kind, ident = _subject(subject)
        if kind == "person":
            return self.person(ident)
        if kind == "sandbox_request":
            return f"request #{ident} by {self.person(self.requests.get(ident))}"
        if kind == "sandbox_grant":
            return f"grant #{ident} of {self.person(self.grants.get(ident))}"
        return subject or ""

    def detail(self, detail: dict[str, Any] | None) -> str:
        parts = []
        for key, value in sorted((detail or {}).items()):
            if key in PERSON_KEYS:
                shown = ", ".join(self.person(i) for i in _ids(value)) or "none"
            elif key == "grant_id":
                shown = f"#{value}"
            elif key == "ends_at" and isinstance(value, str):
                shown = value[:10]
            elif isinstance(value, str):
                shown = value
            else:
                shown = json.dumps(value, ensure_ascii=False, sort_keys=True)
            parts.append(f"{LABELS.get(key, key.replace('_', ' '))} {shown}")
        return " · ".join(parts)


def _subject(subject: str | None) -> tuple[str, int]:
    kind, _, ident = (subject or "").partition(":")
    return (kind, int(ident)) if ident.isdigit() else ("", 0)


def _ids(value: Any) -> list[int]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def _platform(actor: str) -> str:
    """The platform recorded with an action: 'slack:U1 (a@b.c)' -> 'slack'."""
    return actor.split(":", 1)[0].split(" ", 1)[0] or "unknown"


def _row(e: AuditEntry, names: _Names) -> AuditRow:
    platform = _platform(e.actor)
    who = names.person(e.actor_id) if e.actor_id else SYSTEM_ACTORS.get(platform, e.actor)
    return AuditRow(
        at=as_utc(e.at),
        action=e.action,
        who=who,
        platform=platform,
        subject=names.subject(e.subject),
        detail=names.detail(e.detail),
        simulated=bool(e.simulated),
        by_person=e.actor_id is not None,
    )


class NoSuchPerson(LookupError):
    pass


async def read_audit(
    rt: Runtime,
    *,
    person: str | None = None,
    since: datetime | None = None,
    limit: int = 200,
    simulated: bool = False,
) -> AuditLog:
    """Newest first: real entries, or only those of simulated runs (``simulated``)."""
    async with rt.db.reader() as s:
        where: list[Any] = []
        if since:
            where.append(AuditEntry.at >= since)
        if person:
            pid = await s.scalar(select(Person.id).where(Person.email == person.strip().lower()))
            if pid is None:
                raise NoSuchPerson(person)
            # Entries by the person, about them, or about one of their requests or grants.
            req_ids = (
                await s.scalars(select(SandboxRequest.id).where(SandboxRequest.person_id == pid))
            ).all()
            grant_ids = (
                await s.scalars(select(SandboxGrant.id).where(SandboxGrant.person_id == pid))
            ).all()
            subjects = [
                f"person:{pid}",
                *(f"sandbox_request:{i}" for i in req_ids),
                *(f"sandbox_grant:{i}" for i in grant_ids),
            ]
            where.append(or_(AuditEntry.actor_id == pid, AuditEntry.subject.in_(subjects)))
        entries = list(
            (
                await s.scalars(
                    select(AuditEntry)
                    .where(*where, AuditEntry.simulated.is_(simulated))
                    .order_by(AuditEntry.id.desc())
                    .limit(limit)
                )
            ).all()
        )
        other = await s.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(*where, AuditEntry.simulated.is_(not simulated))
        )
        names = _Names()
        await names.load(s, entries)
    return AuditLog([_row(e, names) for e in entries], int(other or 0))
