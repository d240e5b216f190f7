"""The people and teams directory: synced from app.yaml into the store, and looked up.

The store is the runtime truth (it also holds people added by the demo generator and
platform ids discovered at run time); app.yaml is the source for rows of origin "config".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import AppConfig
from bot.money import to_micros
from bot.runtime import Runtime
from bot.store.locks import xact_lock
from bot.store.reads import Statement
from bot.store.tables import Identity, Person, Team


@dataclass(frozen=True)
class PersonView:
    """What handlers need to know about a person, detached from the session."""

    id: int
    email: str
    name: str
    team_id: int | None
    manager_id: int | None
    timezone: str | None
    is_admin: bool
    cap_micros: int | None
    tips_enabled: bool
    out_of_office: bool
    slack_user_id: str | None
    teams_aad_id: str | None

    @classmethod
    def of(cls, p: Person) -> PersonView:
        return cls(
            id=p.id,
            email=p.email,
            name=p.name,
            team_id=p.team_id,
            manager_id=p.manager_id,
            timezone=p.timezone,
            is_admin=p.is_admin,
            cap_micros=p.cap_micros,
            tips_enabled=p.tips_enabled,
            out_of_office=p.out_of_office,
            slack_user_id=p.slack_user_id,
            teams_aad_id=p.teams_aad_id,
        )

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> PersonView:
        """From the columns of ``person_columns()``, as the driver returns them."""
        pid, email, name, team, manager, tz, admin, cap, tips, ooo, slack, teams = row
        return cls(pid, email, name, team, manager, tz, bool(admin), cap, bool(tips),
                   bool(ooo), slack, teams)

    @property
    def first_name(self) -> str:
        words = self.name.split()
        return words[0] if words else self.email


def person_columns() -> tuple[Any, ...]:
    """The columns a PersonView is made of, in ``PersonView.from_row``'s order."""
    return (Person.id, Person.email, Person.name, Person.team_id, Person.manager_id,
            Person.timezone, Person.is_admin, Person.cap_micros, Person.tips_enabled,
            Person.out_of_office, Person.slack_user_id, Person.teams_aad_id)


person_from_row = PersonView.from_row


async def sync_directory(rt: Runtime) -> dict[str, int]:
    """Make the store's config-origin teams, people and identities match app.yaml."""
    cfg = rt.config
    async with rt.db.session() as s:
        await xact_lock(s, "directory-sync")
        stats = await _sync_teams(s, cfg)
        stats.update(await _sync_people(s, cfg))
        stats["identities"] = await _sync_identities(s, cfg)
    return stats


async def _sync_teams(s: AsyncSession, cfg: AppConfig) -> dict[str, int]:
    existing = {t.key: t for t in (await s.scalars(select(Team))).all()}
    added = 0
    for tc in cfg.directory.teams:
        values: dict[str, Any] = dict(
            name=tc.name,
            timezone=tc.timezone,
            slack_channel_id=tc.channel.slack,
            teams_channel_id=tc.channel.teams,
            digest_cron=tc.digest_cron,
            budget_micros=to_micros(tc.budget_usd) if tc.budget_usd is not None else None,
            cap_micros=(
                to_micros(cfg.policy.team_caps[tc.key]) if tc.key in cfg.policy.team_caps else None
            ),
            origin="config",
            active=True,
        )
        team = existing.get(tc.key)
        if team is None:
            s.add(Team(key=tc.key, **values))
            added += 1
        else:
            for k, v in values.items():
                setattr(team, k, v)
    keys = {t.key for t in cfg.directory.teams}
    for key, team in existing.items():
        if team.origin == "config" and key not in keys:
            team.active = False
    await s.flush()
    return {"teams_added": added}


