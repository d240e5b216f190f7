"""The playground in headless Chromium against the real server, on SQLite and PostgreSQL.

Everything is done by clicking and typing in the page; the database is only read, to
check that the page shows what the ledger and the approval flow recorded.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import func, select

from bot import ledger
from bot.approvals import flow
from bot.directory import person_by_email
from bot.money import fmt_usd
from bot.outbox import drain
from bot.runtime import Runtime
from bot.scheduling.runner import run_job
from bot.server import build_app
from bot.store.tables import (
    AuditEntry,
    Chart,
    PlaygroundMessage,
    SandboxGrant,
    SandboxRequest,
    Team,
    TipEvent,
)
from tests.helpers.browser import Playground, chromium, open_playground
from tests.helpers.server import serving
from tests.helpers.usage import raw_month_spend, seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TOMAS = "tomas.novak@acme.example"
PRIYA = "priya.raman@acme.example"  # Tomás's manager
OMAR = "omar.haddad@acme.example"  # a "summarizer" in the demo generator
PURPOSE = "Build an agent that triages bug reports"
# Set to a folder (docs) to refresh the README's screenshots: playground.png (the round
# trip), playground-simulated.png (As if it were), playground-phone.png (390 px wide).
DOCS_DIR = os.environ.get("PLAYGROUND_SCREENSHOTS")
MONDAY = "2026-11-23T14:05:00+00:00"  # 09:05 in New York: the weekly digest is due
PHONE = {"width": 390, "height": 844}

OpenPlayground = Callable[..., AbstractAsyncContextManager[Playground]]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


@pytest.fixture
def playground(browser: Browser, request: pytest.FixtureRequest) -> OpenPlayground:
    """Serve the real app (playground on) and open the page; artifacts saved on failure."""

    @asynccontextmanager
    async def start(rt: Runtime, *, background: bool = False) -> AsyncIterator[Playground]:
        app = build_app(rt, playground=True, background=background)
        async with serving(app) as base, open_playground(browser, base, request.node.name) as pg:
            yield pg

    return start


async def eventually(probe: Callable[[], Awaitable[int]], expected: int) -> None:
    """Poll ``probe`` in small steps (for up to 5 s) until it returns ``expected``."""
    for _ in range(100):
        got = await probe()
        if got == expected:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"still {got}, expected {expected}")


async def save_docs_screenshot(pg: Playground, path: Path) -> None:
    """The README's picture: Tomás's end of the round trip (approved, grant in /tokens)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    await pg.page.set_viewport_size({"width": 1280, "height": 1000})
    await pg.message_with("Sandbox request #1 approved").scroll_into_view_if_needed()
    await pg.page.screenshot(path=path)


async def count(rt: Runtime, model: Any, *where: Any) -> int:
    async with rt.db.reader() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_tokens_shows_the_ledgers_numbers(rt: Runtime, playground: OpenPlayground) -> None:
    await seed_demo(rt, [TOMAS], days=20)
    async with rt.db.reader() as s:
        tomas = await person_by_email(s, TOMAS)
        assert tomas is not None
    bal = await ledger.balance(rt, tomas)
    spent = await raw_month_spend(rt, TOMAS)
    assert bal.spent == spent > 0

    async with playground(rt) as pg:
        await pg.act_as("Tomás Novák")
        card = await pg.reply_to("/tokens", "Your AI budget")
        assert await pg.fact(card, "Spent this month") == fmt_usd(spent)
        assert await pg.fact(card, "Monthly cap") == fmt_usd(bal.cap)
        assert await pg.fact(card, "Remaining") == fmt_usd(bal.cap - spent)
        bar = card.locator("progress")
        assert await bar.get_attribute("value") == str(spent)
        assert await bar.get_attribute("max") == str(bal.limit)
        await expect(card).to_contain_text("Only visible to you")
        await expect(card.locator(".m-progress-pct")).to_have_text(
            f"{(spent * 100 + bal.limit // 2) // bal.limit}%")

    # What was typed and the answer are stored in his DM, the answer as ephemeral.
    async with rt.db.reader() as s:
        rows = (await s.scalars(select(PlaygroundMessage).where(
            PlaygroundMessage.conversation == f"dm:{tomas.id}")
            .order_by(PlaygroundMessage.id))).all()
    assert [(r.author, r.visible_to) for r in rows] == [
        (f"person:{tomas.id}", None), ("bot", tomas.id)]
    assert rows[0].payload["text"] == "/tokens"


