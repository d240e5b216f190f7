"""The HTTP skeleton: health, metrics, errors without stack traces, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.server import build_app
from tests.helpers.cli import REPO, tokencoach
from tests.helpers.server import free_port, serving


async def test_healthz_and_metrics(rt) -> None:  # type: ignore[no-untyped-def]
    app = build_app(rt, background=False)
    async with serving(app) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["db"] == "ok" and body["dialect"] == rt.db.dialect
            assert resp.headers["X-Request-Id"]
        async with http.get(f"{base}/metrics") as resp:
            text = await resp.text()
            assert resp.status == 200
            assert "tokencoach_http_requests_total" in text
            assert "tokencoach_outbox_depth" in text
        async with http.get(f"{base}/no/such/path") as resp:
            assert resp.status == 404


async def test_healthz_reports_unreachable_database(make_runtime, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from bot.config.env import Env

    rt = await make_runtime(sync=False, env=Env(
        database_url="postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"))
    app = build_app(rt, background=False, chat=False)
    async with serving(app) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 503
            assert (await resp.json())["db"] == "unreachable"


@pytest.mark.slow
def test_serve_process_answers_and_stops_gracefully(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/serve.db"
    assert tokencoach("db", "upgrade", database_url=url).returncode == 0
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "MICROSOFT_", "TOKENCOACH_"))}
    env.update(DATABASE_URL=url, TOKENCOACH_CONFIG=str(REPO / "app.yaml"))
    proc = subprocess.Popen([sys.executable, "-m", "bot", "serve", "--port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.time() + 30
        status = None
        while time.time() < deadline and status != 200:
            try:
                status = asyncio.run(_get_status(f"http://127.0.0.1:{port}/healthz"))
            except aiohttp.ClientError:
                time.sleep(0.2)
        assert status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert "Traceback" not in err, err


async def _get_status(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status


async def test_stopping_waits_for_a_running_job_instead_of_cancelling_it(
        rt, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM while the start-up catch-up holds a transaction: the job finishes, its claim
    is recorded, nothing is logged as an error (a cancelled rollback once was)."""
    from datetime import timedelta

    from sqlalchemy import select, text

    import jobs  # noqa: F401  (the real jobs register first; the test replaces them)
    from bot.scheduling import registry
    from bot.scheduling.registry import JobSpec, Occurrence
    from bot.server import Background
    from bot.store.tables import JobClaim

    inside = asyncio.Event()
    finished: list[str] = []

    async def slow(rt_, occ: Occurrence) -> dict[str, int]:
        async with rt_.db.session() as s:
            await s.execute(text("SELECT 1"))
            inside.set()
            await asyncio.sleep(0.5)
            await s.execute(text("SELECT 1"))
        finished.append(occ.period)
        return {"rows": 1}

    async def due(rt_, at):  # type: ignore[no-untyped-def]
        return [Occurrence(period="p1", due_at=at)]

    spec = JobSpec(name="slow-test-job", description="", func=slow, due=due,
                   lease=timedelta(minutes=1))
    monkeypatch.setattr(registry, "_REGISTRY", {spec.name: spec})
    caplog.set_level(logging.DEBUG)
    bg = Background(rt)
    await bg.start()
    await asyncio.wait_for(inside.wait(), timeout=10)
    await bg.stop()
    await rt.db.dispose()
    assert finished == ["p1"]
    async with rt.db.reader() as s:
        assert await s.scalar(select(JobClaim.status).where(JobClaim.job == spec.name)) == "done"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.3, 0.8])
async def test_sigterm_at_any_moment_after_start_is_clean(rt, delay: float) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers.processes import clean_env, serve_process

    async with serve_process(clean_env(DATABASE_URL=rt.env.database_url)) as (_, proc):
        await asyncio.sleep(delay)  # the start-up catch-up is running its jobs
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert code == 0, err
    assert "Traceback" not in err and " ERROR " not in err, err
