"""Two real `tokencoach worker` processes share one PostgreSQL queue of vendor writes:
each write reaches Claude Enterprise exactly once (the vendor-ops sender runs where the
outbox sender runs)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import yaml
from sqlalchemy import select

from bot.config import load_config
from bot.config.env import Env
from bot.enforcement import grants
from bot.store.tables import VendorOp
from tests.fakes.claude_enterprise import FakeClaudeEnterprise
from tests.helpers.cli import REPO
from tests.helpers.processes import clean_env, wait_healthy
from tests.helpers.server import free_port, serving
from tests.test_enforcement import grant_for

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgresql"])]


async def test_two_worker_processes_make_each_vendor_write_once(  # type: ignore[no-untyped-def]
        make_runtime, db_url, clock, tmp_path) -> None:
    clock.set(datetime.now(UTC))  # the workers run on the real clock
    data = yaml.safe_load((REPO / "app.yaml").read_text())
    people = [p["email"] for p in data["directory"]["people"] if p.get("manager")][:12]
    fake = FakeClaudeEnterprise(tier_amounts={"enterprise_standard": "150000"})
    for i, email in enumerate(people):
        fake.add_member(f"user_03{i:04d}", email, email.split("@")[0])
    async with serving(fake.app()) as base:
        data["enforcement"]["claude_enterprise"].update(enabled=True, base_url=base,
                                                       key_env="CE_KEY")
        config = tmp_path / "app.yaml"
        config.write_text(yaml.safe_dump(data, allow_unicode=True))
        rt = await make_runtime(config=load_config(config), env=Env(
            database_url=db_url, source={"CE_KEY": "sk-ant-admin-rw"}))
        made = [await grant_for(rt, email, "100") for email in people]
        async with rt.db.session() as s:
            for grant in made:
                await grants.apply_grant(s, rt, grant, actor="test")
        env = clean_env(DATABASE_URL=db_url, TOKENCOACH_CONFIG=str(config),
                        CE_KEY="sk-ant-admin-rw")
        ports = [free_port(), free_port()]
        procs = [subprocess.Popen([sys.executable, "-m", "bot", "worker", "--port", str(port)],
                                  cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for port in ports]
        try:
            for port, proc in zip(ports, procs, strict=True):
                await wait_healthy(f"http://127.0.0.1:{port}", proc)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(fake.writes()) < len(people):
                await asyncio.sleep(0.25)
            await asyncio.sleep(3)  # time for a would-be duplicate to show up
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=20)
    posts = Counter(b["scope"]["user_id"] for m, _, b in fake.writes() if m == "POST")
    assert len(posts) == len(people) and set(posts.values()) == {1}
    assert all(fake.effective_amount(f"user_03{i:04d}") == "160000" for i in range(len(people)))
    async with rt.db.reader() as s:
        statuses = (await s.scalars(select(VendorOp.status).where(
            VendorOp.subject.like("sandbox_grant:%")))).all()
    assert sorted(statuses) == ["done"] * len(people)
