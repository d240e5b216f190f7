"""Demo activity beyond usage: sandbox requests, grants and tips, so every flow has data."""

from __future__ import annotations

from bot.runtime import Runtime


async def seed_activity(rt: Runtime) -> dict[str, int]:
    """Idempotently add the demo org's sandbox history and one pending request."""
    return {}
