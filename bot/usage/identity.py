"""Who a usage record belongs to: email, provider user id, API key, project, workspace.

Loaded from the store (directory + identities) and kept per process until the directory's
version (bumped by database triggers) moves; lookups are dict gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store import Database
from bot.store.tables import DirectoryVersion, Identity, Person
from bot.usage.record import RawUsage


@dataclass(frozen=True, slots=True)
class Owner:
    person_id: int | None
    team_id: int | None
    identity: str | None  # the raw identity kept when nobody could be found


class IdentityResolver:
    def __init__(self, people: dict[str, tuple[int, int | None]],
                 identities: dict[tuple[str, str], tuple[int | None, int | None]]):
        self.people = people  # email -> (person_id, team_id)
        self.identities = identities  # (kind, value) -> (person_id, team_id)
        self._person_team = {pid: tid for pid, tid in people.values()}

    @classmethod
    async def load(cls, s: AsyncSession) -> IdentityResolver:
        people = {
            email: (pid, tid)
            for email, pid, tid in (
                await s.execute(select(Person.email, Person.id, Person.team_id))
            )
        }
        identities = {
            (kind, value): (pid, tid)
            for kind, value, pid, tid in (
                await s.execute(
                    select(Identity.kind, Identity.value, Identity.person_id, Identity.team_id)
                )
            )
        }
        return cls(people, identities)

    @classmethod
    async def current(cls, db: Database) -> IdentityResolver:
        """The directory as it stands, loaded again only if it changed since the last call.

        Loading 50,000 people takes ~100 ms, too much for every webhook POST. The version
        is read before the maps: a change in between makes the next call reload, never
        serve stale maps as current."""
        async with db.reader() as s:
            version = await s.scalar(select(DirectoryVersion.version)
                                     .where(DirectoryVersion.id == 1))
            cached = _loaded.get(db)
            if cached is not None and version is not None and cached[0] == version:
                return cached[1]
            resolver = await cls.load(s)
        if version is not None:
            _loaded[db] = (version, resolver)
        return resolver

    def _person(self, pid: int | None, tid: int | None) -> tuple[int | None, int | None]:
        if pid is not None:
            return pid, self._person_team.get(pid, tid)
        return None, tid

    def resolve(self, r: RawUsage) -> Owner:
        src = r.source.split(":", 1)[0]
        if r.user:
            if r.user_kind == "email" or "@" in r.user:
                hit = self.people.get(r.user.lower())
                if hit:
                    return Owner(hit[0], hit[1], None)
            hit2 = self.identities.get((f"{src}:users", r.user))
            if hit2:
                return Owner(*self._person(*hit2), None)
        for kind, value in (("api_keys", r.api_key), ("projects", r.project),
                            ("workspaces", r.workspace), ("teams", r.team)):
            if value:
                hit2 = self.identities.get((f"{src}:{kind}", value))
                if hit2:
                    pid, tid = self._person(*hit2)
                    # A project or workspace mapped to a team attributes to the team only.
                    return Owner(pid, tid, None if pid else f"{kind[:-1]}:{value}")
        raw = next(
            (f"{k}:{v}" for k, v in (("user", r.user), ("api_key", r.api_key),
                                     ("project", r.project), ("workspace", r.workspace),
                                     ("team", r.team)) if v),
            "unknown",
        )
        return Owner(None, None, raw)


# Per database (one per process, or one per test): the directory version and its maps.
_loaded: WeakKeyDictionary[Database, tuple[int, IdentityResolver]] = WeakKeyDictionary()
