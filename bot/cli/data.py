"""`db`, `demo`, `ingest`, `balance`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bot.cli.common import at_option, console, err_console, run, runtime
from bot.config.env import Env
from bot.directory import person_by_email, sync_directory
from bot.money import fmt_usd
from bot.runtime import Runtime
from bot.usage.sources.files import utf8_problem
from bot.usage.writer import IngestStats


@click.group()
def db() -> None:
    """Database schema: upgrade, current revision."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the schema (creates a missing PostgreSQL database too)."""
    from bot.store.migrate import upgrade

    url = Env.from_environ().database_url
    upgrade(url, revision)
    console.print(f"database is at revision {revision}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the schema revision of the database and of this code."""
    from bot.store.migrate import head_revision

    rt = runtime(ctx)

    async def go() -> str | None:
        try:
            return await rt.db.current_revision()
        finally:
            await rt.db.dispose()

    console.print(f"database: {run(go()) or 'empty'}; code: {head_revision()}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _summary(stats: IngestStats, title: str) -> Table:
    table = Table(title=title, show_header=False)
    labels = {"unpriced_models": "no price for", "approximated": "fallback rate for"}
    for key, value in stats.as_dict().items():
        if key in labels:
            if value:
                table.add_row(labels[key], "; ".join(value))
            continue
        table.add_row(key, f"{value:,}")
    return table


@click.command()
@click.option(
    "--people",
    type=int,
    default=0,
    help="Also generate N synthetic people in teams of 25 (benchmark scale).",
)
@click.option("--days", type=int, default=60, show_default=True, help="Days of usage history.")
@click.option("--if-empty", is_flag=True, help="Do nothing if the store already has usage.")
@click.pass_context
def demo(ctx: click.Context, people: int, days: int, if_empty: bool) -> None:
    """Seed the demo org from app.yaml with usage history (idempotent)."""
    from bot import demo as gen

    rt = runtime(ctx)

    async def go() -> None:
        try:
            await rt.db.ensure_migrated()
            if if_empty and await gen.has_usage(rt):
                console.print("demo data already present; nothing to do")
                return
            await sync_directory(rt)
            emails = [p.email for p in rt.config.directory.people]
            if people:
                await gen.generate_people(rt, people)
                emails += [f"p{n:06d}@scale.example" for n in range(people)]
            with _progress() as progress:
                task = progress.add_task("usage", total=None)
                stats = await gen.seed_usage(
                    rt, emails, days=days, progress=lambda n: progress.advance(task, n)
                )
            from bot.demo_activity import seed_activity

            activity = await seed_activity(rt)
            console.print(_summary(stats, f"demo usage for {len(emails):,} people, {days} days"))
            if activity:
                console.print("activity: " + ", ".join(f"{k}={v}" for k, v in activity.items()))
        finally:
            await rt.close()

    run(go())


@click.command()
@click.argument("source")
@click.option("--since", help="Start of the window (ISO date/time; default: the checkpoint).")
@click.option("--until", help="End of the window (default: now).")
@click.pass_context
def ingest(ctx: click.Context, source: str, since: str | None, until: str | None) -> None:
    """Ingest usage from SOURCE: openai, anthropic, litellm, github-copilot, cursor, or a
    CSV/JSONL file path."""
    from bot.config.models import PROVIDER_SOURCES

    path = Path(source)
    name = source.strip().lower().replace("-", "_")
    provider = name in PROVIDER_SOURCES
    if not provider:
        if not path.is_file():
            names = ", ".join(n.replace("_", "-") for n in PROVIDER_SOURCES)
            err_console.print(f"[bold red]No such file:[/] {path} (or name a source: {names})")
            sys.exit(2)
        if path.suffix.lower() not in (".csv", ".jsonl", ".ndjson", ".json"):
            err_console.print(
                f"[bold red]Unsupported file type[/] {path.suffix!r}: use .csv, .jsonl or .json"
            )
            sys.exit(2)
        problem = utf8_problem(path)
        if problem:
            err_console.print(f"[bold red]Not ingested:[/] {escape(path.name)}: {problem}")
            sys.exit(2)
    size = path.stat().st_size if path.is_file() else 0
    rt = runtime(ctx)

    async def go() -> int:
        try:
            await rt.db.ensure_migrated()
            await sync_directory(rt)
            if provider:
                return await _ingest_source(rt, name, since, until)
            return await _ingest_file(rt, path, size)
        finally:
            await rt.close()

    sys.exit(run(go()))


async def _ingest_file(rt: Runtime, path: Path, size: int) -> int:
    from bot.usage.ingest import ingest_file

    with _progress() as progress:
        task = progress.add_task(f"ingesting {path.name}", total=None)
        stats, errors = await ingest_file(rt, path, progress=lambda n: progress.advance(task, n))
        progress.update(task, total=progress.tasks[0].completed)
    console.print(_summary(stats, f"{path.name} ({size:,} bytes)"))
    for note in stats.notes[:20]:
        err_console.print(f"  {path.name}: {note.where}: {note.message}", markup=False)
    for error in errors[:20]:
        err_console.print(f"  {path.name}: {error}", markup=False)
    if len(errors) > 20 or stats.rejected > len(errors):
        err_console.print(f"  … {stats.rejected - min(len(errors), 20):,} more rejected rows")
    return 1 if stats.rejected else 0


async def _ingest_source(rt: Runtime, name: str, since: str | None, until: str | None) -> int:
    from bot.usage.pull import PullError, pull_source

    start = at_option(since, rt)
    end = at_option(until, rt)
    with _progress() as progress:
        task = progress.add_task(f"pulling {name}", total=None)
        try:
            result = await pull_source(
                rt,
                name,
                since=start,
                until=end,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        except PullError as exc:
            err_console.print(f"[bold red]{name}:[/] {exc}")
            return 1
    console.print(_summary(result.stats, f"{name}: {result.window_text()}"))
    for note in result.notes:
        console.print(f"  {note}")
    return 0


@click.command()
@click.argument("email", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--unattributed", is_flag=True, help="Month-to-date spend nobody is matched to.")
@click.option("--at", "at_text", help="Compute as of this time (ISO).")
@click.pass_context
def balance(
    ctx: click.Context, email: str | None, as_json: bool, unattributed: bool, at_text: str | None
) -> None:
    """Show a person's balance for the month (or --unattributed spend)."""
    from bot import ledger

    rt = runtime(ctx)
    at = at_option(at_text, rt)

    async def go() -> int:
        try:
            await rt.db.ensure_migrated()
            async with rt.db.reader() as s:
                if unattributed:
                    rows = await ledger.unattributed(rt, s, at)
                    if as_json:
                        from bot.money import to_cents_str

                        console.print_json(
                            json.dumps(
                                [
                                    {"identity": i, "records": n, "spent_usd": to_cents_str(c)}
                                    for i, n, c in rows
                                ]
                            )
                        )
                    else:
                        table = Table("identity", "records", "spent")
                        for ident, n, cost in rows:
                            table.add_row(ident, f"{n:,}", fmt_usd(cost))
                        console.print(table if rows else "no unattributed spend this month")
                    return 0
                if not email:
                    err_console.print("give an EMAIL, or --unattributed")
                    return 2
                person = await person_by_email(s, email)
                if person is None:
                    err_console.print(f"[bold red]No person[/] {email!r} in the directory")
                    return 1
                bal = await ledger.balance(rt, person, at, within=s)
            if as_json:
                console.print_json(json.dumps(bal.to_json()))
            else:
                console.print(_balance_table(bal))
            return 0
        finally:
            await rt.close()

    sys.exit(run(go()))


def _balance_table(bal: object) -> Table:
    from bot.ledger import Balance

    assert isinstance(bal, Balance)
    table = Table(title=f"{bal.person.name} — {bal.month.first:%B %Y}", show_header=False)
    table.add_row("spent", fmt_usd(bal.spent))
    table.add_row("cap", fmt_usd(bal.cap))
    table.add_row("sandbox grants", fmt_usd(bal.sandbox))
    table.add_row("remaining", fmt_usd(bal.remaining))
    for cat, cost in bal.by_category:
        table.add_row(f"  {cat}", fmt_usd(cost))
    fc = bal.forecast
    if fc is None:
        table.add_row("forecast", "not enough data yet")
    elif fc.cap_date:
        table.add_row("forecast", f"reaches the limit on {fc.cap_date:%b %d}")
    else:
        table.add_row("forecast", f"month end near {fmt_usd(fc.month_end)}")
    return table
