"""A per-person sliding-window limit on commands: polite, per process, not a security wall."""

from __future__ import annotations

import time
from collections import deque


class RateLimiter:
    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str, per_minute: int) -> bool:
        now = time.monotonic()
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] > 60:
            hits.popleft()
        if len(hits) >= per_minute:
            return False
        hits.append(now)
        if len(self._hits) > 100_000:  # bound memory on a busy replica
            self._hits = {key: hits}
        return True
