"""The "known-ROI" audit: where the money goes, by team and category, and who is stuck.

If most spend is summaries and chat, the organization is stuck on known-ROI tasks; the
report says so per team and names the people over the threshold (for admins only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select

from bot.money import pct, to_micros
from bot.nudges.effect import Effect, holdout_effect, why_not_measured
from bot.nudges.shares import trailing
from bot.runtime import Runtime
from bot.store.tables import Person, Team, UsageDaily
from bot.timeutil import local_day


@dataclass
class TeamAudit:
    key: str
    name: str
    spend: int = 0
    by_category: dict[str, int] = field(default_factory=dict)

    def share(self, cats: list[str]) -> int:
        return pct(sum(v for c, v in self.by_category.items() if c in cats), self.spend)


@dataclass
class AuditReport:
    since: date
    until: date
    teams: list[TeamAudit]
    org: TeamAudit
    stuck: list[tuple[str, str, int, int]]  # (email, team, spend, low-value share %)
    effect: Effect | None
    categories: list[str]
    effect_text: str  # the effect, or why it cannot be measured yet
    team_known: bool = True  # False when --team named no team


async def audit_usage(rt: Runtime, *, since: date, team: str | None = None) -> AuditReport:
    cfg = rt.config
    until = local_day(rt.now(), rt.tz)
    async with rt.db.reader() as s:
        q = (
            select(UsageDaily.team_id, UsageDaily.category, func.sum(UsageDaily.cost_micros))
            .where(UsageDaily.day >= since, UsageDaily.day <= until)
            .group_by(UsageDaily.team_id, UsageDaily.category)
        )
        teams = {t.id: t for t in (await s.scalars(select(Team))).all()}
        wanted = {tid for tid, t in teams.items() if team is None or t.key == team}
        audits: dict[int, TeamAudit] = {}
        org = TeamAudit("org", cfg.org.name)
        for tid, category, cost in await s.execute(q):
            cost = int(cost or 0)
            if tid not in wanted and not (team is None and tid == 0):
                continue
            t = teams.get(tid)
            audit = audits.setdefault(
                tid, TeamAudit(t.key if t else "-", t.name if t else "No team (unattributed)")
            )
            audit.spend += cost
            audit.by_category[category] = audit.by_category.get(category, 0) + cost
            org.spend += cost
            org.by_category[category] = org.by_category.get(category, 0) + cost
        shares = await trailing(s, end=until, days=cfg.nudges.window_days)
        people = {
            p.id: p
            for p in (await s.scalars(select(Person).where(Person.id.in_(list(shares))))).all()
        }
        effect = await holdout_effect(s, cfg, rt.now(), rt.tz)
        effect_text = (
            effect.sentence() if effect else await why_not_measured(s, cfg, rt.now(), rt.tz)
        )
    threshold = int(cfg.nudges.low_value_threshold * 100)
    minimum = to_micros(cfg.nudges.min_spend_usd)
    stuck = []
    for pid, sh in shares.items():
        p = people.get(pid)
        if p is None or (team and (p.team_id is None or teams[p.team_id].key != team)):
            continue
        low = sh.low_value(cfg)
        if sh.spend >= minimum and low >= threshold:
            tkey = teams[p.team_id].key if p.team_id in teams else "-"
            stuck.append((p.email, tkey, sh.spend, low))
    stuck.sort(key=lambda x: (-x[3], -x[2]))
    ordered = sorted(audits.values(), key=lambda a: -a.spend)
    return AuditReport(
        since,
        until,
        ordered,
        org,
        stuck,
        effect,
        list(cfg.categories.names),
        effect_text,
        team_known=team is None or any(t.key == team for t in teams.values()),
    )