async def _sync_people(s: AsyncSession, cfg: AppConfig) -> dict[str, int]:
    team_ids = dict((await s.execute(select(Team.key, Team.id))).all())
    rows = (
        await s.execute(
            select(
                Person.id, Person.email, Person.origin, Person.slack_user_id, Person.teams_aad_id
            )
        )
    ).all()
    by_email = {r.email: r for r in rows}
    admins = set(cfg.admins)
    wanted: dict[str, dict[str, Any]] = {}
    for pc in cfg.directory.people:
        cap = cfg.policy.person_caps.get(pc.email)
        wanted[pc.email] = dict(
            email=pc.email,
            name=pc.name,
            team_id=team_ids.get(pc.team) if pc.team else None,
            timezone=pc.timezone,
            is_admin=pc.email in admins,
            cap_micros=to_micros(cap) if cap is not None else None,
            out_of_office=pc.out_of_office,
            origin="config",
            active=True,
        )
        # Ids given in app.yaml win; ids discovered at run time are kept otherwise.
        if pc.slack_id:
            wanted[pc.email]["slack_user_id"] = pc.slack_id
        if pc.teams_id:
            wanted[pc.email]["teams_aad_id"] = pc.teams_id

    new = [v for e, v in wanted.items() if e not in by_email]
    if new:
        await s.execute(insert(Person), new)
    changed = [dict(v, id=by_email[e].id) for e, v in wanted.items() if e in by_email]
    if changed:
        await s.execute(update(Person), changed)
    gone = [r.id for r in rows if r.origin == "config" and r.email not in wanted]
    if gone:
        await s.execute(update(Person).where(Person.id.in_(gone)).values(active=False))

    # Managers second, once every person has an id.
    ids = dict((await s.execute(select(Person.email, Person.id))).all())
    managers = [
        {"id": ids[pc.email], "manager_id": ids.get(pc.manager) if pc.manager else None}
        for pc in cfg.directory.people
    ]
    if managers:
        await s.execute(update(Person), managers)
    return {"people_added": len(new), "people_updated": len(changed), "people_retired": len(gone)}


async def _sync_identities(s: AsyncSession, cfg: AppConfig) -> int:
    """Provider identities from app.yaml mappings; discovered ones are left alone."""
    team_ids = dict((await s.execute(select(Team.key, Team.id))).all())
    person_ids = dict((await s.execute(select(Person.email, Person.id))).all())
    await s.execute(delete(Identity).where(Identity.origin == "config"))
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for source, sc in cfg.sources.providers():
        for kind, mapping in sc.mappings.model_dump().items():
            for ident, target in mapping.items():
                target = str(target).strip().lower()
                row: dict[str, Any] = {
                    "kind": f"{source}:{kind}",
                    "value": str(ident),
                    "origin": "config",
                    "person_id": None,
                    "team_id": None,
                }
                if target.startswith("team:"):
                    row["team_id"] = team_ids.get(target[5:])
                else:
                    row["person_id"] = person_ids.get(target)
                rows[(row["kind"], row["value"])] = row
    # Discovered identities with the same key are replaced by the configured mapping.
    discovered = {(k, v) for k, v in (await s.execute(select(Identity.kind, Identity.value)))}
    for key in discovered & rows.keys():
        await s.execute(delete(Identity).where(Identity.kind == key[0], Identity.value == key[1]))
    if rows:
        await s.execute(insert(Identity), list(rows.values()))
    return len(rows)


# --- lookups ---------------------------------------------------------------------------


_BY_SLACK_ID = Statement(lambda d: select(*person_columns()).where(
    Person.slack_user_id == bindparam("user_id", type_=String()), Person.active))


async def person_by_slack_id(rt: Runtime, user_id: str) -> PersonView | None:
    """The active person with this Slack id (one round trip on the driver)."""
    rows = await rt.db.reads.fetch(_BY_SLACK_ID, {"user_id": user_id})
    return PersonView.from_row(rows[0]) if rows else None


async def person_by_email(s: AsyncSession, email: str) -> PersonView | None:
    p = await s.scalar(select(Person).where(Person.email == email.strip().lower(), Person.active))
    return PersonView.of(p) if p else None


async def person_by_id(s: AsyncSession, person_id: int) -> PersonView | None:
    p = await s.get(Person, person_id)
    return PersonView.of(p) if p and p.active else None


async def people_by_ids(s: AsyncSession, ids: set[int]) -> dict[int, PersonView]:
    if not ids:
        return {}
    rows = (await s.scalars(select(Person).where(Person.id.in_(ids)))).all()
    return {p.id: PersonView.of(p) for p in rows}


async def admins(s: AsyncSession) -> list[PersonView]:
    rows = (await s.scalars(select(Person).where(Person.is_admin, Person.active))).all()
    return [PersonView.of(p) for p in rows]


async def direct_reports(s: AsyncSession, manager_id: int) -> list[PersonView]:
    rows = await s.scalars(
        select(Person).where(Person.manager_id == manager_id, Person.active).order_by(Person.name)
    )
    return [PersonView.of(p) for p in rows.all()]


async def team_by_key(s: AsyncSession, key: str) -> Team | None:
    return await s.scalar(select(Team).where(Team.key == key))


def resolve_cap(person_cap: int | None, team_cap: int | None, default: int) -> int:
    """A monthly cap: the person's override, else the team's cap, else the org default."""
    if person_cap is not None:
        return person_cap
    return team_cap if team_cap is not None else default
