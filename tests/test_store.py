"""Schema, migrations and the refusal to run on an unmigrated database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.config.env import Env
from bot.store import Database, NotMigratedError
from bot.store.migrate import head_revision
from bot.store.tables import Person, Team
from tests.helpers import databases
from tests.helpers.cli import tokencoach


async def test_template_is_at_head(rt) -> None:  # type: ignore[no-untyped-def]
    assert await rt.db.current_revision() == head_revision()
    await rt.db.ensure_migrated()


async def test_directory_sync_is_idempotent(rt) -> None:  # type: ignore[no-untyped-def]
    from bot.directory import sync_directory

    stats = await sync_directory(rt)
    assert stats["people_added"] == 0 and stats["teams_added"] == 0
    async with rt.db.reader() as s:
        assert await s.scalar(select(func.count()).select_from(Person)) == 30
        assert await s.scalar(select(func.count()).select_from(Team)) == 3
        priya = await s.scalar(select(Person).where(Person.email == "priya.raman@acme.example"))
        tomas = await s.scalar(select(Person).where(Person.email == "tomas.novak@acme.example"))
        assert tomas.manager_id == priya.id
        dana = await s.scalar(select(Person).where(Person.email == "dana.okafor@acme.example"))
        assert dana.is_admin and not tomas.is_admin


async def test_unmigrated_sqlite_is_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    with pytest.raises(NotMigratedError, match="tokencoach db upgrade"):
        await db.ensure_migrated()
    await db.dispose()


async def test_unmigrated_postgres_is_refused_and_upgrade_creates_it() -> None:
    name = "tc_t_empty_probe"
    await databases.pg_drop(name)
    url = databases.pg_url(name)
    # `serve` on a database that does not exist yet: a clear message, exit 2.
    served = tokencoach("serve", "--port", "0", database_url=url, timeout=60)
    assert served.returncode == 2
    assert "Cannot reach the database" in served.stderr or "db upgrade" in served.stderr
    # `db upgrade` creates the database and migrates it.
    upgraded = tokencoach("db", "upgrade", database_url=url, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    db = Database(url)
    try:
        await db.ensure_migrated()
    finally:
        await db.dispose()
        await databases.pg_drop(name)


def test_serve_refuses_empty_sqlite(tmp_path: Path) -> None:
    result = tokencoach("serve", "--port", "0", database_url=f"sqlite:///{tmp_path}/e.db",
                        timeout=60)
    assert result.returncode == 2
    assert "run `tokencoach db upgrade` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_normalizes_urls() -> None:
    env = Env.from_environ({"DATABASE_URL": "postgresql://u@h/d"})
    assert env.database_url == "postgresql+asyncpg://u@h/d"
    assert Env.from_environ({}).database_url == "sqlite+aiosqlite:///./tokencoach.db"
