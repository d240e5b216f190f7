"""`jobs`, `check`, `audit`, `digest`."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from rich.table import Table

from bot.cli import tables
from bot.cli.common import at_option, console, err_console, run, runtime, since_option
from bot.runtime import Runtime
from bot.scheduling.runner import RunOutcome

AT_HELP = (
    "Run as if it were this time (ISO, org time zone unless it has an offset; for tests "
    "and operations). It changes the store as a real run would, marked simulated; it may "
    "not be before the last real run, and retention still keeps to today's horizon."
)


@click.group()
def jobs() -> None:
    """Scheduled jobs: list them, run one, or run everything that is due."""


@jobs.command("list")
def jobs_list() -> None:
    """List jobs and what they do."""
    from bot.scheduling.registry import all_jobs

    specs = sorted(all_jobs().items())
    table = Table(tables.fixed("job", [n for n, _ in specs]), tables.text("what it does"))
    for name, spec in specs:
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
            console.print(f"{o.job} {o.period}: ran{late} {o.result or ''}", markup=False)
        else:
            failed += 1
            err_console.print(f"{o.job} {o.period}: failed: {o.error}", markup=False)
    return 1 if failed else 0


async def _as_if(rt: Runtime, at: datetime | None) -> Runtime | None:
    """The runtime for a run at ``at`` (simulated), or None after saying why it can't be."""
    if at is None:
        return rt
    from bot.scheduling.simulated import Rewind, check_forward, label

    try:
        await check_forward(rt, at)
    except Rewind as exc:
        err_console.print(f"[bold red]Not run:[/] --at {exc}.")
        return None
    console.print(f"simulated: as if it were {label(at, rt.tz)}")
    return rt.as_if(at)


@jobs.command("run")
@click.argument("name")
@click.option("--at", "at_text", help=AT_HELP)
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
            when = await _as_if(rt, at)
            if when is None:
                return 2
            code = _print_outcomes(await run_job(when, name))
            if deliver:
                console.print(await _deliver(when))
            return code
        finally:
            await rt.close()

    sys.exit(run(go()))


@jobs.command("run-due")
@click.option("--at", "at_text", help=AT_HELP)
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
            when = await _as_if(rt, at)
            if when is None:
                return 2
            code = _print_outcomes(await run_due(when))
            if deliver:
                console.print(await _deliver(when))
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


# Below this width an entry's who / subject / detail share one column, one per line.
WIDE_AUDIT = 140


@click.command()
@click.option("--person", help="Only entries by or about this email.")
@click.option(
    "--since",
    help="Only entries from this time: a date (2026-11-23), a time (2026-11-23T09:00), "
    "today, yesterday, or an age (12h, 7d, 2w).",
)
@click.option("--limit", type=int, default=200, show_default=True)
@click.option(
    "--simulated", is_flag=True, help="List the entries of simulated runs (--at) instead."
)
@click.pass_context
def audit(
    ctx: click.Context, person: str | None, since: str | None, limit: int, simulated: bool
) -> None:
    """Print the audit log (append-only record of every decision and refusal)."""
    from bot.audit import NoSuchPerson, read_audit

    rt = runtime(ctx)
    start = since_option(since, rt)

    async def go() -> int:
        try:
            log = await read_audit(rt, person=person, since=start, limit=limit, simulated=simulated)
        except NoSuchPerson:
            err_console.print(f"[bold red]No person[/] {person!r} in the directory")
            return 2
        finally:
            await rt.close()
        rows = log.rows
        when = [r.at.strftime("%Y-%m-%d %H:%M") for r in rows]
        columns = [
            tables.fixed("when (UTC)", when),
            tables.fixed("action", [r.action for r in rows]),
        ]
        if console.width >= WIDE_AUDIT:
            table = Table(*columns, tables.text("by"), tables.text("about"), tables.text("detail"))
            for r, w in zip(rows, when, strict=True):
                table.add_row(w, r.action, r.by, r.subject, r.detail)
        else:
            table = Table(*columns, tables.text("by · about · detail"))
            for r, w in zip(rows, when, strict=True):
                table.add_row(w, r.action, "\n".join(x for x in (r.by, r.subject, r.detail) if x))
        kind = "simulated " if simulated else ""
        console.print(table if rows else f"no {kind}audit entries")
        if log.other and not simulated:
            console.print(
                f"{log.other} entr{'y' if log.other == 1 else 'ies'} written by simulated "
                "runs (--at) not shown: --simulated lists them."
            )
        return 0

    sys.exit(run(go()))


@click.command()
@click.option("--team", "team_key", help="Only this team (its key in app.yaml).")
@click.option("--dry-run", is_flag=True, help="Print the digest and write its chart; post nothing.")
@click.option(
    "--at",
    "at_text",
    help="As if it were this time (ISO). With --dry-run any time; else as `jobs run --at`.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, exists=True, writable=True),
    default=None,
    help="Where --dry-run writes chart PNGs (default: a new temporary directory).",
)
@click.pass_context
def digest(
    ctx: click.Context,
    team_key: str | None,
    dry_run: bool,
    at_text: str | None,
    out_dir: str | None,
) -> None:
    """Post this week's team digest (once per team and week), or --dry-run to preview it."""
    import tempfile
    from pathlib import Path

    from bot.digest.chart import render
    from bot.scheduling.registry import all_jobs
    from bot.scheduling.runner import run_occurrence
    from bot.textrender import as_text
    from jobs import digests as digest_job

    rt = runtime(ctx)
    at = at_option(at_text, rt)

    async def go() -> int:
        try:
            await rt.db.ensure_migrated()
            when = (rt.as_if(at) if at else rt) if dry_run else await _as_if(rt, at)
            if when is None:
                return 2
            occurrences = await digest_job.due(when, when.now())
            if team_key:
                occurrences = [o for o in occurrences if o.period.split(":")[0] == team_key]
                if not occurrences:
                    err_console.print(
                        f"[bold red]No digest due for team {team_key!r}[/] (unknown "
                        "team, or digests are disabled)"
                    )
                    return 2
            if dry_run:
                folder = Path(out_dir or tempfile.mkdtemp(prefix="tokencoach-digest-"))
                for occ in occurrences:
                    async with when.db.reader() as s:
                        built = await digest_job.build(
                            when, s, int(occ.arg or 0), occ.due_at, alone=bool(team_key)
                        )
                    team = built.team.key
                    path = folder / f"digest-{team}-{built.week}.png"
                    png, _ = render(built.chart_spec)
                    path.write_bytes(png)
                    chart_id = digest_job.chart_id_for(team, built.week)
                    console.print(
                        as_text(built.channel, chart_paths={chart_id: str(path)}), markup=False
                    )
                    console.print()
                if occurrences:
                    console.print(f"charts written to {folder}", markup=False)
                return 0
            job = all_jobs()["digests"]
            outcomes = [await run_occurrence(when, job, occ) for occ in occurrences]
            code = _print_outcomes(outcomes)
            console.print(await _deliver(when))
            return code
        finally:
            await rt.close()

    sys.exit(run(go()))
