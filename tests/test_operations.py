"""Operations: logs (structured, request ids, no secrets), metrics, rate limits,
retention that keeps monthly figures exact, and `tokencoach check`."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from datetime import date, timedelta

import aiohttp
import pytest
from sqlalchemy import func, select

from bot import ledger
from bot.directory import person_by_email
from bot.logs import JsonFormatter, RedactSecrets
from bot.scheduling.runner import run_job
from bot.store.tables import UsageDaily, UsageRecord
from tests.conftest import with_overrides
from tests.helpers.cli import REPO, tokencoach
from tests.helpers.crafted import record, write
from tests.helpers.processes import clean_env, wait_healthy
from tests.helpers.server import free_port
from tests.helpers.slack import SECRET, TOKEN, SlackClient, block_texts

SECRETS = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
           "TOKENCOACH_INGEST_TOKEN": "ingest-secret-7f3a9c",
           "OPENAI_ADMIN_KEY": "sk-admin-very-secret-key-42",
           "MICROSOFT_APP_PASSWORD": "teams-password-secret-99"}


def test_redaction_filter_scrubs_messages_and_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets(SECRETS.values()))
    logger = logging.getLogger("test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("auth failed with %s", SECRETS["OPENAI_ADMIN_KEY"],
                       extra={"headers": {"Authorization": f"Bearer {TOKEN}"}})
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "[redacted]" in out
    assert not [v for v in SECRETS.values() if v in out]


@pytest.mark.slow
async def test_a_served_bot_logs_json_with_request_ids_and_no_secrets(rt, fake_slack,  # type: ignore[no-untyped-def]
                                                                     tmp_path) -> None:
    port = free_port()
    env = clean_env(DATABASE_URL=rt.env.database_url, SLACK_API_URL=f"{fake_slack.base_url}/api/",
                    **SECRETS)
    log_path = tmp_path / "serve.log"
    log_file = log_path.open("w")  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen([sys.executable, "-m", "bot", "--log-level", "DEBUG", "serve",
                             "--port", str(port), "--no-scheduler"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=log_file, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base, proc)
        async with aiohttp.ClientSession() as http:
            client = SlackClient(http, base, fake_slack.base_url)
            await client.command(fake_slack.user_id("tomas.novak@acme.example"), "")
            await client.command(fake_slack.user_id("tomas.novak@acme.example"),
                                 f"sandbox 5 {SECRETS['OPENAI_ADMIN_KEY']} in my purpose text")
            for token in ("wrong", SECRETS["TOKENCOACH_INGEST_TOKEN"]):
                async with http.post(f"{base}/ingest/usage", data=b"[{}]", headers={
                        "Authorization": f"Bearer {token}", "X-Request-Id": "req-abc-123"}) as r:
                    assert r.headers["X-Request-Id"] == "req-abc-123"
            async with http.get(f"{base}/no/such/thing") as r:
                assert r.status == 404
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log_file.close()
    err = log_path.read_text()
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(line) for line in lines)
    leaked = [name for name, value in SECRETS.items() if value in err]
    assert leaked == [], leaked
    assert "Traceback" not in err


async def test_commands_are_rate_limited_politely(make_runtime, fake_slack, base_config) -> None:  # type: ignore[no-untyped-def]
    from bot.metrics import RATE_LIMITED
    from bot.server import build_app
    from tests.helpers.server import serving

    cfg = with_overrides(base_config, server={"commands_per_minute": 5})
    rt = await make_runtime(config=cfg, slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=f"{fake_slack.base_url}/api/")
    before = RATE_LIMITED.labels("slack")._value.get()
    async with serving(build_app(rt, background=False)) as base, aiohttp.ClientSession() as http:
        client = SlackClient(http, base, fake_slack.base_url)
        answers = []
        for _ in range(7):
            status, body = await client.command(fake_slack.user_id("aisha.bello@acme.example"))
            assert status == 200
            answers.append(" ".join(block_texts(body["blocks"])))
        # Someone else is not slowed down by Aisha.
        _, other = await client.command(fake_slack.user_id("grace.kim@acme.example"))
        async with http.get(f"{base}/metrics") as resp:
            metrics = await resp.text()
    assert sum("sending commands quickly" in a for a in answers) == 2
    assert "Your AI budget" in " ".join(block_texts(other["blocks"]))
    assert RATE_LIMITED.labels("slack")._value.get() == before + 2
    for name in ("tokencoach_command_seconds_bucket", "tokencoach_outbox_depth",
                 "tokencoach_outbox_oldest_pending_seconds", "tokencoach_http_requests_total",
                 "tokencoach_rate_limited_total"):
        assert name in metrics, name


async def test_metrics_cover_jobs_and_ingest_lag(rt) -> None:  # type: ignore[no-untyped-def]
    from bot.metrics import REGISTRY
    from bot.server import build_app
    from bot.usage.state import record_success
    from tests.helpers.server import serving

    async with rt.db.session() as s:
        await record_success(s, "openai", now=rt.now(), data_as_of=rt.now() - timedelta(hours=3))
    await run_job(rt, "retention")
    async with serving(build_app(rt, background=False)) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/metrics") as resp:
            text = await resp.text()
    assert 'tokencoach_job_runs_total{job="retention",result="ok"}' in text
    lag = REGISTRY.get_sample_value("tokencoach_ingest_lag_seconds", {"source": "openai"})
    assert lag == pytest.approx(3 * 3600, abs=5)


async def test_retention_deletes_raw_rows_but_keeps_monthly_figures_exact(make_runtime,
                                                                         base_config) -> None:  # type: ignore[no-untyped-def]
    # Written under the default 400-day window; then the admin shortens it to 60 days.
    writer_rt = await make_runtime()
    email = "omar.haddad@acme.example"
    old = [record(writer_rt, email, date(2026, 8, 10 + i), cost=f"{10 + i}.25") for i in range(5)]
    recent = [record(writer_rt, email, date(2026, 11, 2 + i), cost="3.50") for i in range(5)]
    await write(writer_rt, old + recent)
    rt = await make_runtime(config=with_overrides(base_config, retention={"raw_usage_days": 60}),
                            sync=False)
    async with rt.db.reader() as s:
        person = await person_by_email(s, email)
        before = await ledger.history(rt, s, person, months=6)
    outcome = await run_job(rt, "retention")
    assert outcome[0].result["usage_records"] == 5
    async with rt.db.reader() as s:
        assert await s.scalar(select(func.count()).select_from(UsageRecord)) == 5
        assert await s.scalar(select(func.count()).select_from(UsageDaily)) == 10
        after = await ledger.history(rt, s, person, months=6)
    assert [(m.month.key, m.spent) for m in after] == [(m.month.key, m.spent) for m in before]
    assert next(m for m in after if m.month.key == "2026-08").spent == 61_250_000
    # Re-ingesting the deleted window is refused, so a day can't be half-restored.
    from bot.usage.writer import UsageWriter

    stats = await (await UsageWriter.create(rt)).write(old)
    assert stats.rejected == 5 and stats.new == 0


async def test_check_reports_each_credential(rt, fake_slack, tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": f"{fake_slack.base_url}/api/"}
    result = await asyncio.to_thread(tokencoach, "check", database_url=rt.env.database_url,
                                     env=good)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "slack: workspace 'Acme' as 'tokencoach'" in result.stdout
    assert "webhook: TOKENCOACH_INGEST_TOKEN is not set" in result.stdout
    bad = dict(good, SLACK_BOT_TOKEN="xoxb-wrong")
    result = await asyncio.to_thread(tokencoach, "check", database_url=rt.env.database_url,
                                     env=bad)
    assert result.returncode == 1 and "slack: " in result.stdout and "invalid_auth" in result.stdout
    empty = await asyncio.to_thread(tokencoach, "check", "--offline",
                                    database_url=f"sqlite:///{tmp_path}/none.db")
    assert empty.returncode == 1 and "database: FAIL" not in empty.stdout
    assert "tokencoach db upgrade" in empty.stdout
