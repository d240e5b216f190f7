"""Digest replies: the team channel (aggregates only) and the manager's private version.

Privacy: the channel post never names a person or shows one person's figures. When fewer
than ``digests.small_team_min`` people used AI in the week, category figures could point
at individuals, so they are folded into "other" and the post says why.
"""

from __future__ import annotations

from bot.digest.stats import PersonLine, TeamDigest
from bot.money import fmt_usd, pct
from bot.reply import Block, Context, Fact, Facts, Header, Image, Quote, Reply, Text, literal

CHART_ALT = "Weekly spend by category, last 8 weeks"


def _change(now: int, before: int) -> str:
    if before <= 0:
        return "new this week" if now else "no spend"
    delta = pct(abs(now - before), before)
    if delta == 0:
        return "flat vs last week"
    return f"{'▲' if now > before else '▼'} {delta}% vs last week"


def _points(trend: list[int]) -> str:
    if len(trend) < 2:
        return ""
    diff = trend[-1] - trend[-2]
    move = f"{'▲' if diff > 0 else '▼'} {abs(diff)} pts" if diff else "no change"
    return f"{move} WoW · 4 weeks: {' → '.join(f'{t}%' for t in trend)}"


def _routing(d: TeamDigest, routine_words: str) -> Text | None:
    r = d.routing
    if r.actual < 1_000_000 or r.estimate >= r.actual:  # under $1, or nothing to gain
        return None
    return Text(
        text=(
            f"**Routing:** {fmt_usd(r.actual)} of {routine_words} ran on frontier models without "
            f"tools. On their smaller siblings the same tokens would have cost about "
            f"**{fmt_usd(r.estimate)}** (likely {fmt_usd(r.low)}–{fmt_usd(r.high)}) — an "
            "estimate from list prices, not a promise."
        )
    )


def team_digest(
    d: TeamDigest,
    *,
    small_team_min: int,
    chart_id: str | None,
    late_note: str | None = None,
    members: list[PersonLine] | None = None,
    pool_used: int = 0,
    pool_total: int = 0,
) -> Reply:
    """The channel digest; with ``members`` (a manager's direct reports), their private one."""
    manager_view = members is not None
    small = d.active_people < small_team_min
    when = f"Week of {d.week_start:%b %-d}–{d.week_end:%b %-d}"
    blocks: list[Block] = [
        Header(text=f"{d.team_name} — weekly AI digest"),
        Context(text=when + (f" · {late_note}" if late_note else "")),
    ]
    budget_pct = pct(d.mtd, d.budget)
    facts = [
        Fact(
            label="This week",
            value=f"{fmt_usd(d.week_total)} ({_change(d.week_total, d.prev_week_total)})",
        ),
        Fact(
            label="Month to date",
            value=f"{fmt_usd(d.mtd)} of {fmt_usd(d.budget)} budget ({budget_pct}%)",
        ),
        Fact(
            label="Forecast",
            value=f"~{fmt_usd(d.forecast, cents=False)} by "
            f"{d.month.last:%b %-d} ({pct(d.forecast, d.budget)}% "
            "of budget)",
        ),
        Fact(
            label="People using AI",
            value=str(d.active_people) if not small else f"fewer than {small_team_min}",
        ),
    ]
    if not small:
        share = d.agentic_trend[-1] if d.agentic_trend else 0
        trend = _points(d.agentic_trend)
        facts.insert(
            3, Fact(label="Agentic share", value=f"{share}%" + (f" · {trend}" if trend else ""))
        )
    blocks.append(Facts(items=facts))
    if small:
        blocks.append(
            Text(
                text=f"Category figures are folded into “other” this week: fewer "
                f"than {small_team_min} people used AI, so a breakdown could "
                "point at individuals."
            )
        )
    elif d.week_by_category:
        total = d.week_total
        blocks.append(
            Facts(
                title="Where it went this week",
                items=[
                    Fact(label=c.capitalize(), value=f"{fmt_usd(v)} ({pct(v, total)}%)")
                    for c, v in sorted(d.week_by_category.items(), key=lambda x: -x[1])
                ],
            )
        )
    routing = _routing(d, " and ".join(sorted(d.routing.categories)) or "routine work")
    if routing and not small:
        blocks.append(routing)
    sandbox = (
        f"**Sandbox:** {len(d.experiments)} active experiment"
        f"{'s' if len(d.experiments) != 1 else ''}"
    )
    if pool_total:
        sandbox += f" · org pool {fmt_usd(pool_used)} of {fmt_usd(pool_total)} used this month"
    blocks.append(Text(text=sandbox))
    for exp in d.experiments[:8]:
        owner = f"{exp.owner}: " if manager_view else ""
        blocks.append(
            Context(
                text=f"🧪 {literal(owner)}{literal(exp.purpose[:140])} — {exp.days_left} days left"
            )
        )
    for owner, outcome in d.outcomes[:5]:
        author = f"Outcome — {owner}" if manager_view else "Outcome"
        blocks.append(Quote(text=outcome, author=author))
    blocks.append(
        Context(
            text=f"Tips sent {d.tips_sent} · tutorials opened {d.tips_opened} · "
            f"finished {d.tips_finished}"
        )
    )
    if members:
        blocks.append(
            Facts(
                title="Your direct reports (month to date)",
                items=[
                    Fact(
                        label=m.name,
                        value=f"{fmt_usd(m.spent)} ({pct(m.spent, m.limit)}% of limit) · "
                        f"agentic {m.agentic_share}%"
                        + (
                            f" · {m.open_requests} open request"
                            f"{'s' if m.open_requests != 1 else ''}"
                            if m.open_requests
                            else ""
                        ),
                    )
                    for m in members[:40]
                ],
            )
        )
    if chart_id:
        blocks.append(Image(chart_id=chart_id, alt=CHART_ALT, title="Weekly spend by category"))
    blocks.append(
        Context(
            text="Private to you: individual figures go only to each person, their "
            "manager and admins."
            if manager_view
            else "Aggregates only. Individual figures go only to each person, "
            "their manager and admins."
        )
    )
    return Reply(
        text=f"{d.team_name}: {fmt_usd(d.week_total)} on AI this week, "
        f"{fmt_usd(d.mtd)} month to date",
        blocks=blocks,
        visibility="public",
    )


def folded_series(d: TeamDigest, small_team_min: int) -> dict[str, list[int]]:
    """The chart's series, folded into one "other" bar per week when any week in it had
    a handful of people (fewer than ``small_team_min``, but some): their mix that week
    could point at individuals."""
    if not d.series or not any(0 < n < small_team_min for n in d.weekly_people):
        return d.series
    weeks = len(d.weeks)
    return {"other": [sum(v[i] for v in d.series.values()) for i in range(weeks)]}