async def test_sandbox_approval_round_trip_by_clicks(rt: Runtime,
                                                     playground: OpenPlayground) -> None:
    await seed_demo(rt, [TOMAS], days=20)
    async with rt.db.reader() as s:
        tomas, priya = await person_by_email(s, TOMAS), await person_by_email(s, PRIYA)
    assert tomas is not None and priya is not None

    # background=True: the real outbox sender delivers the cards live, as under `make run`.
    async with playground(rt, background=True) as pg:
        await pg.act_as("Tomás Novák")
        await pg.say("/tokens sandbox")
        await pg.fill_form({"amount": "5000", "purpose": PURPOSE})
        await pg.submit_form()
        # Over the per-request limit: the error shows next to the field, nothing is stored.
        await expect(pg.dialog.locator('[data-error-for="amount"]')).not_to_be_empty()
        assert await count(rt, SandboxRequest) == 0
        await pg.fill_form({"amount": "300"})
        await pg.submit_form()
        await expect(pg.dialog).not_to_have_attribute("open", "")
        await pg.wait_for("is with Priya Raman")
        confirmation = await pg.wait_for("Your sandbox request #1")  # via the outbox
        await expect(pg.button(confirmation, "Cancel request")).to_be_visible()

        await pg.act_as("Priya Raman")
        card = await pg.wait_for("Sandbox budget request #1")
        await expect(card).to_contain_text(PURPOSE)
        await expect(card).to_contain_text("Sandbox pool left")
        card_id = await card.get_attribute("data-id")
        await pg.button(card, "Approve").click()
        decided = pg.page.locator(f'#messages article[data-id="{card_id}"]')
        await expect(decided).to_contain_text("Approved by Priya Raman")
        await expect(decided.locator("button, a.btn")).to_have_count(0)
        await expect(pg.messages.filter(has_text="Sandbox budget request #1")).to_have_count(1)

        await pg.act_as("Tomás Novák")
        await pg.wait_for("Sandbox request #1 approved")
        # His own copy was updated in place too: no Cancel button any more.
        await expect(pg.message_with("Your sandbox request #1")).to_contain_text("Approved")
        balance = await pg.reply_to("/tokens", "Your AI budget")
        assert await pg.fact(balance, "Sandbox grants") == "$300"
        await expect(balance).to_contain_text("Sandbox grant #1: $300")
        if DOCS_DIR:
            await save_docs_screenshot(pg, Path(DOCS_DIR) / "playground.png")

    async with rt.db.reader() as s:
        req = await s.scalar(select(SandboxRequest))
        grant = await s.scalar(select(SandboxGrant))
    assert req is not None and req.status == "approved" and req.decided_by_id == priya.id
    assert grant is not None and grant.amount_micros == 300_000_000
    assert grant.person_id == tomas.id
    assert await count(rt, AuditEntry, AuditEntry.action == "sandbox.granted") == 1


async def test_a_button_with_a_confirm_asks_first(rt: Runtime,
                                                 playground: OpenPlayground) -> None:
    async with playground(rt) as pg:  # no background sender: "Run due jobs now" delivers
        await pg.act_as("Tomás Novák")
        await pg.reply_to(f"tokens sandbox 300 {PURPOSE}", "is with Priya Raman")
        await pg.run_due()
        mine = await pg.wait_for("Your sandbox request #1")
        confirm = pg.page.locator("#confirm")
        await pg.button(mine, "Cancel request").click()
        await expect(confirm).to_contain_text("Cancel this sandbox request?")
        await confirm.get_by_role("button", name="No").click()
        await expect(confirm).not_to_have_attribute("open", "")
        assert (await count(rt, SandboxRequest, SandboxRequest.status == "pending")) == 1
        await pg.button(mine, "Cancel request").click()
        await confirm.get_by_role("button", name="Yes").click()
        await expect(mine).to_contain_text("Cancelled")
        await expect(pg.button(mine, "Cancel request")).to_have_count(0)
        assert (await count(rt, SandboxRequest, SandboxRequest.status == "cancelled")) == 1


