"""Matching tutorials to how a person uses AI. Shared by `/tokens`, `/tokens tips` and
the nudge sweep, so every surface recommends the same way."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any, Literal

from sqlalchemy import Select, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import AppConfig
from bot.config.models import Tutorial
from bot.reply import Button
from bot.store.tables import Nudge, TipEvent

LEVELS = ("beginner", "intermediate", "advanced")

# Plain words for what people mostly use AI for.
CATEGORY_WORDS = {
    "summarization": "summarizing documents and threads",
    "chat": "quick chat questions",
    "writing": "drafting text",
    "analysis": "analysis",
    "coding": "coding help",
    "agentic": "agentic workflows",
    "unknown": "uncategorised work",
}


def level_for(agentic_share_pct: int) -> str:
    """Someone with no agentic use starts at the beginning; heavy users get advanced."""
    if agentic_share_pct < 10:
        return "beginner"
    if agentic_share_pct < 40:
        return "intermediate"
    return "advanced"


def dominant(by_category: list[tuple[str, int]], among: list[str]) -> str | None:
    """The biggest category in ``among`` (e.g. the low-value ones)."""
    for category, cost in sorted(by_category, key=lambda x: -x[1]):
        if category in among and cost > 0:
            return category
    return None


def pick_tutorial(
    config: AppConfig, category: str | None, level: str, exclude: AbstractSet[str]
) -> Tutorial | None:
    """A tutorial for ``category`` nearest to ``level`` that the person has not had."""
    candidates = [
        t
        for t in config.tutorials
        if t.id not in exclude and (category is None or category in t.helps_with)
    ]
    if not candidates and category is not None:
        candidates = [t for t in config.tutorials if t.id not in exclude]
    if not candidates:
        return None
    target = LEVELS.index(level)
    # Candidates are in catalog order and min keeps the first of equals: the catalog's
    # order breaks ties.
    return min(candidates, key=lambda t: abs(LEVELS.index(t.level) - target))


def had_queries(person_id: Any) -> tuple[Select[Any], Select[Any]]:
    """Tutorials already sent to (nudges) or opened or completed by (tip events) a person."""
    return (
        select(Nudge.tutorial_id).where(
            Nudge.person_id == person_id, Nudge.cohort == "nudged", Nudge.tutorial_id.is_not(None)
        ),
        select(TipEvent.tutorial_id).where(
            TipEvent.person_id == person_id,
            TipEvent.event.in_(("completed", "opened")),
            TipEvent.tutorial_id.is_not(None),
        ),
    )


async def tutorials_had(s: AsyncSession, person_id: int) -> set[str]:
    """Tutorials already sent to or completed by the person (never recommend them twice);
    a card reads them with its balance (``Balance.tutorials_had``)."""
    sent, done = had_queries(person_id)
    return {t for t in (await s.scalars(union_all(sent, done))).all() if t}


def open_button(tut: Tutorial, *, value: str | None = None,
                style: Literal["default", "primary", "danger"] = "primary") -> Button:
    """The button that opens a tutorial (its clicks are recorded: ``tips.open``)."""
    return Button(label="Open tutorial", action="tips.open", value=value or tut.id, url=tut.url,
                  style=style)


def tutorial(config: AppConfig, tutorial_id: str) -> Tutorial | None:
    return next((t for t in config.tutorials if t.id == tutorial_id), None)
