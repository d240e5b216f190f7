"""`/tokens` (the balance card), `/tokens history` and `/tokens help`."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from bot import ledger, tips
from bot.directory import PersonView
from bot.ledger import Balance
from bot.money import fmt_usd, pct, to_micros
from bot.reply import (
    ActionResult,
    Actions,
    Block,
    Button,
    Context,
    Fact,
    Facts,
    Form,
    Header,
    Progress,
    Reply,
    Text,
)
from bot.runtime import Runtime
from bot.timeutil import as_utc
from bot.usage.names import source_name, source_order
from handlers.context import Ctx
from handlers.texts import usage_reply

STALE_AFTER_HOURS = 6
TOP_CATEGORIES = 6
TOP_MODELS = 3


def _local(rt: Runtime, person: PersonView, at: datetime) -> datetime:
    return as_utc(at).astimezone(ZoneInfo(person.timezone or rt.tz))


def freshness_line(rt: Runtime, person: PersonView, as_of: dict[str, datetime | None]) -> str:
    known = {src: at for src, at in as_of.items() if at is not None}
    if not known:
        return "No usage data has arrived yet."
    newest = max(known.values())
    names = " + ".join(
        source_name(s)
        for s in sorted(known, key=lambda s: (-known[s].timestamp(), source_order(s)))
    )
    when = _local(rt, person, newest)
    now_local = _local(rt, person, rt.now())
    stamp = (
        when.strftime("%H:%M") if when.date() == now_local.date() else when.strftime("%b %-d %H:%M")
    )
    line = f"Usage as of {stamp} ({names}) · amounts in USD"
    stale = [
        source_name(s)
        for s, at in known.items()
        if (rt.now() - at).total_seconds() > STALE_AFTER_HOURS * 3600 and s != "import"
    ]
    if stale:
        line += f" · ⚠ {', '.join(stale)} data is more than {STALE_AFTER_HOURS} h old"
    return line


def forecast_text(bal: Balance) -> str:
    fc = bal.forecast
    if fc is None:
        return "Not enough data yet for a forecast (it needs 3 days of usage)."
    pace = fmt_usd(fc.pace_per_day)
    if fc.already_over:
        return (
            f"You are over your limit for {bal.month.first:%B}. At {pace}/day you end "
            f"the month near **{fmt_usd(fc.month_end, cents=False)}**."
        )
    if fc.cap_date:
        return f"At your 7-day pace ({pace}/day) you reach your limit on **{fc.cap_date:%b %-d}**."
    share = pct(fc.month_end, bal.limit)
    return (
        f"At your 7-day pace ({pace}/day) you end the month near "
        f"**{fmt_usd(fc.month_end, cents=False)}**, {share}% of your limit."
    )


def tip_blocks(ctx: Ctx, bal: Balance) -> list[Block]:
    """One tip with a tutorial button when low-value use dominates the month."""
    cfg = ctx.rt.config
    threshold = int(cfg.nudges.low_value_threshold * 100)
    if bal.spent < to_micros(cfg.nudges.min_spend_usd) or bal.low_value_share < threshold:
        return []
    category = tips.dominant(bal.by_category, cfg.categories.low_value)
    tut = tips.pick_tutorial(cfg, category, tips.level_for(bal.agentic_share), bal.tutorials_had)
    words = tips.CATEGORY_WORDS.get(category or "", category or "routine work")
    text = (
        f"**Tip:** {bal.low_value_share}% of your spend this month went to routine work, "
        f"mostly {words}. Agents can take whole tasks off your plate"
    )
    buttons = []
    if tut:
        text += f" — try “{tut.title}” ({tut.minutes or 20} min)."
        buttons.append(tips.open_button(tut))
    else:
        text += "."
    if cfg.sandbox.enabled:
        buttons.append(Button(label="Request sandbox budget", action="sandbox.open_form"))
    return [Text(text=text), Actions(buttons=buttons)] if buttons else [Text(text=text)]


def balance_blocks(rt: Runtime, bal: Balance, *, own: bool = True) -> list[Block]:
    month = f"{bal.month.first:%B %Y}"
    whose = "Your" if own else f"{bal.person.name}'s"
    used = pct(bal.spent, bal.limit)
    blocks: list[Block] = [
        Header(text=f"{whose} AI budget — {month}"),
        Progress(
            label=f"{fmt_usd(bal.spent)} of {fmt_usd(bal.limit)}",
            value=bal.spent,
            total=bal.limit,
            caption=f"{used}% used · {fmt_usd(max(bal.remaining, 0))} left"
            if bal.remaining >= 0
            else f"{used}% used · {fmt_usd(-bal.remaining)} over",
        ),
        Facts(
            items=[
                Fact(label="Spent this month", value=fmt_usd(bal.spent)),
                Fact(label="Monthly cap", value=fmt_usd(bal.cap)),
                Fact(label="Sandbox grants", value=fmt_usd(bal.sandbox) if bal.grants else "none"),
                Fact(label="Remaining", value=fmt_usd(bal.remaining)),
            ]
        ),
        Text(text=forecast_text(bal)),
    ]
    for grant in bal.grants:
        ends = _local(rt, bal.person, grant.ends_at)
        when = f"until {ends:%b %-d}" if grant.ends_at > rt.now() else f"ended {ends:%b %-d}"
        blocks.append(Context(text=f"Sandbox grant #{grant.id}: {fmt_usd(grant.amount)} {when}"))
    if bal.grants and bal.sandbox < sum(g.amount for g in bal.grants):
        blocks.append(Context(text="A grant's amount covers its whole duration; what earlier "
                                   "months used of it is not available again."))
    if bal.by_category:
        blocks.append(
            Facts(
                title="Where it goes",
                items=[
                    Fact(label=c.capitalize(), value=f"{fmt_usd(v)} ({pct(v, bal.spent)}%)")
                    for c, v in bal.by_category[:TOP_CATEGORIES]
                ],
            )
        )
    if bal.by_model:
        blocks.append(
            Facts(
                title="Top models",
                items=[Fact(label=m, value=fmt_usd(v)) for m, v in bal.by_model[:TOP_MODELS]],
            )
        )
    return blocks


async def balance_reply(ctx: Ctx, person: PersonView, *, with_tip: bool = True) -> Reply:
    bal = await ledger.balance(ctx.rt, person)  # one statement: one consistent card
    return card_reply(ctx, bal, with_tip=with_tip)


async def own_card(ctx: Ctx) -> Reply | None:
    """The asker's card when the adapter has not looked them up (``Actor.lookup``): the
    card's statement finds them by their Slack id. None when it can't (another platform,
    or nobody active has that id yet): then the router looks them up the usual way."""
    if ctx.actor.platform != "slack":
        return None
    bal = await ledger.balance_of_slack_user(ctx.rt, ctx.actor.platform_user_id)
    if bal is None:
        return None
    return card_reply(Ctx(ctx.rt, replace(ctx.actor, person=bal.person, lookup=None)), bal)


def card_reply(ctx: Ctx, bal: Balance, *, with_tip: bool = True) -> Reply:
    blocks = balance_blocks(ctx.rt, bal, own=bal.person.id == ctx.person.id)
    if with_tip:
        blocks += tip_blocks(ctx, bal)
    blocks.append(Context(text=freshness_line(ctx.rt, bal.person, bal.as_of)))
    summary = (
        f"{fmt_usd(bal.spent)} of {fmt_usd(bal.limit)} spent in "
        f"{bal.month.first:%B}, {fmt_usd(bal.remaining)} left"
    )
    return Reply(text=summary, blocks=blocks)


async def show_balance(ctx: Ctx, args: list[str]) -> Reply | Form:
    if args:
        return usage_reply("`/tokens` takes no arguments. Did you mean one of these?")
    return await balance_reply(ctx, ctx.person)


async def show_help(ctx: Ctx, args: list[str]) -> Reply | Form:
    return usage_reply()


async def show_history(ctx: Ctx, args: list[str]) -> Reply | Form:
    async with ctx.rt.db.reader() as s:
        months = await ledger.history(ctx.rt, s, ctx.person)
    items = [
        Fact(
            label=f"{m.month.first:%b %Y}",
            value=f"{fmt_usd(m.spent)} of {fmt_usd(m.cap, cents=False)} "
            f"({pct(m.spent, m.cap)}%) · agentic {m.agentic_share}%",
        )
        for m in months
    ]
    first, last = months[-1], months[0]
    trend = last.agentic_share - first.agentic_share
    note = (
        f"Your agentic share went from {first.agentic_share}% to {last.agentic_share}%."
        if trend
        else "Your agentic share has not moved over these months."
    )
    return Reply(
        text=f"Your last {len(months)} months",
        blocks=[
            Header(text=f"Your last {len(months)} months"),
            Facts(items=items),
            Context(text=note),
        ],
    )


async def refresh(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    return ActionResult(update=await balance_reply(ctx, ctx.person))


ACTIONS = {"balance.refresh": refresh}
