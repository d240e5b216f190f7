"""What a `/tokens` card asks the database, counted on the real drivers: one statement in
one round trip (the asker is found in the card's own statement), two when a sandbox grant
began in an earlier month; never more than three. Structural, not timed.

On PostgreSQL a proxy in front of the server counts round trips and statements on the
wire (tests/helpers/wire.py); on SQLite, sqlite3's trace hook counts every statement the
driver runs (BEGIN and COMMIT would count too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.config.env import Env
from bot.runtime import Runtime
from bot.server import build_app
from bot.store.tables import Person, SandboxGrant, SandboxRequest
from tests.helpers.crafted import record, write
from tests.helpers.server import serving
from tests.helpers.slack import SECRET, TOKEN, SlackClient
from tests.helpers.wire import Counts, PgWire, sqlite_statements

AT = "2026-11-18T15:00:00+00:00"
PLAIN = ["omar.haddad@acme.example", "grace.kim@acme.example"]
GRANTED = "lena.fischer@acme.example"  # a grant that began in October
MAX_ROUND_TRIPS = 3


@asynccontextmanager
async def counted(backend: str, db_url: str) -> AsyncIterator[tuple[str, Counts]]:
    """(the URL the app should use, the counts of what goes through it)."""
    if backend == "postgresql":
        wire = PgWire()
        async with wire.running():
            yield wire.url(urlsplit(db_url).path.lstrip("/")), wire.counts
        return
    with sqlite_statements() as counts:
        yield db_url, counts


async def _seed(rt: Runtime) -> None:
    recs = []
    for n, email in enumerate([*PLAIN, GRANTED]):
        for day in range(1, 18):
            recs.append(record(rt, email, date(2026, 11, day), cost=f"{n + 3}.50",
                               category="summarization" if day % 3 else "agentic"))
        recs.append(record(rt, email, date(2026, 10, 20), cost="1700.00", category="coding"))
    await write(rt, recs)
    async with rt.db.session() as s:
        pid = await s.scalar(Person.__table__.select().with_only_columns(Person.id)
                             .where(Person.email == GRANTED))
        start = rt.now() - timedelta(days=30)
        req = SandboxRequest(person_id=pid, amount_micros=500_000_000, duration_days=45,
                             purpose="An agent that triages bug reports", status="approved",
                             stage=1, stages=[pid], policy={}, period="2026-10",
                             created_at=start, stage_started_at=start, decided_at=start)
        s.add(req)
        await s.flush()
        s.add(SandboxGrant(request_id=req.id, person_id=pid, amount_micros=500_000_000,
                           period="2026-10", starts_at=start, ends_at=start + timedelta(days=45),
                           status="active", created_at=start))


async def test_a_tokens_card_is_one_statement_in_one_round_trip(
    backend: str, db_url: str, make_runtime: Callable[..., Any], fake_slack: Any
) -> None:
    async with AsyncExitStack() as stack:
        url, counts = await stack.enter_async_context(counted(backend, db_url))
        rt = await make_runtime(env=Env(database_url=url, slack_bot_token=TOKEN,
                                        slack_signing_secret=SECRET,
                                        slack_api_url=f"{fake_slack.base_url}/api/"))
        rt.clock.set(AT)
        await _seed(rt)
        base = await stack.enter_async_context(serving(build_app(rt, background=False)))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        slack = SlackClient(http, base, fake_slack.base_url)

        async def card(email: str) -> tuple[int, int]:
            before = (counts.round_trips, counts.statements)
            status, body = await slack.command(fake_slack.user_id(email), "")
            assert status == 200 and "Your AI budget" in str(body), body
            return counts.round_trips - before[0], counts.statements - before[1]

        everyone = [*PLAIN, GRANTED]
        for email in everyone:  # first sight: users.info, the id stored, statements prepared
            await card(email)
            await card(email)
        seen = {email: await card(email) for email in everyone}

    for email in PLAIN:
        round_trips, statements = seen[email]
        assert statements == 1, (email, seen, counts.sql[-5:])
        if backend == "postgresql":
            assert round_trips == 1, (email, seen)
    round_trips, statements = seen[GRANTED]
    assert statements == 2 <= MAX_ROUND_TRIPS, seen  # + what the grant covered in October
    if backend == "postgresql":
        assert round_trips == 2, seen
