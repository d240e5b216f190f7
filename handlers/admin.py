"""`/tokens admin …`: org overview and tools, for the admins named in app.yaml only."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot import audit, ledger
from bot.approvals.policy import pool_used
from bot.directory import person_by_email
from bot.ledger.org import org_month
from bot.money import fmt_usd, to_micros
from bot.nudges.audit import audit_usage
from bot.reply import Block, Context, Fact, Facts, Form, Header, Reply, Text, simple
from bot.store.tables import SandboxRequest, UsageDaily
from bot.timeutil import local_day, month_of
from bot.usage.names import source_name
from handlers.balance import balance_reply
from handlers.context import Ctx

ADMIN_HELP = (
    "`/tokens admin` overview · `/tokens admin balance EMAIL` someone's card · "
    "`/tokens admin unattributed` spend nobody is matched to · "
    "`/tokens admin audit` the known-ROI report"
)


async def admin_command(ctx: Ctx, args: list[str]) -> Reply | Form:
    if not ctx.person.is_admin:
        async with ctx.rt.db.session() as s:
            await audit.record(
                s,
                at=ctx.rt.now(),
                action="admin.refused",
                actor=ctx.actor.label,
                actor_id=ctx.person.id,
                detail={"args": " ".join(args)[:100]},
            )
        return simple("`/tokens admin` is for the admins named in tokencoach's configuration.")
    sub = args[0].lower() if args else ""
    if sub == "":
        return await overview(ctx)
    if sub == "balance" and len(args) == 2:
        async with ctx.rt.db.session() as s:
            person = await person_by_email(s, args[1])
            if person is not None:
                await audit.record(
                    s,
                    at=ctx.rt.now(),
                    action="admin.viewed_balance",
                    actor=ctx.actor.label,
                    actor_id=ctx.person.id,
                    subject=f"person:{person.id}",
                )
        if person is None:
            return simple(f"No person `{args[1][:60]}` in the directory.")
        return await balance_reply(ctx, person, with_tip=False)
    if sub == "unattributed":
        async with ctx.rt.db.reader() as s:
            rows = await ledger.unattributed(ctx.rt, s)
        if not rows:
            return simple("No unattributed spend this month.")
        items = [
            Fact(label=ident[:80], value=f"{fmt_usd(cost)} · {n:,} records")
            for ident, n, cost in rows[:20]
        ]
        return Reply(
            text="Unattributed spend",
            blocks=[
                Header(text="Unattributed spend this month"),
                Facts(items=items),
                Context(
                    text="Map these in app.yaml (sources.<provider>.mappings) to attribute "
                    "future usage."
                ),
            ],
        )
    if sub == "audit":
        return await audit_report(ctx)
    return simple(f"Unknown admin command. {ADMIN_HELP}")


async def audit_report(ctx: Ctx) -> Reply:
    cfg = ctx.rt.config
    since = local_day(ctx.rt.now(), ctx.rt.tz) - timedelta(days=cfg.nudges.window_days)
    report = await audit_usage(ctx.rt, since=since)
    low, agentic = cfg.categories.low_value, cfg.categories.agentic
    blocks: list[Block] = [
        Header(text=f"Known-ROI audit — last {cfg.nudges.window_days} days"),
        Text(
            text=f"Across {cfg.org.name}, **{report.org.share(low)}%** of spend went to "
            f"routine work and **{report.org.share(agentic)}%** to agentic work."
        ),
        Facts(
            title="By team",
            items=[
                Fact(
                    label=t.name,
                    value=f"{fmt_usd(t.spend)} · routine {t.share(low)}% · "
                    f"agentic {t.share(agentic)}%",
                )
                for t in report.teams[:20]
            ],
        ),
    ]
    if report.stuck:
        blocks.append(
            Facts(
                title=f"Over {int(cfg.nudges.low_value_threshold * 100)}% routine "
                f"({len(report.stuck)} people)",
                items=[
                    Fact(label=email, value=f"{fmt_usd(spend)} · {share}% routine")
                    for email, _team, spend, share in report.stuck[:15]
                ],
            )
        )
    if report.effect:
        blocks.append(Text(text=report.effect.sentence()))
    blocks.append(Context(text="Individual lines are for admins only."))
    return Reply(text="Known-ROI audit", blocks=blocks)


async def overview(ctx: Ctx) -> Reply:
    rt = ctx.rt
    now = rt.now()
    month = month_of(local_day(now, rt.tz))
    async with rt.db.reader() as s:
        org = await org_month(s, month, now)
        people = await s.scalar(
            select(func.count(func.distinct(UsageDaily.person_id))).where(
                UsageDaily.day >= month.first, UsageDaily.person_id != 0
            )
        )
        pending = await s.scalar(
            select(func.count())
            .select_from(SandboxRequest)
            .where(SandboxRequest.status == "pending")
        )
        pool = await pool_used(s, month.key)
    pool_total = to_micros(rt.config.sandbox.pool_usd)
    blocks = [
        Header(text=f"{rt.config.org.name} — {month.first:%B %Y}"),
        Facts(
            items=[
                Fact(label="Spent this month", value=fmt_usd(org.spent)),
                Fact(label="People with usage", value=f"{int(people or 0):,}"),
                Fact(label="Unattributed", value=fmt_usd(org.unattributed)),
                Fact(label="Sandbox pool", value=f"{fmt_usd(pool)} of {fmt_usd(pool_total)} used"),
                Fact(label="Requests pending", value=str(int(pending or 0))),
                Fact(label="Undelivered messages (7 days)", value=str(org.undelivered)),
            ]
        ),
    ]
    lines = []
    for st in org.sources:
        fresh = st.data_as_of.strftime("%b %-d %H:%M UTC") if st.data_as_of else "no data"
        line = f"**{source_name(st.source)}**: data as of {fresh}"
        if st.failing:
            line += f" · last run failed: {st.failing[:120]}"
        lines.append(line)
    if lines:
        blocks.append(Text(text="\n".join(lines)))
    blocks.append(Context(text=ADMIN_HELP))
    return Reply(text="Admin overview", blocks=blocks)
