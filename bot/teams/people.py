"""Teams user -> person: by the stored AAD object id, else the roster's email once, then
the AAD id is stored so later messages need no roster call."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from bot.directory import PersonView
from bot.runtime import Runtime
from bot.store.tables import Person

log = logging.getLogger("tokencoach.teams")
UNKNOWN_TTL = 300.0

# user id -> the roster entry (TeamsChannelAccount as JSON: email, userPrincipalName, …)
Roster = Callable[[str], Awaitable[dict[str, Any] | None]]


@dataclass
class People:
    rt: Runtime
    _unknown: dict[str, float] = field(default_factory=dict)  # don't hammer the roster

    async def by_aad(self, aad: str) -> PersonView | None:
        async with self.rt.db.reader() as s:
            person = await s.scalar(select(Person).where(Person.teams_aad_id == aad,
                                                         Person.active))
        return PersonView.of(person) if person is not None else None

    async def resolve(self, user_id: str, aad: str | None, roster: Roster) -> PersonView | None:
        if aad:
            known = await self.by_aad(aad)
            if known is not None:
                return known
        if time.monotonic() - self._unknown.get(user_id, -UNKNOWN_TTL) < UNKNOWN_TTL:
            return None
        member = await roster(user_id)
        email = ((member or {}).get("email") or (member or {}).get("userPrincipalName")
                 or "").strip().lower()
        aad = aad or (member or {}).get("aadObjectId")
        if not email:
            self._unknown[user_id] = time.monotonic()
            return None
        async with self.rt.db.session() as s:
            person = await s.scalar(select(Person).where(Person.email == email, Person.active))
            if person is None:
                self._unknown[user_id] = time.monotonic()
                return None
            if aad and person.teams_aad_id != aad:
                taken = await s.scalar(select(Person.id).where(Person.teams_aad_id == aad))
                if taken is None:
                    await s.execute(update(Person).where(Person.id == person.id)
                                    .values(teams_aad_id=aad))
                    await s.refresh(person)
                else:
                    log.warning("AAD id already linked to another person",
                                extra={"person_id": person.id, "other": taken})
            return PersonView.of(person)
