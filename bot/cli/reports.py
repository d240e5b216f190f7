"""`audit-usage`: the organization's "known-ROI" report."""

from __future__ import annotations

from datetime import timedelta

import click
from rich.table import Table

from bot.cli.common import console, err_console, run, runtime
from bot.money import fmt_usd, pct
from bot.timeutil import local_day


@click.command("audit-usage")
@click.option("--team", help="Only this team (key).")
@click.option("--since", help="Start date (ISO; default: 28 days ago).")
@click.option(
    "--limit",
    type=int,
    default=50,
    show_default=True,
    help="How many people over the threshold to list.",
)
@click.pass_context
def audit_usage(ctx: click.Context, team: str | None, since: str | None, limit: int) -> None:
    """Where the money goes: category shares per team, low-value share, who is stuck."""
    from datetime import date

    from bot.nudges.audit import audit_usage as build

    rt = runtime(ctx)
    try:
        start = (
            date.fromisoformat(since)
            if since
            else local_day(rt.now(), rt.tz) - timedelta(days=rt.config.nudges.window_days)
        )
    except ValueError:
        raise click.BadParameter("use a date like 2026-11-01", param_hint="--since") from None

    async def go() -> int:
        try:
            await rt.db.ensure_migrated()
            report = await build(rt, since=start, team=team)
        finally:
            await rt.close()
        cfg = rt.config
        if team and not report.teams:
            err_console.print(f"no usage for team {team!r} since {start}")
            return 1
        cats = [c for c in report.categories if report.org.by_category.get(c)]
        table = Table(
            "team",
            "spend",
            *cats,
            "low-value",
            "agentic",
            title=f"Spend by category, {report.since} to {report.until}",
        )
        for row in [*report.teams, report.org]:
            table.add_row(
                row.name,
                fmt_usd(row.spend),
                *[f"{pct(row.by_category.get(c, 0), row.spend)}%" for c in cats],
                f"{row.share(cfg.categories.low_value)}%",
                f"{row.share(cfg.categories.agentic)}%",
            )
        console.print(table)
        low = report.org.share(cfg.categories.low_value)
        verdict = (
            "stuck on known-ROI work: most spend is summaries and chat"
            if low >= 70
            else "a healthy mix"
            if low < 50
            else "leaning on routine work"
        )
        console.print(f"Low-value share for {cfg.org.name}: {low}% — {verdict}.")
        threshold = int(cfg.nudges.low_value_threshold * 100)
        people = Table(
            "person",
            "team",
            "spend",
            "low-value share",
            title=f"People at or over {threshold}% low-value (last {cfg.nudges.window_days} days)",
        )
        for email, tkey, spend, share in report.stuck[:limit]:
            people.add_row(email, tkey, fmt_usd(spend), f"{share}%")
        console.print(people if report.stuck else "Nobody is over the threshold.")
        if len(report.stuck) > limit:
            console.print(f"… and {len(report.stuck) - limit} more")
        if report.effect:
            console.print(report.effect.sentence())
        return 0

    raise SystemExit(run(go()))
