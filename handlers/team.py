"""`/tokens team [KEY]`: team spend and agentic share. Everyone sees their own team's
aggregates; only the manager (for direct reports) and admins see per-person lines."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import ledger
from bot.digest.stats import team_month
from bot.directory import PersonView, direct_reports, team_by_key
from bot.money import fmt_usd, pct
from bot.reply import Block, Context, Fact, Facts, Form, Header, Reply, Text, simple
from bot.store.tables import Person, Team
from handlers.context import Ctx


async def show_team(ctx: Ctx, args: list[str]) -> Reply | Form:
    me = ctx.person
    async with ctx.rt.db.reader() as s:
        reports = await direct_reports(s, me.id)
        if args:
            team = await team_by_key(s, args[0].lower())
            if team is None:
                return simple(f"There is no team `{args[0][:40]}`.")
            if (
                team.id != me.team_id
                and not me.is_admin
                and not any(r.team_id == team.id for r in reports)
            ):
                return simple(
                    "You can see your own team's figures, and teams where you manage "
                    "someone; other teams' are for admins."
                )
        else:
            team = await s.get(Team, me.team_id) if me.team_id else None
            if team is None:
                return simple("You're not in a team in the directory.")
        figures = await team_month(ctx.rt, s, team.id)
        # Individual lines: admins see every member, managers their own reports in this team.
        members = (
            await _members(s, team.id)
            if me.is_admin
            else [r for r in reports if r.team_id == team.id]
        )
    months = await ledger.balances(ctx.rt, members[:25])
    people_lines = [
        Fact(
            label=m.person.name,
            value=f"{fmt_usd(m.spent)} ({pct(m.spent, m.limit)}% of limit) · "
            f"agentic {m.agentic_share}%",
        )
        for m in (months[person.id] for person in members[:25])
    ]
    minimum = ctx.rt.config.digests.small_team_min
    # In a handful of people (the digests' k-anonymity rule), the total, the shares and
    # the head count would point at colleagues: with two, each could subtract their own
    # spend and know the other's. Managers and admins see individual figures anyway.
    small = figures.active_people < minimum and not (me.is_admin or people_lines)
    spent = "not shown to members of small teams" if small else fmt_usd(figures.spent)
    items = [
        Fact(label="Spent this month", value=spent),
        Fact(label="Team budget", value=fmt_usd(figures.budget)),
        Fact(
            label="People with usage",
            value=f"fewer than {minimum}" if small else str(figures.active_people),
        ),
    ]
    if not small:
        items += [
            Fact(label="Agentic share", value=f"{figures.agentic_share}%"),
            Fact(label="Routine (summaries, chat)", value=f"{figures.low_value_share}%"),
        ]
    blocks: list[Block] = [
        Header(text=f"{team.name} — {figures.month.first:%B %Y}"),
        Facts(items=items),
    ]
    if people_lines:
        blocks.append(
            Facts(title="Members" if me.is_admin else "Your direct reports", items=people_lines)
        )
        blocks.append(Context(text="Individual figures are shown only to managers and admins."))
    elif small:
        blocks.append(
            Text(
                text=f"Fewer than {minimum} people used AI this month, so the team's "
                "spend and mix are not shown: they could point at individuals."
            )
        )
    else:
        blocks.append(
            Text(
                text="Team figures are aggregates; individual figures go only to "
                "each person, their manager and admins."
            )
        )
    summary = f"{figures.month.first:%B}" if small else f"{fmt_usd(figures.spent)} this month"
    return Reply(text=f"{team.name}: {summary}", blocks=blocks)


async def _members(s: AsyncSession, team_id: int) -> list[PersonView]:
    rows = await s.scalars(
        select(Person).where(Person.team_id == team_id, Person.active).order_by(Person.name)
    )
    return [PersonView.of(p) for p in rows.all()]