async def test_tip_buttons_record_the_click_and_open_the_form(
        rt: Runtime, playground: OpenPlayground) -> None:
    await seed_demo(rt, [OMAR], days=20)
    async with playground(rt) as pg:
        # Tutorial links would leave the machine: answer them locally.
        await pg.page.context.route("https://learn.acme.example/**", lambda route: route.fulfill(
            status=200, content_type="text/html", body="<h1>tutorial</h1>"))
        await pg.act_as("Omar Haddad")
        card = await pg.reply_to("/tokens", "Tip:")
        async with pg.page.context.expect_page() as opened:
            await pg.button(card, "Open tutorial").click()
        tab = await opened.value
        assert tab.url.startswith("https://learn.acme.example/")
        await tab.close()
        await pg.button(card, "Request sandbox budget").click()
        await expect(pg.dialog.locator("h2")).to_have_text("Sandbox budget")
        await pg.dialog.locator("[data-close]").click()
        await expect(pg.dialog).not_to_have_attribute("open", "")
        # The link opened the tab itself; the click was recorded alongside.
        await eventually(lambda: count(rt, TipEvent, TipEvent.event == "opened"), 1)
        assert await count(rt, TipEvent) == 1


async def test_as_if_shows_the_digest_in_a_simulation_and_return_to_now_discards_it(
        rt: Runtime, playground: OpenPlayground, backend: str) -> None:
    async with rt.db.reader() as s:
        platform = await s.scalar(select(Team).where(Team.key == "platform"))
    assert platform is not None
    emails = [p.email for p in rt.config.directory.people if p.team == "platform"]
    await seed_demo(rt, emails, days=20)

    async with playground(rt) as pg:
        await pg.act_as("Priya Raman")
        await pg.open_channel("platform")
        banner = pg.page.locator("#sim-banner")
        await expect(banner).to_be_hidden()
        if backend == "postgresql":
            # A shared PostgreSQL store is not copied from here: simulated time is refused.
            await pg.page.locator("#as-if").fill("2026-11-23T09:30")
            await pg.page.locator("#run-due").click()
            await expect(pg.page.locator("#ran")).to_contain_text("needs the playground's SQLite")
            await expect(banner).to_be_hidden()
            assert await count(rt, PlaygroundMessage) == 0
            return
        # Monday 09:30 in New York: the platform team's digest ("0 9 * * mon") is due.
        ran = await pg.run_due(as_if="2026-11-23T09:30")
        await expect(ran).to_contain_text("digests")
        await expect(ran).not_to_contain_text("caught up")
        await expect(banner).to_be_visible()
        await expect(banner).to_contain_text("Simulated: Mon Nov 23 2026, 09:30")
        await expect(banner).to_contain_text("Nothing done here changes the real one")
        image = pg.page.locator("#messages article.msg-bot figure.m-image img").last
        await expect(image).to_be_visible(timeout=15_000)
        assert (await image.get_attribute("src") or "").startswith("/playground/charts/")
        # The chart is served from the simulation's copy: wait for the browser to decode it.
        await image.evaluate("img => img.decode()")
        assert await image.evaluate("img => img.naturalWidth") > 100
        await expect(pg.message_with("weekly AI digest")).not_to_contain_text("posted late")
        if DOCS_DIR:
            await pg.page.screenshot(path=Path(DOCS_DIR) / "playground-simulated.png")
        # The real store has none of it.
        assert await count(rt, PlaygroundMessage) == 0
        assert await count(rt, Chart) == 0

        await pg.page.locator("#back-to-now").click()
        await expect(banner).to_be_hidden()
        await expect(pg.page.locator("#clock-kind")).to_have_text("Bot clock")
        await expect(pg.messages).to_have_count(0)
    assert await count(rt, PlaygroundMessage) == 0


