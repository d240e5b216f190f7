"""`audit-usage`: the organization's "known-ROI" report."""

from __future__ import annotations

from datetime import timedelta

import click
from rich.table import Table

from bot.cli import tables
from bot.cli.common import console, err_console, run, runtime, since_option
from bot.money import fmt_usd, pct
from bot.nudges.audit import AuditReport
from bot.timeutil import local_day


@click.command("audit-usage")
@click.option("--team", help="Only this team (key).")
@click.option(
    "--since",
    help="Start date: 2026-11-01, yesterday, or an age like 7d or 2w "
    "(default: nudges.window_days ago).",
)
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
    from bot.nudges.audit import audit_usage as build

    rt = runtime(ctx)
    given = since_option(since, rt)
    start = (
        local_day(given, rt.tz)
        if given
        else local_day(rt.now(), rt.tz) - timedelta(days=rt.config.nudges.window_days)
    )

    async def go() -> int:
        try:
            await rt.db.ensure_migrated()
            report = await build(rt, since=start, team=team)
        finally:
            await rt.close()
        cfg = rt.config
        if not report.team_known:
            err_console.print(f"[bold red]No such team[/] {team!r} (team keys are in app.yaml)")
            return 2
        if team and not report.teams:
            err_console.print(f"no usage for team {team!r} since {start}")
            return 1
        console.print(_shares_table(report, cfg.categories.low_value, cfg.categories.agentic))
        low = report.org.share(cfg.categories.low_value)
        verdict = (
            "stuck on known-ROI work: most spend is summaries and chat"
            if low >= 70
            else "a healthy mix"
            if low < 50
            else "leaning on routine work"
        )
        console.print(f"Low-value share for {cfg.org.name}: {low}% — {verdict}.", soft_wrap=False)
        threshold = int(cfg.nudges.low_value_threshold * 100)
        stuck = report.stuck[:limit]
        spends = [fmt_usd(spend) for _, _, spend, _ in stuck]
        shares = [f"{share}%" for _, _, _, share in stuck]
        people = Table(
            tables.text("person"),
            tables.text("team"),
            tables.fixed("spend", spends, right=True),
            tables.fixed("low-value share", shares, right=True),
            title=f"People at or over {threshold}% low-value (last {cfg.nudges.window_days} days)",
        )
        for (email, tkey, _, _), spend_text, share_text in zip(stuck, spends, shares, strict=True):
            people.add_row(email, tkey, spend_text, share_text)
        console.print(people if report.stuck else "Nobody is over the threshold.")
        if len(report.stuck) > limit:
            console.print(f"… and {len(report.stuck) - limit} more")
        console.print(report.effect_text, soft_wrap=False)
        return 0

    raise SystemExit(run(go()))


def _shares_table(report: AuditReport, low_value: list[str], agentic: list[str]) -> Table:
    """Spend and category shares per team: one column per category when the terminal has
    the room, else each team's mix as a line that wraps. Numbers are never cut."""
    rows = [*report.teams, report.org]
    cats = [c for c in report.categories if report.org.by_category.get(c)]
    spend = [fmt_usd(r.spend) for r in rows]
    low = [f"{r.share(low_value)}%" for r in rows]
    agent = [f"{r.share(agentic)}%" for r in rows]
    title = f"Spend by category, {report.since} to {report.until}"
    # "agentic share" would repeat a category column that already says the same.
    agentic_shown = not (len(agentic) == 1 and agentic[0] in cats)
    grid = Table(
        tables.text("team"),
        tables.fixed("spend", spend, right=True),
        *[
            tables.fixed(c, [f"{pct(r.by_category.get(c, 0), r.spend)}%" for r in rows], right=True)
            for c in cats
        ],
        tables.fixed("low-value share", low, right=True),
        *([tables.fixed("agentic share", agent, right=True)] if agentic_shown else []),
        title=title,
    )
    for r, sp, lo, ag in zip(rows, spend, low, agent, strict=True):
        grid.add_row(
            r.name,
            sp,
            *[f"{pct(r.by_category.get(c, 0), r.spend)}%" for c in cats],
            lo,
            *([ag] if agentic_shown else []),
        )
    if console.measure(grid).minimum + 12 <= console.width:  # room for the team names too
        return grid
    compact = Table(
        tables.text("team"),
        tables.fixed("spend", spend, right=True),
        tables.fixed("low-value\nshare", low, right=True),
        tables.fixed("agentic\nshare", agent, right=True),
        tables.text("category mix", ratio=1),
        title=title,
    )
    for r, sp, lo, ag in zip(rows, spend, low, agent, strict=True):
        mix = sorted(((pct(v, r.spend), c) for c, v in r.by_category.items()), reverse=True)
        compact.add_row(r.name, sp, lo, ag, ", ".join(f"{c} {p}%" for p, c in mix if p))
    return compact
