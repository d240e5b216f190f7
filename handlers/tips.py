"""`/tokens tips [on|off]` and the tip buttons: Open tutorial, Not now, Stop these tips,
I finished it. Every click is recorded (tip_events) so the admin report can count them."""

from __future__ import annotations

from sqlalchemy import select, update

from bot import ledger, tips
from bot.nudges.shares import trailing
from bot.reply import (
    ActionResult,
    Actions,
    Block,
    Button,
    Context,
    Form,
    Header,
    Reply,
    Text,
    simple,
)
from bot.store.tables import Nudge, OutboxMessage, Person, TipEvent
from bot.store.types import row_id
from bot.timeutil import local_day
from handlers.context import Ctx
from handlers.texts import usage_reply


async def _record(
    ctx: Ctx, event: str, tutorial_id: str | None, nudge_id: int | None = None
) -> None:
    now = ctx.rt.now()
    # Button values come back from the client: keep only a tutorial of the catalog and a
    # nudge sent to this person (a forged value records nothing it does not name).
    if tutorial_id is not None and tips.tutorial(ctx.rt.config, tutorial_id) is None:
        tutorial_id = None
    async with ctx.rt.db.session() as s:
        if nudge_id is not None:
            nudge_id = await s.scalar(
                select(Nudge.id).where(Nudge.id == nudge_id, Nudge.person_id == ctx.person.id))
        s.add(
            TipEvent(
                person_id=ctx.person.id,
                nudge_id=nudge_id,
                tutorial_id=tutorial_id,
                event=event,
                at=now,
            )
        )
        if nudge_id is not None:
            column = {
                "opened": Nudge.opened_at,
                "not_now": Nudge.dismissed_at,
                "completed": Nudge.completed_at,
            }.get(event)
            if column is not None:
                await s.execute(
                    update(Nudge)
                    .where(Nudge.id == nudge_id, Nudge.person_id == ctx.person.id, column.is_(None))
                    .values({column.key: now})
                )


async def _set_enabled(ctx: Ctx, enabled: bool) -> None:
    async with ctx.rt.db.session() as s:
        await s.execute(
            update(Person)
            .where(Person.id == ctx.person.id)
            .values(tips_enabled=enabled, tips_changed_at=ctx.rt.now())
        )
        if not enabled:
            # At once: a tip already queued for working hours is not sent either.
            await s.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.kind == "nudge",
                    OutboxMessage.target_type == "person",
                    OutboxMessage.target_id == ctx.person.id,
                    OutboxMessage.status == "pending",
                )
                .values(status="skipped", last_error="the recipient turned tips off")
            )
        s.add(
            TipEvent(
                person_id=ctx.person.id, event="opt_in" if enabled else "opt_out", at=ctx.rt.now()
            )
        )


def _split(value: str) -> tuple[str | None, int | None]:
    """Button values are 'tutorial_id' or 'tutorial_id|nudge_id'."""
    tutorial_id, _, nudge = value.partition("|")
    return (tutorial_id or None), row_id(nudge)


async def tips_command(ctx: Ctx, args: list[str]) -> Reply | Form:
    if args and args[0].lower() in ("off", "stop"):
        await _set_enabled(ctx, False)
        return simple(
            "Personal tips are off. You'll still see your balance and threshold "
            "alerts. `/tokens tips on` turns tips back on."
        )
    if args and args[0].lower() in ("on", "start"):
        await _set_enabled(ctx, True)
        return simple(
            "Personal tips are on. At most one every "
            f"{ctx.rt.config.nudges.cooldown_days} days, only in working hours."
        )
    if args:
        return usage_reply("`/tokens tips` takes `on`, `off`, or nothing.")
    return await recommendations(ctx)


async def recommendations(ctx: Ctx) -> Reply:
    cfg = ctx.rt.config
    window = cfg.nudges.window_days
    bal = await ledger.balance(ctx.rt, ctx.person)
    had = bal.tutorials_had
    async with ctx.rt.db.reader() as s:
        enabled = await s.scalar(select(Person.tips_enabled).where(Person.id == ctx.person.id))
        recent = (await trailing(s, end=local_day(ctx.rt.now(), ctx.rt.tz), days=window,
                                 person_ids=[ctx.person.id])).get(ctx.person.id)
    category = tips.dominant(bal.by_category, cfg.categories.low_value) or tips.dominant(
        bal.by_category, cfg.categories.names
    )
    level = tips.level_for(bal.agentic_share)
    picks = []
    exclude = set(had)
    for _ in range(3):
        tut = tips.pick_tutorial(cfg, category, level, exclude)
        if tut is None:
            break
        picks.append(tut)
        exclude.add(tut.id)
    blocks: list[Block] = [Header(text="Tutorials for you")]
    if recent and recent.spend:
        words = tips.CATEGORY_WORDS.get(category or "", "your work")
        change = recent.agentic_change(cfg)
        trend = f" ({change:+d} pts on the {window} days before)" if recent.prev else ""
        blocks.append(
            Text(
                text=f"Over the last {window} days {recent.low_value(cfg)}% of your spend went "
                f"to routine work and {recent.agentic(cfg)}% to agentic work{trend}; most of "
                f"it was {words}."
            )
        )
    if not picks:
        blocks.append(Text(text="You've seen every tutorial in the catalog — nice work."))
    for tut in picks:
        blocks.append(
            Text(text=f"**{tut.title}** ({tut.level}, {tut.minutes or 20} min)\n{tut.summary}")
        )
        blocks.append(
            Actions(
                buttons=[
                    tips.open_button(tut),
                    Button(label="I finished it", action="tips.done", value=tut.id),
                ]
            )
        )
    blocks.append(
        Context(
            text="Personal tips are "
            + ("on" if enabled else "off")
            + " · `/tokens tips off` stops them, `/tokens tips on` resumes."
        )
    )
    return Reply(text="Tutorials for you", blocks=blocks)


async def opened(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    tutorial_id, nudge_id = _split(value)
    await _record(ctx, "opened", tutorial_id, nudge_id)
    return ActionResult()  # the client opens the URL itself


async def not_now(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    tutorial_id, nudge_id = _split(value)
    await _record(ctx, "not_now", tutorial_id, nudge_id)
    return ActionResult(
        update=simple(
            "No problem — I'll check back in a few weeks. "
            "`/tokens tips` shows tutorials whenever you want them."
        )
    )


async def stop(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    await _set_enabled(ctx, False)
    return ActionResult(
        update=simple(
            "Personal tips are off. `/tokens tips on` turns them "
            "back on. Threshold alerts still reach you."
        )
    )


async def done(ctx: Ctx, value: str, fields: dict[str, str]) -> ActionResult:
    tutorial_id, nudge_id = _split(value)
    await _record(ctx, "completed", tutorial_id, nudge_id)
    tut = tips.tutorial(ctx.rt.config, tutorial_id or "")
    title = f"“{tut.title}”" if tut else "that tutorial"
    return ActionResult(
        reply=simple(f"Marked {title} as finished. Thanks — it helps us see which tutorials work.")
    )


ACTIONS = {"tips.open": opened, "tips.not_now": not_now, "tips.stop": stop, "tips.done": done}
