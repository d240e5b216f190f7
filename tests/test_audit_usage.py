"""The known-ROI audit and the measured effect of tips (nudged vs holdout)."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta

from sqlalchemy import select, text

from bot.nudges.effect import holdout_effect
from bot.store.tables import AuditEntry, Nudge, Person
from tests.helpers.cli import tokencoach
from tests.helpers.crafted import record, write
from tests.helpers.slack import block_texts

SWEPT = datetime.fromisoformat("2026-10-13T14:00:00+00:00")
COHORTS = {"omar.haddad@acme.example": ("nudged", 1000, "0.50"),
           "david.osei@acme.example": ("nudged", 2000, "0.30"),
           "mei.chen@acme.example": ("holdout", 1500, "0.10")}


async def crafted(rt) -> None:  # type: ignore[no-untyped-def]
    recs = []
    for email, (_, _, agentic) in COHORTS.items():
        for d in range(1, 29):
            day = date(2026, 10, 13) + timedelta(days=d)
            recs.append(record(rt, email, day, cost=f"{float(agentic) * 10:.2f}",
                               category="agentic", tools=1))
            recs.append(record(rt, email, day, cost=f"{(1 - float(agentic)) * 10:.2f}",
                               category="summarization"))
    await write(rt, recs)
    async with rt.db.session() as s:
        ids = dict((await s.execute(select(Person.email, Person.id))).all())
        for email, (cohort, before, _) in COHORTS.items():
            s.add(Nudge(person_id=ids[email], period="2026-10-13T10:00", cohort=cohort,
                        tutorial_id="research-agent" if cohort == "nudged" else None,
                        category="summarization", low_value_share_bp=8000,
                        agentic_share_bp=before, spend_micros=1, created_at=SWEPT))


async def test_effect_computes_from_recorded_data(rt) -> None:  # type: ignore[no-untyped-def]
    await crafted(rt)
    async with rt.db.reader() as s:
        effect = await holdout_effect(s, rt.config, rt.now(), rt.tz)
        # Independently: agentic share per person over the 28 days after the sweep.
        rows = await s.execute(text(
            "SELECT p.email, SUM(CASE WHEN u.category = 'agentic' THEN u.cost_micros ELSE 0 END)"
            " * 10000 / SUM(u.cost_micros) FROM usage_records u JOIN people p "
            "ON p.id = u.person_id WHERE u.day > '2026-10-13' AND u.day <= '2026-11-10' "
            "GROUP BY p.email"))
        after = {e: int(bp) for e, bp in rows}
    assert effect is not None
    nudged = [e for e, c in COHORTS.items() if c[0] == "nudged"]
    assert effect.nudged.people == 2 and effect.holdout.people == 1
    assert effect.nudged.before_bp == (1000 + 2000) // 2
    assert effect.nudged.after_bp == sum(after[e] for e in nudged) // 2
    assert effect.holdout.after_bp == after["mei.chen@acme.example"]
    assert round(effect.effect_pts, 1) == round(
        (sum(after[e] for e in nudged) / 2 - 1500) / 100
        - (after["mei.chen@acme.example"] - 1500) / 100, 1)
    assert "too early to conclude" in effect.sentence()


async def test_audit_usage_cli(rt) -> None:  # type: ignore[no-untyped-def]
    await crafted(rt)
    result = await asyncio.to_thread(tokencoach, "audit-usage", "--since", "2026-10-14",
                                     database_url=rt.env.database_url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Customer Support" in out and "Acme Robotics" in out
    assert "david.osei@acme.example" in out  # 70% summarization: over the threshold
    assert "omar.haddad@acme.example" not in out  # half agentic
    assert "Effect of the tips" in out
    bad = await asyncio.to_thread(tokencoach, "audit-usage", "--since", "last tuesday",
                                  database_url=rt.env.database_url)
    assert bad.returncode == 2 and "Invalid value for --since" in bad.stderr
    assert "use a date (2026-11-23)" in bad.stderr


async def test_admin_audit_in_chat_is_for_admins_only(slack_bot) -> None:  # type: ignore[no-untyped-def]
    await crafted(slack_bot.rt)
    _, refused = await slack_bot.client.command(slack_bot.uid("omar.haddad@acme.example"),
                                                "admin audit")
    assert "for the admins" in " ".join(block_texts(refused["blocks"]))
    _, report = await slack_bot.client.command(slack_bot.uid("dana.okafor@acme.example"),
                                               "admin audit")
    body = " ".join(block_texts(report["blocks"]))
    assert "Known-ROI audit" in body and "david.osei@acme.example" in body
    async with slack_bot.rt.db.reader() as s:
        actions = (await s.scalars(select(AuditEntry.action))).all()
    assert "admin.refused" in actions
