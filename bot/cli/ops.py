"""`jobs`, `check`, `audit`."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from bot.cli.common import at_option, console, err_console, run, runtime
from bot.runtime import Runtime
from bot.scheduling.runner import RunOutcome


@click.group()
def jobs() -> None:
    """Scheduled jobs: list them, run one, or run everything that is due."""


@jobs.command("list")
def jobs_list() -> None:
    """List jobs and what they do."""
    from bot.scheduling.registry import all_jobs

    table = Table("job", "what it does")
    for name, spec in sorted(all_jobs().items()):
        table.add_row(name, spec.description)
    console.print(table)


async def _deliver(rt: Runtime) -> str:
    from bot import outbox
    from bot.enforcement.ops import drain as send_vendor_ops
    from bot.platforms import attach_deliverers

    attach_deliverers(rt)
    vendor = (await send_vendor_ops(rt)).as_dict()  # may queue admin alerts: before the outbox
    stats = await outbox.drain(rt)
    return (f"outbox: sent {stats.sent}, retrying {stats.retried}, failed {stats.failed}"
            + (f"; vendor ops: {vendor}" if vendor else ""))


def _print_outcomes(outcomes: list[RunOutcome]) -> int:
    if not outcomes:
        console.print("nothing due")
    failed = 0
    for o in outcomes:
        if not o.ran:
            console.print(f"{o.job} {o.period}: skipped (already claimed or done)")
        elif o.ok:
            late = " (late)" if o.late else ""
            console.print(f"{o.job} {o.period}: ran{late} {o.result or ''}")
        else:
            failed += 1
            err_console.print(f"{o.job} {o.period}: failed: {o.error}")
    return 1 if failed else 0


@jobs.command("run")
@click.argument("name")
@click.option("--at", "at_text", help="Run as if it were this time (ISO; default now).")
@click.option("--deliver/--no-deliver", default=True, help="Send queued messages afterwards.")
@click.pass_context
def jobs_run(ctx: click.Context, name: str, at_text: str | None, deliver: bool) -> None:
    """Run job NAME for its period at --at (each period runs at most once)."""
    from bot.scheduling.registry import all_jobs
    from bot.scheduling.runner import run_job

    if name not in all_jobs():
        err_console.print(
            f"[bold red]No job named {name!r}.[/] Known: {', '.join(sorted(all_jobs()))}"
        )
        sys.exit(2)
    rt = runtime(ctx)
    at = at_option(at_text, rt)

    async def go() -> int:
        try:
            await rt.db.ensure_migrated()
            outcomes = await run_job(rt, name, at)
            code = _print_outcomes(outcomes)
            if deliver:
                console.print(await _deliver(rt.frozen_at(at) if at else rt))
            return code
        finally:
            await rt.close()

    sys.exit(run(go()))


@jobs.command("run-due")
@click.option("--at", "at_text", help="Run as if it were this time (ISO; default now).")
@click.option("--deliver/--no-deliver", default=True, help="Send queued messages afterwards.")
@click.pass_context
def jobs_run_due(ctx: click.Context, at_text: str | None, deliver: bool) -> None:
    """Run every job that is due (for cron-driven deployments and tests)."""
    from bot.scheduling.runner import run_due

    rt = runtime(ctx)
    at = at_option(at_text, rt)

    async def go() -> int:
        try:
            await rt.db.ensure_migrated()
            code = _print_outcomes(await run_due(rt, at))
            if deliver:
                console.print(await _deliver(rt.frozen_at(at) if at else rt))
            return code
        finally:
            await rt.close()

    sys.exit(run(go()))


@click.command()
@click.option("--offline", is_flag=True, help="Only validate files and the database; no network.")
@click.pass_context
def check(ctx: click.Context, offline: bool) -> None:
    """Validate app.yaml, the database and every configured credential."""
    from bot.checks import run_checks

    rt = runtime(ctx)  # a config error exits here with the key and line

    async def go() -> int:
        try:
            results = await run_checks(rt, offline=offline)
        finally:
            await rt.close()
        bad = 0
        for result in results:
            mark = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
            console.print(f"{mark[result.status]:>14}  {result.name}: {result.detail}")
            bad += result.status == "fail"
        return 1 if bad else 0

    sys.exit(run(go()))


@click.command()
@click.option("--person", help="Only entries by or about this email.")
@click.option("--since", help="Only entries at or after this time (ISO).")
@click.option("--limit", type=int, default=200, show_default=True)
@click.pass_context
def audit(ctx: click.Context, person: str | None, since: str | None, limit: int) -> None:
    """Print the audit log (append-only record of every decision and refusal)."""
    from bot.audit import read_audit

    rt = runtime(ctx)
    start = at_option(since, rt)

    async def go() -> int:
        try:
            rows = await read_audit(rt, person=person, since=start, limit=limit)
        finally:
            await rt.close()
        table = Table("when", "who", "action", "subject", "detail")
        for row in rows:
            table.add_row(
                row.at.strftime("%Y-%m-%d %H:%M"),
                row.actor,
                row.action,
                row.subject or "",
                row.detail_text,
            )
        console.print(table if rows else "no audit entries")
        return 0

    sys.exit(run(go()))


@click.command()
@click.option("--team", "team_key", help="Only this team (its key in app.yaml).")
@click.option("--dry-run", is_flag=True, help="Print the digest and write the chart; post nothing.")
@click.option("--at", "at_text", help="As if it were this time (ISO; default now).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    help="Where --dry-run writes chart PNGs.",
)
@click.pass_context
def digest(
    ctx: click.Context, team_key: str | None, dry_run: bool, at_text: str | None, out_dir: str
) -> None:
    """Post this week's team digest (once per team and week), or --dry-run to preview it."""
    from pathlib import Path

    from bot.digest.chart import render
    from bot.scheduling.registry import all_jobs
    from bot.scheduling.runner import run_occurrence
    from bot.textrender import as_text
    from jobs import digests as digest_job

    rt = runtime(ctx)
    at = at_option(at_text, rt)
    rt = rt.frozen_at(at) if at else rt

    async def go() -> int:
        try:
            await rt.db.ensure_migrated()
            occurrences = await digest_job.due(rt, rt.now())
            if team_key:
                occurrences = [o for o in occurrences if o.period.split(":")[0] == team_key]
                if not occurrences:
                    err_console.print(
                        f"[bold red]No digest due for team {team_key!r}[/] (unknown "
                        "team, or digests are disabled)"
                    )
                    return 2
            if dry_run:
                for occ in occurrences:
                    async with rt.db.reader() as s:
                        built = await digest_job.build(
                            rt, s, int(occ.arg or 0), occ.due_at, alone=bool(team_key)
                        )
                    team = built.team.key
                    path = Path(out_dir) / f"digest-{team}-{built.week}.png"
                    png, _ = render(built.chart_spec)
                    path.write_bytes(png)
                    chart_id = digest_job.chart_id_for(team, built.week)
                    console.print(as_text(built.channel, chart_paths={chart_id: str(path)}),
                                  markup=False)
                    console.print()
                return 0
            job = all_jobs()["digests"]
            outcomes = [await run_occurrence(rt, job, occ) for occ in occurrences]
            code = _print_outcomes(outcomes)
            console.print(await _deliver(rt))
            return code
        finally:
            await rt.close()

    sys.exit(run(go()))
