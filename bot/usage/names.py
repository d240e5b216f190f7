"""How usage sources are named to people, and the order they are listed in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")

SOURCE_NAMES = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "claude_code": "Claude Code",
    "litellm": "LiteLLM",
    "github_copilot": "GitHub Copilot",
    "cursor": "Cursor",
    "import": "imports",
}


def source_name(source: str) -> str:
    return SOURCE_NAMES.get(source, source)


def source_order(source: str) -> tuple[int, str]:
    """Sort key: the known sources in the order above, then any other by name."""
    names = list(SOURCE_NAMES)
    return (names.index(source), "") if source in SOURCE_NAMES else (len(names), source)


def in_source_order(items: Iterable[tuple[str, T]]) -> dict[str, T]:
    return dict(sorted(items, key=lambda item: source_order(item[0])))
