"""The weekly nudge sweep: who gets a tip, which tutorial, when, and what is recorded."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

from sqlalchemy import select, update

from bot.nudges.messages import in_holdout
from bot.nudges.quiet import next_working_moment
from bot.scheduling.runner import run_job
from bot.store.tables import Nudge, OutboxMessage, Person
from tests.conftest import with_overrides
from tests.helpers.approvals import buttons, text_of
from tests.helpers.crafted import record, write

SWEEP = "2026-11-24T15:00:00+00:00"  # Tuesday 10:00 in New York (the default sweep cron)
HEAVY = {"omar.haddad@acme.example": "summarization", "david.osei@acme.example": "chat",
         "ben.carter@acme.example": "summarization", "mei.chen@acme.example": "chat",
         "maya.rossi@acme.example": "summarization"}
AGENTIC = "aisha.bello@acme.example"
TINY = "rafael.costa@acme.example"
OPTED_OUT = "grace.kim@acme.example"
RECENT = "lena.fischer@acme.example"
TOKYO = "kenji.watanabe@acme.example"  # Asia/Tokyo: the sweep lands at midnight there


async def population(rt) -> None:  # type: ignore[no-untyped-def]
    recs = []
    sweep_day = date(2026, 11, 24)
    for offset in range(1, 27):
        day = sweep_day - timedelta(days=offset)
        for email, category in {**HEAVY, OPTED_OUT: "chat", RECENT: "summarization",
                                TOKYO: "summarization"}.items():
            recs.append(record(rt, email, day, cost="9.00", category=category))
            recs.append(record(rt, email, day, cost="1.00", category="coding"))
        recs.append(record(rt, AGENTIC, day, cost="8.00", category="agentic", tools=3))
        recs.append(record(rt, AGENTIC, day, cost="2.00", category="chat"))
        recs.append(record(rt, TINY, day, cost="0.10", category="chat"))
    await write(rt, recs)
    async with rt.db.session() as s:
        await s.execute(update(Person).where(Person.email == OPTED_OUT).values(tips_enabled=False))
        lena = await s.scalar(select(Person.id).where(Person.email == RECENT))
        s.add(Nudge(person_id=lena, period="earlier", cohort="nudged", tutorial_id="agent-errors",
                    category="summarization", low_value_share_bp=9000, agentic_share_bp=0,
                    spend_micros=1, variant=0,
                    created_at=datetime.fromisoformat("2026-11-18T15:00:00+00:00")))


async def nudges_by_email(rt) -> dict[str, Nudge]:  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        rows = (await s.execute(select(Person.email, Nudge).join(
            Person, Person.id == Nudge.person_id).where(Nudge.period != "earlier"))).all()
    return {email: nudge for email, nudge in rows}


async def test_exactly_the_right_people_are_nudged(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await population(bot.rt)
    bot.rt.clock.set(SWEEP)
    [outcome] = await run_job(bot.rt, "nudges")
    decided = await nudges_by_email(bot.rt)
    share = float(bot.rt.config.nudges.holdout_share)
    async with bot.rt.db.reader() as s:
        ids = dict((await s.execute(select(Person.email, Person.id))).all())
    held = {e for e in [*HEAVY, TOKYO] if in_holdout(ids[e], date(2026, 11, 24), share)}
    assert set(decided) == set(HEAVY) | {TOKYO}
    assert {e for e, n in decided.items() if n.cohort == "holdout"} == held
    for email in (AGENTIC, TINY, OPTED_OUT, RECENT):
        assert email not in decided
    assert outcome.result["near_zero"] >= 1 and outcome.result["opted_out"] == 1
    assert outcome.result["cooling_down"] == 1
    # The tutorial fits the dominant category and level (beginners: nobody is agentic here).
    for email, nudge in decided.items():
        if nudge.cohort == "nudged":
            assert nudge.tutorial_id in {"research-agent", "delegate-multistep", "triage-agent"}
            if HEAVY.get(email) == "summarization" or email == TOKYO:
                assert nudge.tutorial_id == "research-agent"
            else:
                assert nudge.tutorial_id == "delegate-multistep"  # first chat tutorial
    # Delivery waits for working hours in each person's zone: at 07:00 in Los Angeles,
    # Ben and Maya get nothing yet; by 09:00 there everyone in the Americas/Europe has one.
    await bot.deliver()
    assert bot.fake.messages(bot.fake.dm_channel("ben.carter@acme.example")) == []
    bot.rt.clock.set("2026-11-24T17:00:01+00:00")
    await bot.deliver()
    for email in HEAVY:
        dm = bot.fake.messages(bot.fake.dm_channel(email))
        if email in held:
            assert dm == []
            continue
        assert len(dm) == 1
        assert set(buttons(dm[0])) == {"Open tutorial", "Not now", "Stop these tips"}
        assert "%" in text_of(dm[0])  # their numbers, in plain words
    # Tokyo is asleep: deferred to 09:00 there, not dropped.
    if TOKYO not in held:
        assert bot.fake.messages(bot.fake.dm_channel(TOKYO)) == []
        async with bot.rt.db.reader() as s:
            row = await s.scalar(select(OutboxMessage).where(
                OutboxMessage.kind == "nudge", OutboxMessage.target_id == ids[TOKYO]))
        assert row.status == "pending"
        assert row.next_attempt_at == datetime.fromisoformat("2026-11-25T00:00:00+00:00")
        bot.rt.clock.set("2026-11-25T00:00:01+00:00")
        await bot.deliver()
        assert len(bot.fake.messages(bot.fake.dm_channel(TOKYO))) == 1


async def test_a_rerun_of_the_sweep_sends_nothing_more(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    await population(bot.rt)
    bot.rt.clock.set(SWEEP)
    from bot.scheduling.registry import all_jobs
    from jobs.nudges import run

    spec = all_jobs()["nudges"]
    [occ] = await spec.due(bot.rt, bot.rt.now())
    first = await run(bot.rt, occ)
    again = await run(bot.rt, occ)  # e.g. a replica retaking the claim after a crash
    assert first["nudged"] + first["holdout"] >= 5
    assert again["nudged"] == 0 and again["holdout"] == 0
    async with bot.rt.db.reader() as s:
        kinds = Counter((await s.scalars(select(OutboxMessage.kind))).all())
    assert kinds["nudge"] == first["nudged"]


async def test_tutorials_never_repeat_and_opt_out_is_immediate(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    cfg = with_overrides(bot.rt.config, nudges={"holdout_share": "0"})
    bot.rt.config = cfg
    await population(bot.rt)
    bot.rt.clock.set(SWEEP)
    await run_job(bot.rt, "nudges")
    first = {e: n.tutorial_id for e, n in (await nudges_by_email(bot.rt)).items()}
    # Tokyo's tip is waiting for working hours; opting out cancels it at once.
    status, _ = await bot.client.command(bot.uid(TOKYO), "tips off")
    assert status == 200
    bot.rt.clock.set("2026-11-25T01:00:00+00:00")
    await bot.deliver()
    assert bot.fake.messages(bot.fake.dm_channel(TOKYO)) == []
    # Two weeks and a day later (past the cooldown), more usage, another sweep.
    more = [record(bot.rt, e, date(2026, 12, 8) - timedelta(days=d), cost="9.00",
                   category=c) for e, c in HEAVY.items() for d in range(1, 10)]
    await write(bot.rt, more)
    bot.rt.clock.set("2026-12-08T15:00:00+00:00")
    await run_job(bot.rt, "nudges")
    async with bot.rt.db.reader() as s:
        rows = (await s.execute(select(Person.email, Nudge.tutorial_id).join(
            Person, Person.id == Nudge.person_id).where(Nudge.period.like("2026-12-08%")))).all()
    second = dict(rows)
    assert set(second) == set(HEAVY) | {RECENT}  # Tokyo opted out; Lena's tip is old now
    for email, tutorial in second.items():
        assert tutorial != first.get(email, "agent-errors")


def test_holdout_is_stable_per_quarter_and_about_the_configured_share() -> None:
    q4 = [in_holdout(pid, date(2026, 11, 3), 0.1) for pid in range(10_000)]
    assert q4 == [in_holdout(pid, date(2026, 12, 28), 0.1) for pid in range(10_000)]
    assert 0.08 < sum(q4) / len(q4) < 0.12
    q1 = [in_holdout(pid, date(2027, 1, 5), 0.1) for pid in range(10_000)]
    assert q1 != q4  # a new quarter draws a new holdout


def test_quiet_hours_follow_the_persons_zone(base_config) -> None:  # type: ignore[no-untyped-def]
    n = base_config.nudges
    friday_night = datetime.fromisoformat("2026-11-27T23:30:00+00:00")  # 18:30 in New York
    assert next_working_moment(friday_night, "America/New_York", n) == datetime.fromisoformat(
        "2026-11-30T14:00:00+00:00")  # Monday 09:00 New York
    tuesday = datetime.fromisoformat("2026-11-24T15:00:00+00:00")
    assert next_working_moment(tuesday, "America/New_York", n) == tuesday


async def test_tips_show_the_agentic_share_and_its_change(slack_bot) -> None:  # type: ignore[no-untyped-def]
    bot = slack_bot
    bot.rt.clock.set(SWEEP)
    recs = []
    for offset in range(1, 56):
        day = date(2026, 11, 24) - timedelta(days=offset)
        agentic = "4.00" if offset < 28 else "1.00"  # 40% now, 10% in the 28 days before
        recs.append(record(bot.rt, AGENTIC, day, cost=agentic, category="agentic", tools=2))
        recs.append(record(bot.rt, AGENTIC, day, cost=f"{10 - float(agentic):.2f}",
                           category="summarization"))
    await write(bot.rt, recs)
    _, body = await bot.client.command(bot.uid(AGENTIC), "tips")
    from tests.helpers.slack import block_texts

    text = " ".join(block_texts(body["blocks"]))
    assert "60% of your spend went to routine work and 40% to agentic work (+30 pts" in text
