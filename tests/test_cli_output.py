"""What the CLI prints: the audit log names who did what and where, every table is readable
at 80 columns with no number cut, errors name the real problem, and commands print each
thing once. The real `tokencoach` in a subprocess, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import subprocess
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bot.approvals import flow
from bot.directory import person_by_email
from bot.money import fmt_usd
from bot.nudges.audit import audit_usage
from bot.runtime import Runtime
from bot.scheduling.runner import run_job
from bot.store.tables import AuditEntry
from bot.timeutil import utcnow
from handlers import handle_command
from handlers.context import Actor, Ctx
from tests.helpers.cli import tokencoach
from tests.helpers.crafted import record, write

TOMAS = "tomas.novak@acme.example"
PRIYA = "priya.raman@acme.example"
DANA = "dana.okafor@acme.example"  # an admin
OMAR = "omar.haddad@acme.example"
MAYA = "maya.rossi@acme.example"  # growth
DAVID = "david.osei@acme.example"  # support


async def cli(rt: Runtime, *args: str, columns: int = 80,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(tokencoach, *args, database_url=rt.env.database_url,
                                   env={"COLUMNS": str(columns)}, cwd=cwd)


def fits(text: str, columns: int) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > columns]
    assert not too_wide, "\n".join(too_wide)
    assert "…" not in text, text  # rich's mark for a cut cell


def header_cells(table_text: str) -> list[list[str]]:
    """The header cells of each table in ``table_text`` (multi-line headers joined)."""
    out = []
    for block in re.findall(r"┏[^\n]*\n(.*?)\n┡", table_text, re.S):
        rows = [[c.strip() for c in line.strip("┃").split("┃")] for line in block.splitlines()]
        out.append([" ".join(filter(None, parts)) for parts in zip(*rows, strict=True)])
    return out


async def people(rt: Runtime, *emails: str) -> list:  # type: ignore[type-arg]
    async with rt.db.reader() as s:
        found = [await person_by_email(s, e) for e in emails]
    assert all(found)
    return found


# --- the audit log (item 4) -------------------------------------------------------------


async def audited_history(rt: Runtime) -> None:
    """A request from Slack, decided in Teams, a reminder from the scheduler, and an admin
    looking at someone's balance in the playground: the rows store ids only."""
    tomas, priya, omar, dana = await people(rt, TOMAS, PRIYA, OMAR, DANA)
    req = await flow.create(rt, tomas, amount="300", purpose="Build an agent that triages bugs",
                            platform="slack")
    await flow.decide(rt, priya, f"{req.id}:1", approve=True, platform="teams")
    await flow.create(rt, omar, amount="120", purpose="A research agent that cites sources",
                      platform="playground")
    await run_job(rt.frozen_at(rt.now() + timedelta(hours=25)), "approvals")  # a reminder
    actor = Actor(person=dana, platform="playground", platform_user_id=str(dana.id))
    await handle_command(Ctx(rt, actor), f"admin balance {TOMAS}")


async def test_audit_names_who_did_what_and_where(rt: Runtime) -> None:
    await audited_history(rt)
    async with rt.db.reader() as s:
        stored = list((await s.execute(select(AuditEntry.actor, AuditEntry.subject))).all())
    assert ("teams", "sandbox_request:1") in stored  # ids are what the log keeps

    wide = await cli(rt, "audit", columns=220)
    assert wide.returncode == 0, wide.stderr
    lines = {line.split("│")[2].strip(): line for line in wide.stdout.splitlines()
             if line.startswith("│") and line.split("│")[2].strip()}
    assert "Tomás Novák <tomas.novak@acme.example> via slack" in lines["sandbox.requested"] \
        or "Omar Haddad <omar.haddad@acme.example> via playground" in lines["sandbox.requested"]
    granted = lines["sandbox.granted"]
    assert "Priya Raman <priya.raman@acme.example> via teams" in granted
    assert "request #1 by Tomás Novák <tomas.novak@acme.example>" in granted
    assert "amount $300" in granted
    reminded = lines["sandbox.reminded"]
    assert "tokencoach (scheduled job)" in reminded
    assert "approver Priya Raman <priya.raman@acme.example>" in reminded
    viewed = lines["admin.viewed_balance"]
    assert "Dana Okafor <dana.okafor@acme.example> via playground" in viewed
    assert "Tomás Novák <tomas.novak@acme.example>" in viewed
    for raw in ("person:", "sandbox_request:", '{"', "playground:"):
        assert raw not in wide.stdout, raw

    narrow = await cli(rt, "audit", columns=80)
    assert narrow.returncode == 0, narrow.stderr
    fits(narrow.stdout, 80)
    for action in ("sandbox.requested", "sandbox.granted", "sandbox.reminded",
                   "admin.viewed_balance"):
        assert action in narrow.stdout  # whole, never cut

    mine = await cli(rt, "audit", "--person", OMAR, columns=220)
    assert "A research" not in mine.stdout  # purposes are not in the log
    assert "request #2 by Omar Haddad" in mine.stdout and "request #1" not in mine.stdout


