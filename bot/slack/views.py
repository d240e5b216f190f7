"""A Slack modal's state, kept in the store under a random key.

Slack caps ``private_metadata`` at 3,000 characters; cutting JSON there breaks it. The
view carries the key; the state (the form's value, where it was opened) stays here until
the retention job removes it, after a week (jobs/retention.py).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select

from bot.runtime import Runtime
from bot.store.tables import SlackView


async def remember(rt: Runtime, state: dict[str, Any]) -> str:
    key = secrets.token_urlsafe(18)  # 24 characters
    async with rt.db.session() as s:
        s.add(SlackView(key=key, state=state, created_at=rt.now()))
    return key


async def recall(rt: Runtime, key: str) -> dict[str, Any]:
    """The state stored under ``key``; empty if unknown (expired, forged)."""
    if not key or len(key) > 32:
        return {}
    async with rt.db.reader() as s:
        state = await s.scalar(select(SlackView.state).where(SlackView.key == key))
    return dict(state) if isinstance(state, dict) else {}
