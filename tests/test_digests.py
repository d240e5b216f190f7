"""Weekly team digests: exact figures, privacy, catch-up, charts, exactly once."""

from __future__ import annotations

import asyncio
import struct
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from bot.digest.chart import render, spec
from bot.money import fmt_usd, to_micros
from bot.reply import Facts, Reply
from bot.scheduling.runner import run_due, run_job
from bot.store.tables import Chart, OutboxMessage
from bot.textrender import as_text
from bot.usage.pricing import PriceTable
from tests.helpers.cli import tokencoach
from tests.helpers.crafted import record, write

MONDAY = "2026-11-23T17:30:00+00:00"  # after 09:00 in New York, Berlin and Los Angeles
WEEK = [date(2026, 11, 16) + timedelta(days=i) for i in range(7)]
PLATFORM = ["tomas.novak@acme.example", "aisha.bello@acme.example", "lena.fischer@acme.example",
            "omar.haddad@acme.example", "grace.kim@acme.example", "rafael.costa@acme.example"]
GROWTH = ["ben.carter@acme.example", "hana.sato@acme.example", "ella.nguyen@acme.example"]


async def crafted_month(rt) -> None:  # type: ignore[no-untyped-def]
    recs = []
    for i, email in enumerate(PLATFORM):
        for day in WEEK:
            recs.append(record(rt, email, day, cost=f"{3 + i}.25", category="agentic", tools=4))
            recs.append(record(rt, email, day, cost="1.10", category="summarization"))
        recs.append(record(rt, email, date(2026, 11, 3), cost="40.00", category="chat"))
        recs.append(record(rt, email, date(2026, 10, 20), cost="77.00", category="coding"))
    for email in GROWTH:
        recs.append(record(rt, email, date(2026, 11, 18), cost="12.34", category="writing"))
    await write(rt, recs)


async def independent(rt, team: str, first: date, last: date) -> dict[str, int]:  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        rows = await s.execute(text(
            "SELECT u.category, SUM(u.cost_micros) FROM usage_records u "
            "JOIN people p ON p.id = u.person_id JOIN teams t ON t.id = p.team_id "
            "WHERE t.key = :k AND u.day >= :a AND u.day <= :b GROUP BY u.category"),
            {"k": team, "a": first, "b": last})
        return {c: int(v) for c, v in rows}


async def posted(rt, kind: str = "digest") -> list[tuple[str, Reply]]:  # type: ignore[no-untyped-def]
    async with rt.db.reader() as s:
        rows = (await s.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)
                                .order_by(OutboxMessage.id))).all()
    return [(r.dedupe_key, Reply.from_json(r.payload)) for r in rows]


def facts(reply: Reply) -> dict[str, str]:
    return {f.label: f.value for b in reply.blocks if isinstance(b, Facts) for f in b.items}