async def test_audit_since_takes_the_forms_people_type(rt: Runtime) -> None:
    rt.clock.set(utcnow())  # type: ignore[attr-defined]  # the CLI reads the real clock
    await audited_history(rt)
    days_ago = (utcnow() - timedelta(days=3)).date().isoformat()
    for since in ("yesterday", "7d", "12h", days_ago, f"{days_ago}T09:00"):
        result = await cli(rt, "audit", "--since", since, columns=220)
        assert result.returncode == 0, (since, result.stderr)
        assert "sandbox.granted" in result.stdout, since
    bad = await cli(rt, "audit", "--since", "last tuesday")
    assert bad.returncode == 2
    assert "Invalid value for --since" in bad.stderr and "--at" not in bad.stderr
    assert "yesterday" in bad.stderr and "7d" in bad.stderr
    nobody = await cli(rt, "audit", "--person", "nobody@acme.example")
    assert nobody.returncode == 2 and "No person 'nobody@acme.example'" in nobody.stderr


# --- audit-usage (item 8) ---------------------------------------------------------------


async def spread(rt: Runtime) -> None:
    """Spend in four categories over the last 17 days (of the real clock, which the CLI
    reads)."""
    rt.clock.set(utcnow())  # type: ignore[attr-defined]
    today = utcnow().date()
    recs = []
    for i in range(20):
        day = today - timedelta(days=1 + i % 17)
        recs.append(record(rt, TOMAS, day, cost="412.37", category="agentic"))
        recs.append(record(rt, OMAR, day, cost="98.15", category="summarization"))
        recs.append(record(rt, MAYA, day, cost="77.01", category="writing"))
        recs.append(record(rt, DAVID, day, cost="55.55", category="chat"))
    await write(rt, recs)


async def test_audit_usage_is_readable_at_80_columns(rt: Runtime) -> None:
    await spread(rt)
    report = await audit_usage(rt, since=utcnow().date() - timedelta(days=28))
    narrow = await cli(rt, "audit-usage", columns=80)
    assert narrow.returncode == 0, narrow.stderr
    fits(narrow.stdout, 80)
    for row in [*report.teams, report.org]:
        assert fmt_usd(row.spend) in narrow.stdout  # every amount in full
    for header in header_cells(narrow.stdout):
        assert len(header) == len(set(header)), header
    assert "Effect of the tips: not measurable yet" in narrow.stdout

    wide = await cli(rt, "audit-usage", columns=200)
    fits(wide.stdout, 200)
    [grid, _people] = header_cells(wide.stdout)
    assert grid.count("agentic") == 1 and "agentic share" not in grid  # the same figure
    assert {"agentic", "summarization", "writing", "chat", "low-value share"} <= set(grid)


async def test_audit_usage_names_an_unknown_team(rt: Runtime) -> None:
    await spread(rt)
    result = await cli(rt, "audit-usage", "--team", "nosuch")
    assert result.returncode == 2
    assert "No such team 'nosuch'" in result.stderr
    known = await cli(rt, "audit-usage", "--team", "growth", "--since", "30d")
    assert known.returncode == 0, known.stderr
    assert "Growth Marketing" in known.stdout and "Platform Engineering" not in known.stdout


# --- jobs and digests (item 8) ----------------------------------------------------------


async def test_run_due_reports_each_job_once_and_logs_only_warnings(rt: Runtime) -> None:
    await spread(rt)
    result = await cli(rt, "jobs", "run-due", "--at", "2030-01-07T09:30", "--no-deliver")
    assert result.returncode == 0, result.stderr
    ran = [line for line in result.stdout.splitlines() if ": ran" in line]
    assert len(ran) >= 4
    periods = [line.split(":")[0] for line in ran]
    assert len(periods) == len(set(periods)), result.stdout
    assert result.stderr == ""  # no second, JSON copy of each line


async def test_digest_dry_run_errors_and_where_the_charts_go(rt: Runtime,
                                                             tmp_path: Path) -> None:
    await spread(rt)
    missing = await cli(rt, "digest", "--dry-run", "--out", "/nonexistent")
    assert missing.returncode == 2
    assert "'/nonexistent' does not exist" in missing.stderr
    assert "database" not in missing.stderr

    workdir = tmp_path / "here"
    workdir.mkdir()
    result = await cli(rt, "digest", "--dry-run", "--team", "platform", "--at",
                       "2026-11-23T09:30", cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert list(workdir.iterdir()) == []  # nothing left in the working directory
    [where] = re.findall(r"charts written to (\S+)", result.stdout)
    png = Path(where) / "digest-platform-2026-W48.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and str(png) in result.stdout
