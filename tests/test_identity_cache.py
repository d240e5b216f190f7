"""Ingest keeps the loaded directory per process and reloads it exactly when it changed:
database triggers bump a version on any change to people's email or team or to identities."""

from __future__ import annotations

from datetime import date

from sqlalchemy import insert, select, update

from bot.directory import sync_directory
from bot.store.tables import Identity, Person, Team, UsageRecord
from bot.usage.identity import IdentityResolver
from tests.helpers.crafted import record, write

EMAIL = "tomas.novak@acme.example"


async def test_unchanged_directory_is_not_loaded_again(rt) -> None:  # type: ignore[no-untyped-def]
    first = await IdentityResolver.current(rt.db)
    assert await IdentityResolver.current(rt.db) is first
    # Columns attribution does not read leave the cache alone, as does a same-value sync
    # of nothing at all (no statement touches the watched columns).
    async with rt.db.session() as s:
        await s.execute(update(Person).where(Person.email == EMAIL)
                        .values(slack_user_id="U0CACHE", tips_enabled=False))
    assert await IdentityResolver.current(rt.db) is first


async def test_a_team_move_is_seen_by_the_next_ingest(rt) -> None:  # type: ignore[no-untyped-def]
    await write(rt, [record(rt, EMAIL, date(2026, 11, 3))])  # warms the cache
    async with rt.db.session() as s:
        other = await s.scalar(select(Team.id).where(Team.key != (
            select(Team.key).join(Person, Person.team_id == Team.id)
            .where(Person.email == EMAIL).scalar_subquery())).limit(1))
        await s.execute(update(Person).where(Person.email == EMAIL).values(team_id=other))
    await write(rt, [record(rt, EMAIL, date(2026, 11, 4))])
    async with rt.db.reader() as s:
        teams = (await s.execute(select(UsageRecord.day, UsageRecord.team_id)
                                 .order_by(UsageRecord.day))).all()
    assert teams[1].team_id == other != teams[0].team_id


async def test_new_people_and_new_identities_attribute_at_once(rt) -> None:  # type: ignore[no-untyped-def]
    newcomer = "new.hire@acme.example"
    await write(rt, [record(rt, newcomer, date(2026, 11, 3))])
    before = await IdentityResolver.current(rt.db)
    async with rt.db.session() as s:
        await s.execute(insert(Person).values(email=newcomer, name="New Hire"))
    after_person = await IdentityResolver.current(rt.db)
    assert after_person is not before and newcomer in after_person.people
    async with rt.db.session() as s:
        pid = await s.scalar(select(Person.id).where(Person.email == EMAIL))
        await s.execute(insert(Identity).values(kind="openai:api_keys", value="key_cache",
                                                person_id=pid, origin="discovered"))
    after_key = await IdentityResolver.current(rt.db)
    assert after_key is not after_person
    assert after_key.identities[("openai:api_keys", "key_cache")][0] == pid
    async with rt.db.session() as s:
        await s.execute(update(Identity).where(Identity.value == "key_cache")
                        .values(person_id=None))
    assert (await IdentityResolver.current(rt.db)).identities[
        ("openai:api_keys", "key_cache")][0] is None


async def test_directory_sync_reloads_it(rt) -> None:  # type: ignore[no-untyped-def]
    first = await IdentityResolver.current(rt.db)
    await sync_directory(rt)
    assert await IdentityResolver.current(rt.db) is not first