async def test_figures_equal_an_independent_recomputation(rt) -> None:  # type: ignore[no-untyped-def]
    await crafted_month(rt)
    rt.clock.set(MONDAY)
    await run_job(rt, "digests")
    digests = dict(await posted(rt))
    platform = digests["digest:platform:2026-W48@playground"]
    week = await independent(rt, "platform", WEEK[0], WEEK[-1])
    month = await independent(rt, "platform", date(2026, 11, 1), date(2026, 11, 23))
    f = facts(platform)
    assert f["This week"].startswith(fmt_usd(sum(week.values())) + " ")
    assert f["Month to date"].startswith(fmt_usd(sum(month.values())) + " of ")
    assert f["People using AI"] == "6"
    total = sum(week.values())
    for category, cost in week.items():
        share = (cost * 100 + total // 2) // total
        assert f[category.capitalize()] == f"{fmt_usd(cost)} ({share}%)"
    assert f["Agentic share"].startswith(f"{(week['agentic'] * 100 + total // 2) // total}%")
    # The chart is stored as data; its last week equals the week's total by category.
    async with rt.db.reader() as s:
        chart = await s.get(Chart, "digest-platform-2026-W48")
    assert {c: v[-1] for c, v in chart.spec["series"].items() if v[-1]} == week
    assert chart.png is None  # rendered on first use


async def test_small_team_folds_categories_and_says_why(rt) -> None:  # type: ignore[no-untyped-def]
    await crafted_month(rt)
    rt.clock.set(MONDAY)
    await run_job(rt, "digests")
    growth = dict(await posted(rt))["digest:growth:2026-W48@playground"]
    body = as_text(growth)
    assert "fewer than 5 people used AI" in body
    assert "Writing" not in body and "Agentic share" not in body
    async with rt.db.reader() as s:
        chart = await s.get(Chart, "digest-growth-2026-W48")
    assert list(chart.spec["series"]) == ["other"]
    assert chart.spec["series"]["other"][-1] == to_micros("37.02")


async def test_channel_has_no_names_managers_see_only_their_reports(rt) -> None:  # type: ignore[no-untyped-def]
    await crafted_month(rt)
    rt.clock.set(MONDAY)
    await run_job(rt, "digests")
    names = [p.name for p in rt.config.directory.people]
    for _, reply in await posted(rt, "digest"):
        body = as_text(reply)
        assert not [n for n in names if n in body], body
    managers = {key.split(":")[4].split("@")[0]: reply
                for key, reply in await posted(rt, "manager_digest")
                if key.startswith("digest:platform")}
    async with rt.db.reader() as s:
        ids = dict((await s.execute(text("SELECT email, id FROM people"))).all())
    priya = as_text(managers[str(ids["priya.raman@acme.example"])])
    jordan = as_text(managers[str(ids["jordan.blake@acme.example"])])
    assert "Tomás Novák" in priya and "Grace Kim" in priya and "Dana Okafor" not in priya
    assert "Priya Raman" in jordan and "Tomás Novák" not in jordan


async def test_routing_savings_are_an_estimate_from_list_prices(rt) -> None:  # type: ignore[no-untyped-def]
    recs = [record(rt, e, WEEK[2], cost=None, category="summarization", model="gpt-4o",
                   input_tokens=1_000_000, output_tokens=10_000) for e in PLATFORM]
    recs.append(record(rt, PLATFORM[0], WEEK[2], cost=None, category="summarization",
                       model="gpt-4o", tools=3, input_tokens=2_000_000, output_tokens=1))
    await write(rt, recs)
    rt.clock.set(MONDAY)
    await run_job(rt, "digests")
    platform = dict(await posted(rt))["digest:platform:2026-W48@playground"]
    # Independently: gpt-4o at $2.50/$10 per 1M tokens, gpt-4o-mini at $0.15/$0.60; the
    # record with tool calls is excluded.
    actual = 6 * (Decimal("2.50") + Decimal("0.10"))
    routed = 6 * (Decimal("0.15") + Decimal("0.006"))
    line = as_text(platform)
    assert f"{fmt_usd(to_micros(actual))} of summarization" in line
    assert f"about {fmt_usd(to_micros(routed))}" in line
    assert PriceTable(rt.config.pricing).cheaper_model("gpt-4o-2024-08-06") == "gpt-4o-mini"


async def test_missed_monday_is_posted_once_and_marked_late(rt) -> None:  # type: ignore[no-untyped-def]
    await crafted_month(rt)
    # The bot ran on Friday, then was down over Monday's digests until Tuesday.
    await run_due(rt, datetime.fromisoformat("2026-11-20T15:00:00+00:00"))
    tuesday = datetime.fromisoformat("2026-11-24T15:00:00+00:00")
    first = [o for o in await run_due(rt, tuesday) if o.job == "digests"]
    assert sorted(o.period for o in first) == ["growth:2026-W48", "platform:2026-W48",
                                               "support:2026-W48"]
    assert all(o.late for o in first)
    assert "posted late" in as_text(dict(await posted(rt))["digest:platform:2026-W48@playground"])
    again = [o for o in await run_due(rt, tuesday + timedelta(hours=1)) if o.job == "digests"]
    assert again == []
    assert len(await posted(rt)) == 3


def test_chart_is_a_png_with_one_bar_per_week_and_category() -> None:
    weeks = [date(2026, 9, 28) + timedelta(days=7 * i) for i in range(8)]
    series = {"agentic": [1_000_000] * 8, "chat": [2_000_000] * 8, "writing": [0] * 7 + [5]}
    png, bars = render(spec("t", weeks, series))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (800, 400)
    assert bars == 8 + 8 + 1


async def test_dry_run_prints_and_posts_nothing(rt, tmp_path) -> None:  # type: ignore[no-untyped-def]
    await crafted_month(rt)
    result = await asyncio.to_thread(tokencoach, "digest", "--team", "platform", "--dry-run",
                                     "--at", MONDAY, "--out", str(tmp_path),
                                     database_url=rt.env.database_url)
    assert result.returncode == 0, result.stderr
    assert "Platform Engineering — weekly AI digest" in result.stdout
    png = tmp_path / "digest-platform-2026-W48.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and str(png) in result.stdout
    assert await posted(rt) == []


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_processes_post_one_digest_per_team(slack_bot) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers.slack import SECRET, TOKEN

    bot = slack_bot
    await crafted_month(bot.rt)
    env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_SIGNING_SECRET": SECRET,
           "SLACK_API_URL": f"{bot.fake.base_url}/api/"}

    def run() -> str:
        result = tokencoach("jobs", "run-due", "--at", MONDAY,
                            database_url=bot.rt.env.database_url, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    await asyncio.gather(asyncio.to_thread(run), asyncio.to_thread(run))
    for channel in ("C0PLATFORM", "C0SUPPORT", "C0GROWTH"):
        posts = [m for m in bot.fake.messages(channel) if "weekly AI digest" in str(m["blocks"])]
        assert len(posts) == 1, channel
        images = [b for b in posts[0]["blocks"] if b["type"] == "image"]
        assert len(images) == 1 and images[0]["slack_file"]["id"] in bot.fake.uploads
    # Every posted chart was uploaded exactly once (channel and manager digests alike).
    shown = [b["slack_file"]["id"] for m in bot.fake.messages() for b in m["blocks"]
             if b["type"] == "image"]
    assert sorted(shown) == sorted(bot.fake.uploads) and len(set(shown)) == len(shown)


async def test_a_chart_week_with_a_handful_of_people_folds_the_chart(rt) -> None:  # type: ignore[no-untyped-def]
    await crafted_month(rt)
    # Six weeks ago only two platform people used AI: that week's mix could name them.
    await write(rt, [record(rt, e, date(2026, 10, 6), cost="5.00", category="agentic")
                     for e in PLATFORM[:2]])
    rt.clock.set(MONDAY)
    await run_job(rt, "digests")
    async with rt.db.reader() as s:
        chart = await s.get(Chart, "digest-platform-2026-W48")
    assert list(chart.spec["series"]) == ["other"]
    platform = dict(await posted(rt))["digest:platform:2026-W48@playground"]
    assert facts(platform)["People using AI"] == "6"  # this week itself is not small


async def test_batch_figures_equal_independent_counts_for_every_week(rt) -> None:  # type: ignore[no-untyped-def]
    """stats.compute for all teams at once: people per chart week, month-to-date per team
    and each member's spend and agentic spend, against plain SQL over usage_records."""
    from bot.digest import stats
    from bot.store.tables import Team

    recs = []
    for i, email in enumerate(PLATFORM + GROWTH):
        for week in range(i % 4, 8, 2):  # everyone in a different set of weeks
            day = date(2026, 9, 28) + timedelta(days=7 * week + i % 7)
            recs.append(record(rt, email, day, cost=f"{i + 1}.0{week}", category="agentic"))
            recs.append(record(rt, email, day, cost="0.50", category="chat"))
    # Zero-cost usage is not "people with usage"; unknown people belong to no team.
    recs.append(record(rt, GROWTH[0], date(2026, 9, 29), cost="0.00"))
    recs.append(record(rt, "nobody@elsewhere.example", date(2026, 11, 17), cost="9.99"))
    recs.append(record(rt, PLATFORM[1], date(2026, 11, 23), cost="2.22", category="coding"))
    await write(rt, recs)
    rt.clock.set(MONDAY)
    async with rt.db.reader() as s:
        teams = {k: i for k, i in (await s.execute(select(Team.key, Team.id))).all()}
        digests = await stats.compute(rt, s, list(teams.values()), digest_day=date(2026, 11, 23),
                                      now=rt.now(), with_members=True)

        async def one(sql: str, **params: object) -> dict[tuple, int]:  # type: ignore[type-arg]
            rows = await s.execute(text(sql), params)
            return {tuple(r[:-1]): int(r[-1]) for r in rows}

        active = [(k, d if isinstance(d, date) else date.fromisoformat(d), p) for k, d, p in (
            await s.execute(text(
                "SELECT t.key, u.day, u.person_id FROM usage_records u JOIN teams t "
                "ON t.id = u.team_id WHERE u.cost_micros > 0 AND u.person_id IS NOT NULL"))
        ).all()]
        mtd = await one(
            "SELECT t.key, SUM(u.cost_micros) FROM usage_records u JOIN teams t "
            "ON t.id = u.team_id WHERE u.day >= :a AND u.day <= :b GROUP BY t.key",
            a=date(2026, 11, 1), b=date(2026, 11, 23))
        spent = await one(
            "SELECT p.email, u.category = 'agentic', SUM(u.cost_micros) FROM usage_records u "
            "JOIN people p ON p.id = u.person_id WHERE u.day >= :a AND u.day <= :b "
            "GROUP BY p.email, u.category = 'agentic'", a=date(2026, 11, 1), b=date(2026, 11, 23))
        emails = dict((await s.execute(text("SELECT id, email FROM people"))).all())
    for key, tid in teams.items():
        d = digests[tid]
        assert len(d.weeks) == 8 and d.weeks[-1] == date(2026, 11, 16)
        expected = [len({p for k, day, p in active
                         if k == key and w <= day < w + timedelta(days=7)}) for w in d.weeks]
        assert d.weekly_people == expected, key
        assert d.active_people == expected[-1]
        assert d.mtd == mtd.get((key,), 0), key
        for m in d.members:
            email = emails[m.person_id]
            assert m.spent == sum(v for (e, _), v in spent.items() if e == email), email
            assert m.agentic == spent.get((email, True), 0), email
    assert digests[teams["platform"]].weekly_people != [0] * 8
    assert any(m.spent for m in digests[teams["platform"]].members)