async def at_the_bottom(pg: Playground) -> bool:
    """The newest message is in view: the conversation is scrolled all the way down."""
    return bool(await pg.page.locator("#messages").evaluate(
        "b => b.scrollHeight - b.scrollTop - b.clientHeight < 2"))


async def test_a_conversation_with_a_chart_opens_on_its_newest_message(
        rt: Runtime, playground: OpenPlayground) -> None:
    emails = [p.email for p in rt.config.directory.people if p.team == "platform"]
    await seed_demo(rt, emails, days=20)
    async with playground(rt) as pg:
        # Priya's DM: her private digest with its chart, then a request card after it.
        rt.clock.set(MONDAY)  # type: ignore[attr-defined]
        await run_job(rt, "digests")
        await drain(rt)
        async with rt.db.reader() as s:
            tomas = await person_by_email(s, TOMAS)
        assert tomas is not None
        await flow.create(rt, tomas, amount="300", purpose=PURPOSE, platform="playground")
        await drain(rt)
        # Charts arrive slowly, as from a busy server: the page must scroll once they do.
        slow: list[str] = []

        async def late_chart(route: Any) -> None:
            slow.append(route.request.url)
            await asyncio.sleep(0.8)
            await route.continue_()

        await pg.page.route("**/playground/charts/**", late_chart)
        await pg.act_as("Priya Raman")
        newest = pg.messages.last
        await expect(newest).to_contain_text("Sandbox budget request #1")
        image = pg.page.locator("#messages figure.m-image img").last
        await expect(image).to_be_visible()
        await image.evaluate("img => img.decode()")
        assert slow, "the chart did not come through the slowed route"
        await expect(pg.page.locator("#messages")).to_have_js_property("scrollTop", await (
            pg.page.locator("#messages").evaluate("b => b.scrollHeight - b.clientHeight")))
        assert await at_the_bottom(pg)
        await expect(pg.button(newest, "Approve")).to_be_in_viewport()


async def test_a_phone_sized_window_has_a_drawer_and_a_readable_chat(
        rt: Runtime, browser: Browser, request: pytest.FixtureRequest) -> None:
    await seed_demo(rt, [TOMAS], days=20)
    app = build_app(rt, playground=True, background=False)
    async with serving(app) as base, open_playground(browser, base, request.node.name,
                                                     viewport=PHONE) as pg:
        page = pg.page
        # The people list is in a drawer, out of the way until asked for.
        await expect(page.locator(".person").first).not_to_be_in_viewport()
        toggle = page.locator("#menu-toggle")
        await expect(toggle).to_be_visible()
        await toggle.click()
        await expect(toggle).to_have_attribute("aria-expanded", "true")
        await expect(page.locator(".person", has_text="Tomás Novák")).to_be_in_viewport()
        await pg.act_as("Tomás Novák")  # choosing closes the drawer
        await expect(page.locator("#sidebar")).not_to_be_in_viewport()
        card = await pg.reply_to("/tokens", "Your AI budget")
        # The chat has the width of the window, not one letter per line.
        body = await card.locator(".msg-main").bounding_box()
        assert body is not None and body["width"] > 250
        header = await page.locator("#conv-sub").bounding_box()
        assert header is not None and header["width"] > 250
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert await at_the_bottom(pg)
        await expect(page.locator("#composer-input")).to_be_in_viewport()
        # The clock and "Run due jobs now" are in the drawer too.
        await toggle.click()
        await page.locator("#run-due").scroll_into_view_if_needed()
        await expect(page.locator("#run-due")).to_be_in_viewport()
        await page.locator("#scrim").click(position={"x": 370, "y": 400})
        await expect(page.locator("#sidebar")).not_to_be_in_viewport()
        if DOCS_DIR:
            await page.screenshot(path=Path(DOCS_DIR) / "playground-phone.png")
