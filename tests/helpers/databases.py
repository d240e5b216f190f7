"""Throwaway databases: a migrated template per backend, copied for each test.

PostgreSQL must be reachable at 127.0.0.1:5432 (trust auth); the suite fails loudly if it
is not, rather than skipping half the tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parents[2]


def pg_url(name: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


def migrate(url: str) -> None:
    """Migrate through the real CLI, in a subprocess (its own event loop and logging)."""
    env = dict(os.environ, DATABASE_URL=url)
    result = subprocess.run([sys.executable, "-m", "bot", "db", "upgrade"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=180)
    if result.returncode != 0:
        raise RuntimeError(f"migration failed for {url}:\n{result.stdout}\n{result.stderr}")


async def pg_reachable() -> str | None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def pg_create_from(template: str) -> str:
    name = f"tc_t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    return name


async def pg_drop(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def sqlite_copy(template: Path, dest_dir: Path) -> str:
    dest = dest_dir / "tokencoach.db"
    shutil.copyfile(template, dest)
    return f"sqlite+aiosqlite:///{dest}"
