"""The outbox: updates to the same message never go out of order."""

from __future__ import annotations

from sqlalchemy import select

from bot.outbox import drain, enqueue, enqueue_update
from bot.platforms import attach_deliverers
from bot.reply import simple
from bot.store.tables import OutboxMessage
from tests.helpers.slack import SECRET, TOKEN


async def test_an_older_update_retried_later_does_not_overwrite_a_newer_one(make_runtime,
                                                                         fake_slack) -> None:  # type: ignore[no-untyped-def]
    rt = await make_runtime(slack_bot_token=TOKEN, slack_signing_secret=SECRET,
                            slack_api_url=f"{fake_slack.base_url}/api/")
    attach_deliverers(rt)
    async with rt.db.session() as s:
        await enqueue(s, rt, kind="digest", target_type="team", target_id=1,
                      reply=simple("original"), key="card")
    await drain(rt)
    fake_slack.fail("chat.update", 429, retry_after=0)
    async with rt.db.session() as s:
        await enqueue_update(s, rt, original_key="card", key="card:v1", reply=simple("older"))
    await drain(rt)  # rate limited: "older" waits for its retry
    async with rt.db.session() as s:
        await enqueue_update(s, rt, original_key="card", key="card:v2", reply=simple("newer"))
    rt.clock.advance(seconds=1)
    await drain(rt)  # "newer" goes out; "older" is not yet due
    rt.clock.advance(minutes=5)
    await drain(rt)  # now "older" is due: it must not put the old text back
    [message] = fake_slack.messages("C0PLATFORM")
    assert message["text"] == "newer"
    async with rt.db.reader() as s:
        rows = dict((await s.execute(select(OutboxMessage.dedupe_key, OutboxMessage.status))).all())
    assert rows == {"card@slack": "sent", "card:v1@slack": "skipped", "card:v2@slack": "sent"}
