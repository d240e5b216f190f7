"""Headless Chromium (Debian's, via Playwright) driving the playground like a person.

`open_playground` saves a screenshot and the page's HTML under test-artifacts/ when the
test body fails, and fails the test if the page's script threw.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Locator, Page, async_playwright, expect

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
VIEWPORT = {"width": 1280, "height": 860}
WAIT_MS = 10_000  # generous: PostgreSQL on a busy CI machine; passing runs never wait it out


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


def artifact_path(name: str, suffix: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + suffix)


async def save_artifacts(page: Page, name: str) -> None:
    try:
        await page.screenshot(path=artifact_path(name, ".png"), full_page=True)
        artifact_path(name, ".html").write_text(await page.content(), encoding="utf-8")
    except Exception as exc:  # the page may be gone; the original failure matters more
        print(f"could not save browser artifacts for {name}: {exc!r}")


class Playground:
    """The workspace page, in a person's words: act as, say, click, run jobs."""

    def __init__(self, page: Page, base: str):
        self.page = page
        self.base = base

    @property
    def messages(self) -> Locator:
        return self.page.locator("#messages article.msg")

    @property
    def dialog(self) -> Locator:
        return self.page.locator("#dialog")

    async def open_drawer(self) -> None:
        """On a narrow window the sidebar is a drawer: open it (a no-op when wide)."""
        toggle = self.page.locator("#menu-toggle")
        if await toggle.is_visible() and await toggle.get_attribute("aria-expanded") != "true":
            await toggle.click()

    async def act_as(self, name: str) -> None:
        await self.open_drawer()
        await self.page.locator(".person", has_text=name).click()
        await expect(self.page.locator("#me-name")).to_have_text(name)
        await expect(self.page.locator("#conv-title")).to_have_text("tokencoach")

    async def open_channel(self, key: str) -> None:
        await self.open_drawer()
        await self.page.locator("#channel-list button", has_text=f"# {key}").click()
        await expect(self.page.locator("#conv-title")).to_have_text(f"# {key}")

    async def say(self, text: str) -> None:
        box = self.page.locator("#composer-input")
        await box.fill(text)
        await box.press("Enter")
        await expect(box).to_have_value("")

    def message_with(self, text: str) -> Locator:
        """The newest message containing ``text``."""
        return self.messages.filter(has_text=text).last

    async def wait_for(self, text: str) -> Locator:
        found = self.message_with(text)
        await expect(found).to_be_visible(timeout=WAIT_MS)
        return found

    async def reply_to(self, command: str, expect_text: str) -> Locator:
        """Say ``command`` and wait for the newest bot message with ``expect_text`` after it."""
        before = await self.messages.count()
        await self.say(command)
        reply = self.page.locator(f"#messages article.msg-bot:nth-child(n+{before + 1})",
                                  has_text=expect_text).last
        await expect(reply).to_be_visible(timeout=WAIT_MS)
        return reply

    @staticmethod
    async def fact(message: Locator, label: str) -> str:
        item = message.locator(".m-fact").filter(
            has=message.page.locator("dt", has_text=re.compile(f"^{re.escape(label)}$")))
        return (await item.locator("dd").inner_text()).strip()

    @staticmethod
    def button(message: Locator, label: str) -> Locator:
        return message.locator("button, a.btn", has_text=label)

    async def fill_form(self, values: dict[str, str]) -> None:
        await expect(self.dialog).to_have_attribute("open", "")
        for name, value in values.items():
            await self.dialog.locator(f'[name="{name}"]').fill(value)

    async def submit_form(self) -> None:
        await self.dialog.locator('button[type="submit"]').click()

    async def run_due(self, as_if: str | None = None) -> Locator:
        if as_if:
            await self.page.locator("#as-if").fill(as_if)
        await self.page.locator("#run-due").click()
        ran = self.page.locator("#ran")
        await expect(ran).to_contain_text("delivered", timeout=WAIT_MS * 3)
        return ran


@asynccontextmanager
async def open_playground(browser: Browser, base: str, name: str,
                          viewport: dict[str, int] | None = None) -> AsyncIterator[Playground]:
    context = await browser.new_context(viewport=viewport or VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(WAIT_MS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        await page.goto(f"{base}/")
        await expect(page.locator(".person").first).to_be_visible()
        yield Playground(page, base)
        assert not errors, f"the page's script failed: {errors}"
    except BaseException:
        await save_artifacts(page, name)
        raise
    finally:
        await context.close()
