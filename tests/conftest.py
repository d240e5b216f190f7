"""Fixtures: every store test runs on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import AppConfig, load_config
from bot.config.env import Env
from bot.directory import sync_directory
from bot.runtime import Runtime
from bot.store import Database
from tests.helpers import databases
from tests.helpers.clock import FakeClock

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A migrated template database per backend (migrated once per session)."""
    problem = asyncio.run(databases.pg_reachable())
    if problem:
        pytest.exit(f"PostgreSQL is not reachable at 127.0.0.1:5432 ({problem}). "
                    "`make test` starts it; the suite does not skip PostgreSQL.", returncode=3)
    sqlite_template = tmp_path_factory.mktemp("template") / "template.db"
    databases.migrate(f"sqlite+aiosqlite:///{sqlite_template}")
    pg_name = f"tc_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    databases.migrate(databases.pg_url(pg_name))
    yield {"sqlite": str(sqlite_template), "postgresql": pg_name}
    asyncio.run(databases.pg_drop(pg_name))


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind() -> Iterator[None]:
    """The suite must leave no process behind (a parse worker orphaned by a kill -9 once
    did): at the end, any process of this session and venv started during the run and
    still running is killed and reported."""
    import signal
    import sys
    import time

    from tests.helpers.processes import alive, command_line, ours

    before = set(ours(sys.executable))
    yield
    # multiprocessing's resource tracker for this very process ends when it does.
    from multiprocessing import resource_tracker

    before.add(getattr(resource_tracker._resource_tracker, "_pid", None) or 0)
    deadline = time.monotonic() + 15  # a worker notices its parent's death within moments
    while True:
        left = [p for p in ours(sys.executable)
                if p not in before and p != os.getpid() and alive(p)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    described = [(p, command_line(p)[:160]) for p in left]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"the tests left processes behind (now killed): {described}"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db_url(backend: str, templates: dict[str, str], tmp_path: Path) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield databases.sqlite_copy(Path(templates["sqlite"]), tmp_path)
        return
    name = await databases.pg_create_from(templates["postgresql"])
    try:
        yield databases.pg_url(name)
    finally:
        await databases.pg_drop(name)


@pytest.fixture(scope="session")
def base_config() -> AppConfig:
    return load_config(REPO / "app.yaml")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def with_overrides(config: AppConfig, **sections: dict[str, Any]) -> AppConfig:
    """A copy of ``config`` with sections partly replaced: with_overrides(c, nudges={...})."""
    data = config.model_dump(mode="json", exclude={"base_dir"})
    for section, values in sections.items():
        if isinstance(data.get(section), dict) and isinstance(values, dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    return AppConfig.model_validate(data).model_copy(update={"base_dir": config.base_dir})


@pytest.fixture
async def make_runtime(
    db_url: str, base_config: AppConfig, clock: FakeClock
) -> AsyncIterator[Callable[..., Any]]:
    created: list[Runtime] = []

    async def make(config: AppConfig | None = None, env: Env | None = None,
                   sync: bool = True, **env_fields: Any) -> Runtime:
        env = env or Env(database_url=db_url, **env_fields)
        rt = Runtime(config=config or base_config, env=env, db=Database(env.database_url),
                     clock=clock)
        created.append(rt)
        if sync:
            await sync_directory(rt)
        return rt

    yield make
    for runtime in created:
        await runtime.close()


@pytest.fixture
async def rt(make_runtime: Callable[..., Any]) -> Runtime:
    """A runtime on a fresh database with the demo org's directory synced."""
    return await make_runtime()


# --- Slack ---------------------------------------------------------------------------


@pytest.fixture
async def fake_slack(base_config: AppConfig) -> AsyncIterator[Any]:
    from tests.fakes.slack import FakeSlack
    from tests.helpers.server import serving

    fake = FakeSlack(users={f"U{i:04d}{p.email.split('.')[0][:4].upper()}": p.email
                            for i, p in enumerate(base_config.directory.people)})
    async with serving(fake.app()) as base:
        fake.base_url = base
        yield fake


@pytest.fixture
async def slack_bot(make_runtime: Callable[..., Any], fake_slack: Any) -> AsyncIterator[Any]:
    """The real server with Slack configured against the fake Web API."""
    import aiohttp

    from bot.server import build_app
    from tests.helpers.server import serving
    from tests.helpers.slack import SECRET, TOKEN, SlackClient

    rt = await make_runtime(slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=f"{fake_slack.base_url}/api/")
    app = build_app(rt, background=False)
    async with serving(app) as base, aiohttp.ClientSession() as http:
        yield SlackBot(rt=rt, base=base, fake=fake_slack,
                       client=SlackClient(http, base, fake_slack.base_url), http=http)


class SlackBot:
    def __init__(self, *, rt: Runtime, base: str, fake: Any, client: Any, http: Any):
        self.rt, self.base, self.fake, self.client, self.http = rt, base, fake, client, http

    def uid(self, email: str) -> str:
        return str(self.fake.user_id(email))

    async def deliver(self) -> Any:
        from bot.outbox import drain

        return await drain(self.rt)
