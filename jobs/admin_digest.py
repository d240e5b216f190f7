"""The weekly admin digest (DM to each admin): org totals, top teams by agentic share,
unattributed spend, sources' freshness, undelivered messages, nudge effect vs holdout."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from bot.directory import admins
from bot.ledger.org import org_month
from bot.money import fmt_usd, pct
from bot.nudges.effect import holdout_effect
from bot.outbox import enqueue
from bot.reply import Block, Context, Fact, Facts, Header, Reply, Text
from bot.runtime import Runtime
from bot.scheduling.registry import JobSpec, Occurrence, cron_due, register
from bot.store.tables import Team, UsageDaily
from bot.timeutil import local_day, month_of
from bot.usage.names import source_name


async def run(rt: Runtime, occ: Occurrence) -> dict[str, Any]:
    cfg = rt.config
    if not (cfg.digests.enabled and cfg.digests.admin_digest):
        return {"skipped": "admin digest is disabled"}
    now = rt.now()
    today = local_day(occ.due_at, rt.tz)
    week_start, last = today - timedelta(days=7), today - timedelta(days=1)
    month = month_of(local_day(now, rt.tz))
    async with rt.db.reader() as s:

        def spend_between(a: date, b: date) -> Any:
            return select(func.coalesce(func.sum(UsageDaily.cost_micros), 0)).where(
                UsageDaily.day >= a, UsageDaily.day <= b
            )

        week = int(await s.scalar(spend_between(week_start, last)) or 0)
        org = await org_month(s, month, now)
        rows = await s.execute(
            select(UsageDaily.team_id, UsageDaily.category, func.sum(UsageDaily.cost_micros))
            .where(UsageDaily.day >= week_start, UsageDaily.day <= last, UsageDaily.team_id != 0)
            .group_by(UsageDaily.team_id, UsageDaily.category)
        )
        per_team: dict[int, list[int]] = {}
        for tid, category, cost in rows:
            acc = per_team.setdefault(tid, [0, 0])
            acc[0] += int(cost or 0)
            if category in cfg.categories.agentic:
                acc[1] += int(cost or 0)
        names = dict((await s.execute(select(Team.id, Team.name))).all())
        effect = await holdout_effect(s, cfg, now, rt.tz)
        recipients = await admins(s)
    top = sorted(
        ((pct(a, t), names.get(tid, "?"), t) for tid, (t, a) in per_team.items() if t > 0),
        reverse=True,
    )[:5]
    blocks: list[Block] = [
        Header(text=f"{cfg.org.name} — weekly admin digest"),
        Context(text=f"Week of {week_start:%b %-d}–{last:%b %-d}"),
        Facts(
            items=[
                Fact(label="Spend this week", value=fmt_usd(week)),
                Fact(label="Month to date", value=fmt_usd(org.spent)),
                Fact(label="Unattributed this month", value=fmt_usd(org.unattributed)),
                Fact(label="Undelivered messages (7 days)", value=str(org.undelivered)),
            ]
        ),
    ]
    if top:
        blocks.append(
            Facts(
                title="Top teams by agentic share",
                items=[
                    Fact(label=name, value=f"{share}% of {fmt_usd(total)}")
                    for share, name, total in top
                ],
            )
        )
    fresh = [
        f"{source_name(st.source)}: {(now - st.data_as_of).total_seconds() / 3600:.0f} h old"
        for st in org.sources
        if st.data_as_of
    ]
    if fresh:
        blocks.append(Context(text="Data freshness — " + " · ".join(fresh)))
    blocks.append(
        Text(
            text=effect.sentence()
            if effect
            else "Nudge effect: not measurable yet (needs tips at least "
            f"{cfg.nudges.window_days} days old)."
        )
    )
    reply = Reply(text=f"Weekly admin digest: {fmt_usd(week)} this week", blocks=blocks)
    async with rt.db.session() as s:
        for admin in recipients:
            await enqueue(
                s,
                rt,
                kind="admin_digest",
                target_type="person",
                target_id=admin.id,
                reply=reply,
                key=f"admin-digest:{occ.period}:{admin.id}",
            )
    return {"admins": len(recipients), "week_usd": fmt_usd(week)}


register(
    JobSpec(
        name="admin-digest",
        description="Weekly admin digest: org totals, top teams, unattributed, freshness, effect",
        func=run,
        due=cron_due(
            lambda rt: rt.config.schedules.digest, lookback=timedelta(days=7), prefix="week-of-"
        ),
        lease=timedelta(minutes=10),
    )
)
