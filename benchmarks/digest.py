"""Weekly digests for every team, without delivery: the job path and the batch path.

On the cached usage store (2,000 teams / 50k people / 60 days; --quick: 80 teams), read
into the OS page cache first (benchmarks.stores.warm), with the clock stopped at ANCHOR,
in a child process per backend:

* **job path**: the occurrences the scheduler finds due (jobs.digests.due), and for each
  team jobs.digests.build (the team's figures, the chart's spec, the channel digest and
  each manager's private one) — what `jobs.digests.run` does for a team minus the outbox
  and chart rows it writes, one team after another, from a cold start;
* **batch path**: bot.digest.stats.compute for all teams at once (a handful of grouped
  queries), then the same chart specs and channel and manager digests per team;
* **floor**: the one grouped scan every digest needs (weekly spend by team and category
  over the chart's 8 weeks of usage_daily), with the raw driver;
* **charts**: PNGs are rendered lazily (on first upload or fetch), so they are timed
  apart: bot.digest.chart.render for a sample of the teams' specs.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from benchmarks.common import (
    ANCHOR,
    BACKENDS,
    Section,
    Table,
    Verdict,
    emit,
    fmt_ms,
    log,
    percentile,
    pg_dsn,
    pg_url,
    proc_status,
    run_child,
    sqlite_path,
    sqlite_url,
)
from benchmarks.stores import usage_store, warm
from benchmarks.tokens import scale_of

TARGET_FLOOR_RATIO = 10.0  # the time of one grouped scan of the same rows
TARGET_SECONDS = 10.0
WHY_JOB = ("per-team work (a build with its own queries) repeated for every team; computing "
           "the teams due together in one stats.compute call is the batch path's time")
NOTES = """\
The batch path computes every team's figures with the same few grouped queries over
usage_daily, so its time follows the data, within a small multiple of the floor's one
scan. The job path is what the scheduler runs: one claim and one `build` per team. Until
commit 8cb815a each build computed its own team's figures (a round of about fifteen
queries per team, two thousand times); since then the first build of a due moment
computes every team due then in one batch and the others reuse it, which brings the job
path to the batch path's time. On PostgreSQL, nearly all of the batch is five grouped scans
of usage_daily: two over the chart's 8 weeks (spend by team, week and category; a bit mask
of active weeks per person), one over the month (by team and person), and two over a week.
Each 8-week scan costs about the floor's one. Commit 87a6ece took a third off: at the
default work_mem (4 MB) the hash tables spilled to disk; a distinct count per (team, week)
sorted every row; a query per person with a sandbox grant. Charts cost tens of
milliseconds each in matplotlib; rendering them on first use (upload or fetch) keeps them
out of the digest run.
"""
CHART_SAMPLE = 20


async def _job_path(rt: Any, occurrences: list[Any]) -> int:
    from jobs import digests

    managers = 0
    for occ in occurrences:
        async with rt.db.reader() as s:
            built = await digests.build(rt, s, int(occ.arg), occ.due_at)
        managers += len(built.managers)
    return managers


async def _batch_path(rt: Any, occurrences: list[Any]) -> tuple[int, list[dict[str, Any]]]:
    """What build does, for all teams: one stats.compute per digest day."""
    from sqlalchemy import select

    from bot.approvals.policy import pool_used
    from bot.digest import chart, compose, stats
    from bot.money import to_micros
    from bot.store.tables import Person, Team
    from bot.timeutil import iso_week_key, month_at
    from jobs.digests import chart_id_for

    cfg = rt.config
    small_min = cfg.digests.small_team_min
    team_ids = [int(occ.arg) for occ in occurrences]
    specs: list[dict[str, Any]] = []
    managers = 0
    async with rt.db.reader() as s:
        teams = {t.id: t for t in (await s.scalars(select(Team).where(Team.id.in_(team_ids))))}
        by_day: dict[date, list[int]] = defaultdict(list)
        due: dict[int, datetime] = {}
        for occ in occurrences:
            tid = int(occ.arg)
            zone = teams[tid].timezone or rt.tz
            by_day[occ.due_at.astimezone(ZoneInfo(zone)).date()].append(tid)
            due[tid] = occ.due_at
        pool = await pool_used(s, month_at(rt.now(), rt.tz).key)
        pool_total = to_micros(cfg.sandbox.pool_usd)
        reports: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        if cfg.digests.manager_digests:
            for tid, pid, manager_id in await s.execute(
                    select(Person.team_id, Person.id, Person.manager_id).where(
                        Person.team_id.in_(team_ids), Person.active,
                        Person.manager_id.is_not(None))):
                reports[tid][manager_id].append(pid)
        for day, ids in by_day.items():
            digests = await stats.compute(rt, s, ids, digest_day=day, now=rt.now(),
                                          with_members=cfg.digests.manager_digests)
            for tid in ids:
                d, team = digests[tid], teams[tid]
                chart_key = chart_id_for(team.key, iso_week_key(day))
                specs.append(chart.spec(f"{team.name}: weekly spend by category", d.weeks,
                                        compose.folded_series(d, small_min)))
                compose.team_digest(d, small_team_min=small_min, chart_id=chart_key,
                                    pool_used=pool, pool_total=pool_total)
                for ids_of_reports in reports[tid].values():
                    compose.team_digest(d, small_team_min=small_min, chart_id=chart_key,
                                        members=[m for m in d.members
                                                 if m.person_id in ids_of_reports],
                                        pool_used=pool, pool_total=pool_total)
                    managers += 1
    return managers, specs


async def _floor(url: str, first: date, last: date) -> tuple[float, int]:
    """The 8-week scan by team and category, with the raw driver."""
    sql = ("SELECT team_id, category, SUM(cost_micros) FROM usage_daily "
           "WHERE day >= {a} AND day <= {b} GROUP BY team_id, category")
    if url.startswith("sqlite"):
        import sqlite3

        con = sqlite3.connect(sqlite_path(url))
        started = time.perf_counter()
        rows = con.execute(sql.format(a="?", b="?"), (first.isoformat(), last.isoformat()))
        n = len(rows.fetchall())
        seconds = time.perf_counter() - started
        con.close()
        return seconds, n
    import asyncpg

    con = await asyncpg.connect(pg_dsn(url.rsplit("/", 1)[1]))
    try:
        started = time.perf_counter()
        n = len(await con.fetch(sql.format(a="$1", b="$2"), first, last))
        return time.perf_counter() - started, n
    finally:
        await con.close()


async def _child(url: str) -> dict[str, Any]:
    from sqlalchemy import text

    from benchmarks.stores import runtime
    from bot.digest import chart
    from jobs import digests

    rt = runtime(url)
    try:
        occurrences = await digests.due(rt, ANCHOR)
        async with rt.db.reader() as s:  # connect first: time the work, not the connect
            await s.execute(text("SELECT 1"))
        # The job keeps the figures of every team due at one moment for the scheduler's
        # tick: start from an empty cache, as a tick does.
        getattr(digests, "_BATCHES", {}).clear()
        started = time.perf_counter()
        job_managers = await _job_path(rt, occurrences)
        job_seconds = time.perf_counter() - started
        started = time.perf_counter()
        batch_managers, specs = await _batch_path(rt, occurrences)
        batch_seconds = time.perf_counter() - started
        assert job_managers == batch_managers, (job_managers, batch_managers)
        weeks = specs[0]["weeks"]
        first = date.fromisoformat(weeks[0])
        last = max(date.fromisoformat(w) for w in weeks)
        last = date.fromordinal(last.toordinal() + 6)
        floor_seconds, floor_rows = await _floor(url, first, last)
    finally:
        await rt.close()
    sample = specs[:: max(len(specs) // CHART_SAMPLE, 1)][:CHART_SAMPLE]
    renders = []
    sizes = []
    for spec in sample:
        started = time.perf_counter()
        png, _bars = chart.render(spec)
        renders.append(time.perf_counter() - started)
        sizes.append(len(png))
    renders.sort()
    return {"teams": len(occurrences), "manager_digests": job_managers,
            "job_seconds": job_seconds, "batch_seconds": batch_seconds,
            "floor_seconds": floor_seconds, "floor_rows": floor_rows,
            "chart_p50": percentile(renders, 50), "chart_max": renders[-1],
            "chart_mean": sum(renders) / len(renders), "charts": len(renders),
            "png_bytes": sum(sizes) // len(sizes), "peak_rss_kib": proc_status(_pid(), "VmHWM")}


def _pid() -> int:
    import os

    return os.getpid()


def run(*, quick: bool, backends: tuple[str, ...] = BACKENDS, smoke: bool = False) -> Section:
    scale = scale_of(quick, smoke)
    section = Section(name="digest", method=__doc__ or "", notes=NOTES)
    started = time.perf_counter()
    table = Table(
        f"Digests — {scale.teams:,} generated teams (+ the 3 of app.yaml), {scale.people:,} "
        f"people, {scale.days} days of usage; channel + manager digests, no delivery",
        ["backend", "teams", "manager digests", "job path (per team)", "batch path",
         "floor (one grouped scan)", "job / floor", "batch / floor", "chart render p50",
         "chart render max"])
    for backend in backends:
        target = usage_store(backend, scale)
        url = sqlite_url(Path(target)) if backend == "sqlite" else pg_url(target)
        log(f"digests on {backend}: store read into the page cache in "
            f"{warm(backend, target):.0f} s")
        r = run_child("digest", "child", "--db", url)
        log(f"  job {r['job_seconds']:.1f} s, batch {r['batch_seconds']:.1f} s, floor "
            f"{r['floor_seconds']:.2f} s, chart {fmt_ms(r['chart_p50'])} ms")
        table.rows.append([
            backend, f"{r['teams']:,}", f"{r['manager_digests']:,}",
            f"{r['job_seconds']:.1f} s", f"{r['batch_seconds']:.1f} s",
            f"{r['floor_seconds']:.2f} s", f"{r['job_seconds'] / r['floor_seconds']:.0f}x",
            f"{r['batch_seconds'] / r['floor_seconds']:.0f}x", f"{fmt_ms(r['chart_p50'])} ms",
            f"{fmt_ms(r['chart_max'])} ms"])
        if backend == "postgresql":
            for label, key in (("job path", "job_seconds"), ("batch path", "batch_seconds")):
                section.verdicts.append(Verdict(
                    f"digests {label} postgresql ({r['teams']:,} teams)",
                    f"≤ {TARGET_SECONDS:.0f} s", f"{r[key]:.1f} s", r[key] <= TARGET_SECONDS,
                    WHY_JOB if key == "job_seconds" else ""))
                ratio = r[key] / r["floor_seconds"]
                section.verdicts.append(Verdict(
                    f"digests {label} postgresql ({r['teams']:,} teams)",
                    f"≤ {TARGET_FLOOR_RATIO:.0f}x the floor scan", f"{ratio:.1f}x",
                    ratio <= TARGET_FLOOR_RATIO, WHY_JOB if key == "job_seconds" else ""))
        table.notes.append(
            f"{backend}: charts are {r['png_bytes'] // 1024} KiB PNGs; {r['charts']} rendered, "
            f"mean {fmt_ms(r['chart_mean'])} ms — all {r['teams']:,} would take "
            f"~{r['chart_mean'] * r['teams']:.0f} s, which is why they are rendered on first "
            "use. Child peak RSS "
            f"{r['peak_rss_kib'] // 1024} MiB.")
    section.tables.append(table)
    section.seconds = time.perf_counter() - started
    return section


def child_main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.digest")
    parser.add_argument("kind", choices=["child"])
    parser.add_argument("--db", required=True)
    args = parser.parse_args()
    emit(asyncio.run(_child(args.db)))


if __name__ == "__main__":
    child_main()
